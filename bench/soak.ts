/**
 * `npm run soak`: the cache under load with faults, and its memory under a flood of unique URLs.
 *
 * 1. Load with faults: a mixed load (hot pages that hit, unique URLs that miss, and tag
 *    invalidations at 10/s) against the memory and the Redis stores, phase by phase: steady,
 *    Redis paused (SIGSTOP), resumed, Redis killed, restarted. For each phase: requests, non-2xx,
 *    errors, p99. Target: no non-2xx and no error (the handler never fails), p99 during the
 *    outage under the store's timeout (100 ms) plus the handler's time (5 ms).
 * 2. Bounded memory: unique URLs for a while against MemoryStore({ maxBytes }), resident memory
 *    sampled throughout, then after the load and a full GC; a second flood must not grow it.
 * 3. The property test and the hostile corpus (run through tap) for the closing table.
 *
 * Results are printed and written into bench/RESULTS.md between the soak markers.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync, existsSync, mkdtempSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import type { SoakServerSpec } from './soak-server.js'
import { freePort, waitForPing } from '../test/fixtures/redis-server.js'

const quick = process.argv.includes('--quick')
const PHASE_S = quick ? 4 : 10
const FLOOD_S = quick ? 8 : 20
const HANDLER_MS = 5
const TIMEOUT_MS = 100
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Phase {
  store: string
  phase: string
  requests: number
  non2xx: number
  errors: number
  p99: number
  reported: string
}

/** A private redis-server that can be paused, killed and restarted on its port. */
class Redis {
  child!: ChildProcess
  readonly dir = mkdtempSync(join(os.tmpdir(), 'acc-soak-'))
  constructor(readonly port: number) {}
  get url() {
    return `redis://127.0.0.1:${this.port}`
  }
  async start() {
    this.child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
      ],
      { stdio: 'ignore' },
    )
    await waitForPing(this.port, 5000)
  }
  pause = () => this.child.kill('SIGSTOP')
  resume = () => this.child.kill('SIGCONT')
  async kill() {
    const gone = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill('SIGKILL')
    await gone
  }
}

async function startServer(
  spec: SoakServerSpec,
  nodeArgs: string[] = [],
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [...nodeArgs, here('./soak-server.js'), JSON.stringify(spec)],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  )
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message) => resolve((message as { port: number }).port))
    child.once('exit', (code) => reject(new Error(`soak server exited with ${code}`)))
  })
  return { child, url: `http://127.0.0.1:${port}` }
}

function call(url: string, method = 'GET'): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .request(url, { method }, (res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => (text += chunk))
        res.on('end', () => resolve(text))
      })
      .on('error', reject)
      .end()
  })
}

/** Empties the store (its entries count from the baseline on). */
async function fetchClear(url: string): Promise<void> {
  for (let group = 0; group < 10; group++)
    await call(`${url}/__invalidate?tag=group:${group}`, 'POST')
}

const stats = async (url: string) =>
  JSON.parse(await call(url + '/__stats')) as {
    stats: Record<string, number>
    memory: NodeJS.MemoryUsage
    reported: Record<string, number>
  }

/** The mixed load for `seconds`: 80% hot pages, 20% unique URLs (misses), keep-alive clients. */
function load(url: string, seconds: number, uniqueOnly = false): Promise<autocannon.Result> {
  let unique = 0
  const requests = [
    {
      setupRequest: (req: { path: string }) => ({
        ...req,
        path:
          uniqueOnly || unique % 5 === 0
            ? `/miss/${unique++}?u=${process.hrtime.bigint()}`
            : `/hot/${unique++ % 20}`,
      }),
    },
  ]
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections: 20,
        duration: seconds,
        timeout: 10,
        requests,
      } as unknown as autocannon.Options,
      (err, result) => (err ? reject(err) : resolve(result)),
    )
  })
}

/** Invalidations at 10/s while `until` is pending; resolves how many failed (rejected to the caller). */
async function invalidating(url: string, until: Promise<unknown>): Promise<number> {
  let done = false
  let failed = 0
  void until.then(() => (done = true))
  for (let i = 0; !done; i++) {
    if ((await call(`${url}/__invalidate?tag=group:${i % 10}`, 'POST').catch(() => '-1')) === '-1')
      failed++
    await sleep(100)
  }
  return failed
}

async function faultSoak(): Promise<Phase[]> {
  const phases: Phase[] = []
  for (const kind of ['memory', 'redis'] as const) {
    const redis = new Redis(await freePort())
    await redis.start()
    const server = await startServer({
      store: kind,
      redisUrl: redis.url,
      handlerMs: HANDLER_MS,
      bodyBytes: 1024,
    })
    await load(server.url, 2) // warm: the hot pages stored, the JIT warm
    const script: Array<[string, () => Promise<void> | void, () => Promise<void> | void]> = [
      ['steady', () => {}, () => {}],
      ['Redis paused', () => redis.pause(), () => redis.resume()],
      ['resumed', () => {}, () => {}],
      ['Redis killed', () => redis.kill(), () => redis.start()],
      ['restarted', () => {}, () => {}],
    ]
    for (const [name, before, after] of script) {
      await before()
      const reportedBefore = (await stats(server.url)).reported
      const run = load(server.url, PHASE_S)
      const failedInvalidations = await invalidating(server.url, run)
      const result = await run
      const reported = (await stats(server.url)).reported
      const delta = Object.entries(reported)
        .map(([op, n]) => [op, n - (reportedBefore[op] ?? 0)] as const)
        .filter(([, n]) => n > 0)
      phases.push({
        store: kind,
        phase: name,
        requests: result.requests.total,
        non2xx: result.non2xx,
        errors: result.errors + result.timeouts,
        p99: result.latency.p99,
        reported:
          [
            ...delta.map(([op, n]) => `${op} ${n}`),
            ...(failedInvalidations > 0 ? [`invalidateTags rejected ${failedInvalidations}`] : []),
          ].join(', ') || '-',
      })
      await after()
      console.log(
        `soak: ${kind} ${name}: ${result.requests.total} requests, ${result.non2xx} non-2xx, ${result.errors + result.timeouts} errors, p99 ${result.latency.p99} ms`,
      )
    }
    server.child.kill()
    await redis.kill().catch(() => {})
  }
  return phases
}

interface MemoryResult {
  budget: number
  baselineRss: number
  peakRss: number
  afterRss: number
  afterHeap: number
  secondAfterRss: number
  secondAfterHeap: number
  storeBytes: number
  entries: number
  requests: number
}

async function memorySoak(): Promise<MemoryResult> {
  const budget = 32 * 1024 * 1024
  const server = await startServer(
    { store: 'memory', maxBytes: budget, handlerMs: 0, bodyBytes: 4096 },
    ['--expose-gc'],
  )
  // The baseline: the process with its code loaded and warmed by a few requests, the store empty.
  for (let i = 0; i < 200; i++) await call(`${server.url}/warm/${i}`)
  await call(server.url + '/__invalidate?tag=none', 'POST')
  await fetchClear(server.url)
  await call(server.url + '/__gc', 'POST')
  const baselineRss = (await stats(server.url)).memory.rss
  let peakRss = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      peakRss = Math.max(peakRss, (await stats(server.url)).memory.rss)
      await sleep(250)
    }
  })()
  const settle = async () => {
    await sleep(2000)
    await call(server.url + '/__gc', 'POST')
    await sleep(500)
    await call(server.url + '/__gc', 'POST')
    return stats(server.url)
  }
  const first = await load(server.url, FLOOD_S, true)
  const after = await settle()
  const second = await load(server.url, FLOOD_S, true)
  sampling = false
  await sampler
  const secondAfter = await settle()
  server.child.kill()
  return {
    budget,
    baselineRss,
    peakRss,
    afterRss: after.memory.rss,
    afterHeap: after.memory.heapUsed,
    secondAfterRss: secondAfter.memory.rss,
    secondAfterHeap: secondAfter.memory.heapUsed,
    storeBytes: secondAfter.stats.bytes ?? 0,
    entries: secondAfter.stats.entries ?? 0,
    requests: first.requests.total + second.requests.total,
  }
}

/** The property test and the corpora, through tap: how many cases and inputs they tried. */
function testCounts(): { sequences: number; commands: number; inputs: number } {
  const root = here('../../..')
  const out = execFileSync(
    join(root, 'node_modules/.bin/tap'),
    [
      '--disable-coverage',
      '--reporter=tap',
      'test/property.ts',
      'test/hostile.ts',
      'test/poisoning.ts',
    ],
    { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  )
  let sequences = 0
  let commands = 0
  for (const [, s, c] of out.matchAll(/(\d+) sequences, (\d+) commands, no violation/g)) {
    sequences += Number(s)
    commands += Number(c)
  }
  const inputs = Number(/# \{ total: (\d+)/.exec(out)?.[1] ?? 0)
  return { sequences, commands, inputs }
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

const started = new Date()
const phases = await faultSoak()
const memory = await memorySoak()
const counts = testCounts()
const outagePhases = phases.filter((p) => p.phase.startsWith('Redis'))
const lost = phases.reduce((sum, p) => sum + p.non2xx + p.errors, 0)
const worstOutageP99 = Math.max(
  ...outagePhases.filter((p) => p.store === 'redis').map((p) => p.p99),
)
const overhead = memory.secondAfterRss - memory.baselineRss - memory.storeBytes

const report = `<!-- soak -->
## Soak: load with faults, bounded memory

- date: ${started.toISOString()}${quick ? ' (--quick)' : ''}
- Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores
- load: autocannon, 20 connections, ${PHASE_S} s a phase; 80% hot pages (hits), 20% unique URLs (misses), tag invalidations at 10/s; pages take ${HANDLER_MS} ms to render, 1 KiB bodies; RedisStore timeoutMs ${TIMEOUT_MS}

### Load with faults

| store | phase | requests | non-2xx | errors | p99 ms | reported to onError |
|---|---|---:|---:|---:|---:|---|
${phases.map((p) => `| ${p.store} | ${p.phase} | ${p.requests} | ${p.non2xx} | ${p.errors} | ${p.p99} | ${p.reported} |`).join('\n')}

Target: no non-2xx and no error (the handler never fails), p99 during the outage under ${TIMEOUT_MS + HANDLER_MS} ms (the store's timeout plus the handler's time): ${lost === 0 ? 'met' : `**not met: ${lost} lost**`}, worst Redis-outage p99 ${worstOutageP99} ms (${worstOutageP99 < TIMEOUT_MS + HANDLER_MS ? 'met' : '**not met**'}).

### Bounded memory

MemoryStore({ maxBytes: ${mib(memory.budget)} }), unique URLs with 4 KiB bodies, two floods of ${FLOOD_S} s (${memory.requests} requests in all).

| | resident (RSS) | heap used |
|---|---:|---:|
| before the load (after a GC) | ${mib(memory.baselineRss)} | |
| peak during the floods | ${mib(memory.peakRss)} | |
| after the first flood and a GC | ${mib(memory.afterRss)} | ${mib(memory.afterHeap)} |
| after the second flood and a GC | ${mib(memory.secondAfterRss)} | ${mib(memory.secondAfterHeap)} |
| held by the store (its own count) | ${mib(memory.storeBytes)} in ${memory.entries} entries | |

The store stays within its budget by its own count (${mib(memory.storeBytes)} of ${mib(memory.budget)}); the process's resident memory after the load is the baseline plus the store's bytes plus ${mib(overhead)} (allocator and V8 slack, which the second flood ${memory.secondAfterHeap <= memory.afterHeap * 1.1 ? 'did not grow' : '**grew**'}: heap after the second flood ${mib(memory.secondAfterHeap)} against ${mib(memory.afterHeap)} after the first). Nothing held after the load by coalescing waiters, background refreshes or per-request closures: the heap returns to the store's content.

### In all

| cases generated (property test) | inputs tried (hostile corpus and poisoning tests, assertions) | faults survived | requests lost |
|---:|---:|---:|---:|
| ${counts.sequences} sequences, ${counts.commands} commands | ${counts.inputs} | ${outagePhases.length / 2} outages × 2 stores (pause, kill and restart), 0 lost | ${lost} |
<!-- /soak -->`

console.log('\n' + report)
const results = here('../../../bench/RESULTS.md')
const previous = existsSync(results)
  ? readFileSync(results, 'utf8')
  : '# node-accelerator benchmarks\n'
const marked = /<!-- soak -->[\s\S]*<!-- \/soak -->/
writeFileSync(
  results,
  marked.test(previous) ? previous.replace(marked, report) : `${previous.trimEnd()}\n\n${report}\n`,
)
console.log(`\nwritten to ${results}`)
