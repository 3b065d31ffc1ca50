/**
 * `npm run soak`: the cache under load with faults, and its memory under a flood of unique URLs.
 *
 * 1. Load with faults, one run per store: MemoryStore (one process), RedisStore and RedisStore
 *    with `localCache` (each `--processes` processes, 3 by default, on one Redis). One unbroken
 *    load (hot pages that hit, unique URLs that miss) goes on across the phases: steady, Redis
 *    paused (SIGSTOP), resumed (SIGCONT), Redis killed (SIGKILL), restarted (an empty
 *    redis-server on the same port); the faults land while requests are in flight. Meanwhile,
 *    ten times a second, a purge: the runner bumps one group's version in every process (each
 *    page's body starts with its group's version when its render began), then has one process
 *    (each in turn) call `invalidateTags(['group:G'])`, and once that answered, reads the group's
 *    two hot pages from every process at once (the reads most likely to find a copy the purge
 *    missed).
 *    - Non-2xx: responses with another status; errors: requests with no response (refused,
 *      reset, or none within 10 s).
 *    - A stale hit after a purge: a response to a request sent after a purge of its group had
 *      returned successfully to the runner, whose body carries a version older than the one
 *      bumped before that purge. Purges that failed (Redis paused or down) set no such floor:
 *      nothing promised that they took effect. Counted across every process and phase.
 *    Target: 0 non-2xx, 0 errors, 0 stale hits (else the soak exits with 1), and p99 during the
 *    outage under the store's timeout (100 ms) plus the handler's time (5 ms).
 * 2. Bounded memory: unique URLs for a while against MemoryStore({ maxBytes }), resident memory
 *    sampled throughout, then after the load and a full GC; a second flood must not grow it.
 * 3. The property test and the hostile corpus (run through tap) for the closing table.
 *
 * Options: `--quick` (3 s phases, 8 s floods: about 2 minutes in all), `--phase-s=N`,
 * `--processes=N`, `--stores=memory,redis,local` (which fault runs; `control` adds MemoryStore in
 * every process, where stale hits are expected), `--redis-timeout=MS` (RedisStore's `timeoutMs`,
 * 100 by default: on a loaded machine many purges then time out, and set no floor), `--faults-only`
 * (skip 2 and 3).
 * Results are printed, then written into bench/RESULTS.md between the soak markers when every
 * part ran with every store; the last line is the one-line summary.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync, existsSync, mkdtempSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import type { SoakServerSpec, SoakServerStats } from './soak-server.js'
import { freePort, waitForPing } from '../test/fixtures/redis-server.js'

const option = (name: string): string | undefined =>
  process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)
const quick = process.argv.includes('--quick')
const faultsOnly = process.argv.includes('--faults-only')
const PHASE_S = Number(option('phase-s') ?? (quick ? 3 : 10))
const WARM_S = 2
const FLOOD_S = quick ? 8 : 20
const PROCESSES = Number(option('processes') ?? 3)
const STORES = (option('stores') ?? 'memory,redis,local').split(',')
const CONNECTIONS = 20
const HOT_PAGES = 20
const GROUPS = 10
const PURGE_EVERY_MS = 100
const HANDLER_MS = 5
const TIMEOUT_MS = Number(option('redis-timeout') ?? 100)
const LOCAL_BYTES = 16 * 1024 * 1024
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

for (const [name, n] of [
  ['phase-s', PHASE_S],
  ['processes', PROCESSES],
  ['redis-timeout', TIMEOUT_MS],
] as const)
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`soak: expected --${name}=<a positive integer>, got ${option(name)}`)
const unknownStore = STORES.find((s) => !['memory', 'redis', 'local', 'control'].includes(s))
if (unknownStore !== undefined)
  throw new Error(
    `soak: unknown store ${JSON.stringify(unknownStore)} in --stores; use memory, redis, local and/or control`,
  )

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
  pause = () => void this.child.kill('SIGSTOP')
  resume = () => void this.child.kill('SIGCONT')
  async kill() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const gone = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill('SIGKILL')
    await gone
  }
}

interface Server {
  child: ChildProcess
  url: string
  /** Keep-alive sockets to this server for the load and the probes. */
  agent: http.Agent
}

async function startServer(spec: SoakServerSpec, nodeArgs: string[] = []): Promise<Server> {
  const child = spawn(
    process.execPath,
    [...nodeArgs, here('./soak-server.js'), JSON.stringify(spec)],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  )
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message) => resolve((message as { port: number }).port))
    child.once('exit', (code) => reject(new Error(`soak server exited with ${code}`)))
  })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  return { child, url: `http://127.0.0.1:${port}`, agent }
}

interface Reply {
  status: number
  text: string
  cacheStatus: string
  /** Where the store read found the entry (soak-server's `x-soak-read`): local, store or none. */
  read: string
}

function request(url: string, method = 'GET', agent?: http.Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent }, (res) => {
      let text = ''
      res.setEncoding('latin1')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          text,
          cacheStatus: String(res.headers['cache-status'] ?? ''),
          read: String(res.headers['x-soak-read'] ?? '-'),
        }),
      )
      res.on('error', reject)
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`no response within 10 s from ${url}`)))
    req.on('error', reject).end()
  })
}

const call = async (url: string, method = 'GET') => (await request(url, method)).text

/** Empties the store (its entries count from the baseline on). */
async function fetchClear(url: string): Promise<void> {
  for (let group = 0; group < GROUPS; group++)
    await call(`${url}/__invalidate?tag=group:${group}`, 'POST')
}

const stats = async (url: string) => JSON.parse(await call(url + '/__stats')) as SoakServerStats

/** Unique URLs for `seconds` (misses all): the memory flood. */
function flood(url: string, seconds: number): Promise<autocannon.Result> {
  let unique = 0
  const requests = [
    {
      setupRequest: (req: { path: string }) => ({
        ...req,
        path: `/miss/${unique++}?u=${process.hrtime.bigint()}`,
      }),
    },
  ]
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections: CONNECTIONS,
        duration: seconds,
        timeout: 10,
        requests,
      } as unknown as autocannon.Options,
      (err, result) => (err ? reject(err) : resolve(result)),
    )
  })
}

interface Stale {
  store: string
  phase: string
  /** Which process answered, and which one ran the purge. */
  server: number
  purgedBy: number
  path: string
  /** Version in the body, and the floor the purge set. */
  got: number
  floor: number
  /** When the request was sent, ms after the purge returned; when its answer came, ms after it was sent. */
  sentAfterMs: number
  tookMs: number
  cacheStatus: string
  /** Where the store read found it: local (a local copy), store, none (shared from a generation). */
  read: string
  /** A probe: one of the reads sent to every process at once as soon as the purge returned. */
  probe: boolean
  /** The same page read again from the same process at once: its version, and whether local. */
  again: string
}

interface Phase {
  store: string
  phase: string
  requests: number
  non2xx: number
  errors: number
  latencies: number[]
  /** Responses whose Cache-Status says hit; responses whose store read a local copy answered. */
  hits: number
  localHits: number
  purges: number
  purgesFailed: number
  /** Responses checked against a returned purge's floor, and those of them that were stale. */
  checked: number
  stale: number
  reported: string
}

/** The version a page's body starts with (`<group> <version>\n`), or undefined. */
function versionOf(text: string): number | undefined {
  const match = /^\d+ (\d+)\n/.exec(text)
  return match === null ? undefined : Number(match[1])
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0
  const sorted = Float64Array.from(values).sort()
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!)
}

type Store = 'memory' | 'redis' | 'local' | 'control'
/**
 * `control`: MemoryStore in every process, where a purge reaches only the process that ran it,
 * so stale hits are expected: a check that the soak sees them (it does not count towards the
 * verdict).
 */
const labels: Record<Store, string> = {
  memory: 'memory',
  redis: 'redis',
  local: 'redis+localCache',
  control: 'memory (control)',
}

/**
 * One store's fault run: its servers on one Redis, an unbroken load through the phases, purges
 * with their floors, and every response checked against them.
 */
async function faultRun(store: Store, stales: Stale[]): Promise<Phase[]> {
  const label = labels[store]
  const redis = new Redis(await freePort())
  await redis.start()
  const count = store === 'memory' ? 1 : PROCESSES
  const spec: SoakServerSpec = {
    store: store === 'memory' || store === 'control' ? 'memory' : 'redis',
    redisUrl: redis.url,
    timeoutMs: TIMEOUT_MS,
    handlerMs: HANDLER_MS,
    bodyBytes: 1024,
    ...(store === 'local' && { localCache: { maxBytes: LOCAL_BYTES } }),
  }
  const servers = await Promise.all(Array.from({ length: count }, () => startServer(spec)))

  const phases: Phase[] = []
  let phase!: Phase
  const begin = (name: string) => {
    phase = {
      store: label,
      phase: name,
      requests: 0,
      non2xx: 0,
      errors: 0,
      latencies: [],
      hits: 0,
      localHits: 0,
      purges: 0,
      purgesFailed: 0,
      checked: 0,
      stale: 0,
      reported: '-',
    }
    phases.push(phase)
  }
  begin('warm-up')
  /** Per group: the version bumped before the last purge that returned, when, and by whom. */
  const floors = Array.from({ length: GROUPS }, () => ({ version: 0, at: 0, by: -1 }))
  const bumped = new Array<number>(GROUPS).fill(0)
  let stopped = false

  const read = async (server: number, path: string, probe: boolean) => {
    const group = Number(/\d+/.exec(path)![0]) % GROUPS
    const floor = { ...floors[group]! }
    const counted = phase
    const sent = performance.now()
    let reply: Reply
    try {
      reply = await request(servers[server]!.url + path, 'GET', servers[server]!.agent)
    } catch {
      counted.requests++
      counted.errors++
      return
    }
    const took = performance.now() - sent
    counted.requests++
    counted.latencies.push(took)
    if (reply.status < 200 || reply.status > 299) return void counted.non2xx++
    if (/;\s*hit/.test(reply.cacheStatus)) counted.hits++
    if (reply.read === 'local') counted.localHits++
    if (floor.version === 0) return
    counted.checked++
    const got = versionOf(reply.text) ?? -1
    if (got >= floor.version) return
    counted.stale++
    stales.push({
      store: label,
      phase: counted.phase,
      server,
      purgedBy: floor.by,
      path,
      got,
      floor: floor.version,
      sentAfterMs: Math.round((sent - floor.at) * 10) / 10,
      tookMs: Math.round(took * 10) / 10,
      cacheStatus: reply.cacheStatus,
      read: reply.read,
      probe,
      again: await request(servers[server]!.url + path, 'GET', servers[server]!.agent).then(
        (again) => `${versionOf(again.text) ?? '?'} (${again.read})`,
        (err: Error) => err.message,
      ),
    })
  }

  // The load: each connection on one server, 80% hot pages (hits), 20% unique URLs (misses).
  let unique = 0
  const client = async (i: number) => {
    while (!stopped) {
      const path =
        Math.random() < 0.2
          ? `/miss/${unique++}?u=${process.hrtime.bigint()}`
          : `/hot/${Math.floor(Math.random() * HOT_PAGES)}`
      await read(i % count, path, false)
    }
  }

  const purging = async () => {
    for (let i = 0; !stopped; i++) {
      const group = i % GROUPS
      const version = ++bumped[group]!
      const by = i % count
      const counted = phase
      counted.purges++
      try {
        await Promise.all(
          servers.map((s) => call(`${s.url}/__version?group=${group}&v=${version}`, 'POST')),
        )
        const answer = await call(`${servers[by]!.url}/__invalidate?tag=group:${group}`, 'POST')
        if (answer === '-1') throw new Error('invalidateTags rejected')
      } catch {
        counted.purgesFailed++
        await sleep(PURGE_EVERY_MS)
        continue
      }
      floors[group] = { version, at: performance.now(), by }
      // The next read of the group's hot pages in every process, at once.
      const probes: Promise<void>[] = []
      for (let page = group; page < HOT_PAGES; page += GROUPS)
        for (let s = 0; s < count; s++) probes.push(read(s, `/hot/${page}`, true))
      await Promise.all(probes)
      await sleep(PURGE_EVERY_MS)
    }
  }

  const serverStats = () => Promise.all(servers.map((s) => stats(s.url)))
  const summed = (all: SoakServerStats[]) => {
    const reported: Record<string, number> = {}
    for (const s of all)
      for (const [op, n] of Object.entries(s.reported)) reported[op] = (reported[op] ?? 0) + n
    return reported
  }
  let before = summed(await serverStats())
  const close = async (closing: Phase) => {
    const now = summed(await serverStats())
    closing.reported =
      [
        ...Object.entries(now)
          .map(([op, n]) => [op, n - (before[op] ?? 0)] as const)
          .filter(([, n]) => n > 0)
          .map(([op, n]) => `${op} ${n}`),
        ...(closing.purgesFailed > 0 ? [`purges failed ${closing.purgesFailed}`] : []),
      ].join(', ') || '-'
    before = now
    const p = closing
    console.log(
      `soak: ${p.store} ${p.phase}: ${p.requests} requests, ${p.non2xx} non-2xx, ${p.errors} errors, ` +
        `p99 ${percentile(p.latencies, 99)} ms, ${p.hits} hits (${p.localHits} local), ` +
        `${p.purges - p.purgesFailed}/${p.purges} purges returned, ${p.checked} checked, ${p.stale} stale`,
    )
  }

  const load = [...Array.from({ length: CONNECTIONS }, (_, i) => client(i)), purging()]
  const script: Array<[string, () => Promise<void> | void]> = [
    ['steady', () => {}],
    ['Redis paused', redis.pause],
    ['resumed', redis.resume],
    ['Redis killed', () => redis.kill()],
    ['restarted', () => redis.start()],
  ]
  await sleep(WARM_S * 1000)
  for (const [name, fault] of script) {
    await close(phase)
    begin(name)
    await fault()
    await sleep(PHASE_S * 1000)
  }
  stopped = true
  await Promise.all(load)
  await close(phase)
  for (const server of servers) {
    server.agent.destroy()
    server.child.kill()
  }
  await redis.kill()
  return phases
}

async function faultSoak(): Promise<{ phases: Phase[]; stales: Stale[] }> {
  const phases: Phase[] = []
  const stales: Stale[] = []
  for (const store of ['memory', 'redis', 'local', 'control'] as const)
    if (STORES.includes(store)) phases.push(...(await faultRun(store, stales)))
  return { phases, stales }
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
  const first = await flood(server.url, FLOOD_S)
  const after = await settle()
  const second = await flood(server.url, FLOOD_S)
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
const loadBefore = os.loadavg()
const { phases, stales } = await faultSoak()
const memory = faultsOnly ? undefined : await memorySoak()
const counts = faultsOnly ? undefined : testCounts()
const loadAfter = os.loadavg()

const judged = phases.filter((p) => p.store !== labels.control)
const judgedStales = stales.filter((s) => s.store !== labels.control)
const total = (pick: (p: Phase) => number) => judged.reduce((sum, p) => sum + pick(p), 0)
const controlStale = phases
  .filter((p) => p.store === labels.control)
  .reduce((sum, p) => sum + p.stale, 0)
const requests = total((p) => p.requests)
const non2xx = total((p) => p.non2xx)
const errors = total((p) => p.errors)
const stale = total((p) => p.stale)
const checked = total((p) => p.checked)
const purges = total((p) => p.purges - p.purgesFailed)
const outagePhases = judged.filter((p) => p.phase.startsWith('Redis'))
const redisOutages = outagePhases.filter((p) => p.store !== 'memory')
const worstOutageP99 = Math.max(0, ...redisOutages.map((p) => percentile(p.latencies, 99)))
const loads = (l: number[]) => l.map((n) => n.toFixed(2)).join(' ')
const processes = STORES.map(
  (s) => `${labels[s as Store]} ×${s === 'memory' ? 1 : PROCESSES}`,
).join(', ')
const judgedStores = STORES.filter((s) => s !== 'control').length
const passed = non2xx === 0 && errors === 0 && stale === 0
const summary =
  `soak summary: ${passed ? 'PASS' : 'FAIL'}: ${non2xx} non-2xx, ${errors} errors, ` +
  `${stale} stale hits after a purge (${['local', 'store', 'none'].map((read) => `${judgedStales.filter((s) => s.read === read).length} read ${read}`).join(', ')}, ${judgedStales.filter((s) => s.probe).length} probes; ${checked} responses checked against ${purges} returned purges), ` +
  `${requests} requests; ${processes} processes; ${PHASE_S} s phases; worst Redis-outage p99 ${worstOutageP99} ms; ` +
  `load average ${loads(loadBefore)} before, ${loads(loadAfter)} after` +
  (STORES.includes('control')
    ? `; control (MemoryStore ×${PROCESSES}, not judged): ${controlStale} stale${controlStale === 0 ? ' (**expected some: the check saw none**)' : ', as expected'}`
    : '')

const staleLines = [
  ...stales.filter((s) => s.store !== labels.control).slice(0, 20),
  ...stales.filter((s) => s.store === labels.control).slice(0, 3),
].map(
  (s) =>
    `| ${s.store} | ${s.phase} | ${s.path}${s.probe ? ' (probe)' : ''} | ${s.server} | ${s.purgedBy} | ${s.got} < ${s.floor} | ${s.sentAfterMs} | ${s.tookMs} | ${s.cacheStatus || '-'} | ${s.read} | ${s.again} |`,
)
const staleSection =
  stales.length === 0
    ? ''
    : `\n**Stale hits** (the first 20 of ${stale}, and 3 of the control's ${controlStale}):\n\n| store | phase | path | answered by | purged by | version | sent ms after the purge returned | took ms | Cache-Status | store read found | read again at once |\n|---|---|---|---:|---:|---|---:|---:|---|---|---|\n${staleLines.join('\n')}\n`

const faultReport = `### Load with faults

| store | phase | requests | non-2xx | errors | p99 ms | hits (local) | purges returned | checked | stale | reported to onError |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
${phases.map((p) => `| ${p.store} | ${p.phase} | ${p.requests} | ${p.non2xx} | ${p.errors} | ${percentile(p.latencies, 99)} | ${p.hits} (${p.localHits}) | ${p.purges - p.purgesFailed}/${p.purges} | ${p.checked} | ${p.stale} | ${p.reported} |`).join('\n')}

A stale hit: a response to a request sent after a purge of its group returned, carrying a version older than the one bumped before that purge (checked: responses to requests sent after such a purge). Target: no non-2xx, no error, no stale hit, p99 during the outage under ${TIMEOUT_MS + HANDLER_MS} ms (the store's timeout plus the handler's time): ${passed ? 'met' : `**not met: ${non2xx} non-2xx, ${errors} errors, ${stale} stale**`}, worst Redis-outage p99 ${worstOutageP99} ms (${worstOutageP99 < TIMEOUT_MS + HANDLER_MS ? 'met' : '**not met**'}).
${staleSection}`

const memoryReport = (memory: MemoryResult) => {
  const overhead = memory.secondAfterRss - memory.baselineRss - memory.storeBytes
  return `### Bounded memory

MemoryStore({ maxBytes: ${mib(memory.budget)} }), unique URLs with 4 KiB bodies, two floods of ${FLOOD_S} s (${memory.requests} requests in all).

| | resident (RSS) | heap used |
|---|---:|---:|
| before the load (after a GC) | ${mib(memory.baselineRss)} | |
| peak during the floods | ${mib(memory.peakRss)} | |
| after the first flood and a GC | ${mib(memory.afterRss)} | ${mib(memory.afterHeap)} |
| after the second flood and a GC | ${mib(memory.secondAfterRss)} | ${mib(memory.secondAfterHeap)} |
| held by the store (its own count) | ${mib(memory.storeBytes)} in ${memory.entries} entries | |

The store stays within its budget by its own count (${mib(memory.storeBytes)} of ${mib(memory.budget)}); the process's resident memory after the load is the baseline plus the store's bytes plus ${mib(overhead)} (allocator and V8 slack, which the second flood ${memory.secondAfterHeap <= memory.afterHeap * 1.1 ? 'did not grow' : '**grew**'}: heap after the second flood ${mib(memory.secondAfterHeap)} against ${mib(memory.afterHeap)} after the first). Nothing held after the load by coalescing waiters, background refreshes or per-request closures: the heap returns to the store's content.
`
}

const inAll = (c: ReturnType<typeof testCounts>) => `### In all

| cases generated (property test) | inputs tried (hostile corpus and poisoning tests, assertions) | faults survived | requests lost | stale hits |
|---:|---:|---:|---:|---:|
| ${c.sequences} sequences, ${c.commands} commands | ${c.inputs} | 2 outages (a pause; a kill and restart) × ${judgedStores} stores, ${non2xx + errors} lost | ${non2xx + errors} | ${stale} |
`

const report = `<!-- soak -->
## Soak: load with faults, bounded memory

- date: ${started.toISOString()}${quick ? ' (--quick)' : ''}; load average ${loads(loadBefore)} before, ${loads(loadAfter)} after
- Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores
- load: ${CONNECTIONS} keep-alive connections spread over the processes, one unbroken run through the phases (${WARM_S} s warm-up, then ${PHASE_S} s a phase); 80% ${HOT_PAGES} hot pages (hits), 20% unique URLs (misses); a purge of one of ${GROUPS} tags every ${PURGE_EVERY_MS} ms, each process in turn, then the purged group's hot pages read from every process; pages take ${HANDLER_MS} ms to render, 1 KiB bodies; RedisStore timeoutMs ${TIMEOUT_MS}, localCache ${mib(LOCAL_BYTES)}; processes: ${processes}

${faultReport}${memory ? '\n' + memoryReport(memory) : ''}${counts ? '\n' + inAll(counts) : ''}<!-- /soak -->`

console.log('\n' + report)
if (!faultsOnly && STORES.length === 3) {
  const results = here('../../../bench/RESULTS.md')
  const previous = existsSync(results)
    ? readFileSync(results, 'utf8')
    : '# node-accelerator benchmarks\n'
  const marked = /<!-- soak -->[\s\S]*<!-- \/soak -->/
  writeFileSync(
    results,
    marked.test(previous)
      ? previous.replace(marked, report)
      : `${previous.trimEnd()}\n\n${report}\n`,
  )
  console.log(`\nwritten to ${results}`)
}
console.log('\n' + summary)
if (!passed) process.exitCode = 1
