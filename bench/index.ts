/**
 * `npm run bench [-- --quick] [-- --only=1,5] [-- --driver=wrk]`: every scenario of issue 6, each
 * server in a process of its own pinned to one CPU and the load generator on the other; each
 * comparison measured in alternating rounds (A B, B A, ...) and reported as the median of the
 * per-round ratios; a table per scenario on the terminal; a full run also written to
 * bench/RESULTS.md (with the hit path's CPU profile).
 *
 * Options:
 *   --quick          3 rounds of 1 s, the sizes the targets name, no profile (under 2 minutes on 2 cores)
 *   --only=1,2,6a    scenarios by number (1 2 2b 3 4 5 6a 6b 7 8, and "profile"; 2 includes 2b)
 *   --driver=NAME    autocannon or wrk for every run (default: autocannon, wrk where autocannon is load-bound)
 *   --rounds=N --duration=S   override the mode's rounds and seconds per run
 *   --redis-cpu=server|driver  which core the private redis-server shares (default driver)
 *   --redis-timeout=MS  RedisStore's timeoutMs in the HTTP scenarios (default: the store's, 100)
 *   --profile / --skip-profile  include / skip the hit-path profile (default: full runs only)
 *   --profile-dir=DIR  keep the .cpuprofile files there (flame graphs: Chrome DevTools, speedscope)
 *   --profile-sizes=1,16  body sizes in KiB of the Redis hit-path profile (default 1 and 16, the
 *                    sizes issue 14's target names)
 *   --out=FILE       write the Markdown report there (a full run writes bench/RESULTS.md)
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { KiB, median, type DriverName, type RunResult, type ServerSpec } from './common.js'
import { hasWrk } from './drivers.js'
import {
  checkHit,
  FRAMEWORK_NAMES,
  FRAMEWORK_PATHS,
  FRAMEWORK_TARGETS,
  startFramework,
  type FrameworkPath,
} from './frameworks.js'
import type { InvalidationResult, InvalidationSpec } from './invalidation.js'
import type { MemoryResult, MemorySpec } from './memory.js'
import {
  choosePinning,
  Driver,
  fetchOnce,
  RedisProcess,
  runJsonProcess,
  ServerPool,
  type Pinning,
} from './processes.js'
import { profileServer, type ProfileSummary } from './profile.js'
import {
  CONTENDED_CPU,
  invalidationTable,
  LOAD_BOUND_CPU,
  memoryTable,
  profileTables,
  ratioOf,
  scenarioTable,
  table,
  type ComparisonResult,
  type Measured,
} from './report.js'
import { comparisons, type Comparison, type Contender, type Plan } from './scenarios.js'

interface Mode {
  name: 'quick' | 'full'
  rounds: number
  /** Seconds measured per run. */
  duration: number
  /** Warm-up requests per server and request shape (scaled down for large bodies). */
  warmRequests: number
  plan: Plan
  invalidation: Array<Omit<InvalidationSpec, 'redisUrl'>>
  memoryEntries: number
  profile: boolean
}

const QUICK: Mode = {
  name: 'quick',
  rounds: 3,
  duration: 1,
  warmRequests: 2000,
  plan: {
    hitSizes: [KiB, 16 * KiB],
    redisSizes: [KiB, 16 * KiB],
    missSizes: [16 * KiB, 1024 * KiB],
    storingSizes: [],
    missDistinct: false,
    peerSizes: [KiB],
    expressMiddleware: false,
    underLoadStores: ['memory'],
    cold: 10_000,
  },
  invalidation: [
    { store: 'memory', entries: 100_000, repeats: 3 },
    { store: 'redis', entries: 10_000, repeats: 1 },
  ],
  memoryEntries: 10_000,
  profile: false,
}

const FULL: Mode = {
  name: 'full',
  rounds: 5,
  duration: 5,
  warmRequests: 20_000,
  plan: {
    hitSizes: [KiB, 16 * KiB, 256 * KiB],
    redisSizes: [KiB, 16 * KiB, 256 * KiB],
    missSizes: [16 * KiB, 1024 * KiB],
    storingSizes: [16 * KiB, 1024 * KiB],
    missDistinct: true,
    peerSizes: [KiB, 16 * KiB, 256 * KiB],
    expressMiddleware: true,
    underLoadStores: ['memory', 'redis'],
    cold: 20_000,
  },
  invalidation: [
    { store: 'memory', entries: 10_000, repeats: 5 },
    { store: 'memory', entries: 100_000, repeats: 5 },
    { store: 'redis', entries: 10_000, repeats: 3 },
    // With RedisStore's default 100 ms command timeout, then with a longer one (to time it at all).
    { store: 'redis', entries: 100_000, repeats: 1 },
    { store: 'redis', entries: 100_000, repeats: 3, timeoutMs: 5000 },
  ],
  memoryEntries: 100_000,
  profile: true,
}

const TARGET_MS = { memory: 100, redis: 1000 }

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    driver: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    'redis-cpu': { type: 'string', default: 'driver' },
    'redis-timeout': { type: 'string' },
    profile: { type: 'boolean', default: false },
    'skip-profile': { type: 'boolean', default: false },
    out: { type: 'string' },
    'profile-dir': { type: 'string' },
    'profile-sizes': { type: 'string', default: '1,16' },
  },
})

const mode: Mode = { ...(args.quick ? QUICK : FULL) }
if (args.rounds) mode.rounds = Math.max(1, Number(args.rounds))
if (args.duration) mode.duration = Math.max(1, Number(args.duration))
if (args.profile) mode.profile = true
if (args['skip-profile']) mode.profile = false
const only = args.only ? new Set(args.only.split(',').map((s) => s.trim())) : undefined
const wanted = (id: string) => !only || only.has(id)
const forcedDriver = args.driver as DriverName | undefined
if (forcedDriver && forcedDriver !== 'autocannon' && forcedDriver !== 'wrk')
  throw new Error(`--driver must be autocannon or wrk, got ${forcedDriver}`)

const started = Date.now()
const lines: string[] = []
/** Prints to the terminal and keeps the line for the Markdown report. */
function say(text = ''): void {
  console.log(text)
  lines.push(text)
}

function packageVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url)
    return (
      JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as {
        version: string
      }
    ).version
  } catch {
    return '?'
  }
}

function git(...argv: string[]): string {
  try {
    return execFileSync('git', argv, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
  } catch {
    return '?'
  }
}

function wrkVersion(): string {
  try {
    execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    // wrk -v prints its version and exits 1.
    return /wrk (\S+)/.exec(String((err as { stdout?: string }).stdout))?.[1] ?? '?'
  }
  return '?'
}

/**
 * CPU time the hypervisor gave to other guests (steal) and all CPU time, in ticks, from
 * /proc/stat; undefined where there is none. A virtual machine with much steal measures noise.
 */
function cpuTicks(): { steal: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number)
    return { steal: fields[7] ?? 0, total: fields.reduce((sum, n) => sum + n, 0) }
  } catch {
    return undefined
  }
}
const ticksAtStart = cpuTicks()

function stealNote(): string {
  const end = cpuTicks()
  if (!ticksAtStart || !end || end.total === ticksAtStart.total)
    return 'CPU steal: not available (no /proc/stat)'
  const percent = ((end.steal - ticksAtStart.steal) / (end.total - ticksAtStart.total)) * 100
  return `CPU steal (time the hypervisor gave other guests) over the run: ${percent.toFixed(1)} % of all CPU time${percent > 3 ? ': a busy host, so req/s ratios are noisy; the "by CPU/req" column is steadier' : ''}`
}

/** Counters of the accelerator, Redis command counts: what proves a row measured what it says. */
async function redisCalls(
  redis: RedisProcess | undefined,
  command: string | undefined,
): Promise<number> {
  if (!redis || !command) return 0
  const info = await redis.command('INFO', 'commandstats')
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
}

class Runner {
  readonly pool: ServerPool
  /** Ceiling headers by source, read once (Age and the ttl in Cache-Status change every second). */
  readonly #derived = new Map<string, Record<string, string | string[]>>()
  readonly #warmed = new Set<string>()

  constructor(
    readonly pinning: Pinning,
    readonly driver: Driver,
    readonly redis: RedisProcess | undefined,
    readonly wrk: boolean,
  ) {
    this.pool = new ServerPool(pinning)
  }

  /** A contender's spec with the ceiling headers filled in from the server it mirrors. */
  async resolve(comparison: Comparison, contender: Contender): Promise<ServerSpec> {
    const from = contender.headersFrom
    if (!from) return contender.spec
    const key = JSON.stringify([from, comparison.path])
    let headers = this.#derived.get(key)
    if (!headers) {
      const source = await this.pool.get(from.spec)
      const response = await this.preflight(source.url + comparison.path, from.request, {
        status: from.status,
        cacheStatus: 'hit',
      })
      headers = {}
      for (const [name, value] of Object.entries(response.headers)) {
        // Node adds these itself to every keep-alive response.
        if (
          value !== undefined &&
          !['connection', 'keep-alive', 'transfer-encoding'].includes(name)
        )
          headers[name] = value
      }
      this.#derived.set(key, headers)
    }
    return { ...contender.spec, headers }
  }

  /** One request, repeated until it is what the row expects (a hit needs the entry stored first). */
  async preflight(
    url: string,
    headers: Record<string, string> | undefined,
    expect: { status: number; cacheStatus?: string },
  ) {
    let last: Awaited<ReturnType<typeof fetchOnce>> | undefined
    for (let attempt = 0; attempt < 40; attempt++) {
      last = await fetchOnce(url, headers)
      const status = String(last.headers['cache-status'] ?? '')
      if (
        last.status === expect.status &&
        (!expect.cacheStatus || status.includes(expect.cacheStatus))
      )
        return last
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error(
      `pre-flight of ${url}: expected ${expect.status}${expect.cacheStatus ? ` with Cache-Status "${expect.cacheStatus}"` : ''}, got ${last?.status} (${last?.headers['cache-status'] ?? 'no Cache-Status'})`,
    )
  }

  async prepare(comparison: Comparison, contender: Contender): Promise<string> {
    const spec = await this.resolve(comparison, contender)
    const server = await this.pool.get(spec)
    const url = server.url + comparison.path
    await this.preflight(url, contender.headers, contender.expect)
    const key = JSON.stringify([spec, contender.headers])
    if (!this.#warmed.has(key)) {
      this.#warmed.add(key)
      // Large bodies and expensive renders warm up with fewer requests.
      const scale =
        spec.app === 'bare-expensive' || spec.app === 'acc-lazy'
          ? 8
          : Math.max(1, spec.size / (16 * KiB))
      await this.driver.warm({
        url,
        requests: Math.max(200, Math.round(mode.warmRequests / scale)),
        connections: 16,
        ...(contender.headers ? { headers: contender.headers } : {}),
      })
    }
    return url
  }

  async measure(
    comparison: Comparison,
    contender: Contender,
    url: string,
    driver: DriverName,
  ): Promise<Measured> {
    const server = await this.pool.get(await this.resolve(comparison, contender))
    const redisOnDriverCore =
      comparison.redis &&
      this.redis &&
      this.pinning.redis !== undefined &&
      this.pinning.redis === this.pinning.driver
    await server.phase('measure')
    const s0 = await server.sample()
    const calls0 = await redisCalls(this.redis, contender.expect.redisCommand)
    const r0 = comparison.redis ? this.redis?.cpuUs() : undefined
    const t0 = performance.now()
    const result = await this.driver.run({
      driver,
      url,
      connections: comparison.connections,
      duration: mode.duration,
      warmup: 0,
      ...(contender.headers ? { headers: contender.headers } : {}),
    })
    const wall = (performance.now() - t0) / 1000
    const r1 = comparison.redis ? this.redis?.cpuUs() : undefined
    const s1 = await server.sample()
    const calls1 = await redisCalls(this.redis, contender.expect.redisCommand)
    await server.phase('idle')

    const measured: Measured = {
      result,
      serverCpu: (s1.cpuUs - s0.cpuUs) / 1e6 / wall,
      usPerRequest: (s1.cpuUs - s0.cpuUs) / result.requests,
      gcUsPerRequest: (s1.gcUs - s0.gcUs) / result.requests,
      loadBound: false,
    }
    if (r0 !== undefined && r1 !== undefined) measured.redisCpu = (r1 - r0) / 1e6 / wall
    const coreLoad = result.driverCpu + (redisOnDriverCore ? (measured.redisCpu ?? 0) : 0)
    measured.loadBound = coreLoad >= LOAD_BOUND_CPU
    if (s0.invalidations && s1.invalidations) {
      const count = s1.invalidations.count - s0.invalidations.count
      measured.invalidations = {
        perSecond: count / wall,
        meanMs: (s1.invalidations.ms - s0.invalidations.ms) / Math.max(1, count),
        failed: s1.invalidations.failed - s0.invalidations.failed,
      }
    }

    // Validity: what every response had to be.
    const problems: string[] = []
    if (result.requests === 0) problems.push('no responses')
    if (result.errors > 0) problems.push(`${result.errors} errors (${result.timeouts} timeouts)`)
    const unexpected = Object.entries(result.statuses).filter(
      ([status]) => status !== String(contender.expect.status),
    )
    if (unexpected.length > 0)
      problems.push(`unexpected statuses ${unexpected.map(([s, n]) => `${s}×${n}`).join(', ')}`)
    const { counter, noMisses, redisCommand } = contender.expect
    if (counter && s0.stats && s1.stats) {
      const grew = s1.stats[counter]! - s0.stats[counter]!
      // Stores land just after their response: allow for the last few in flight.
      const needed = result.requests * (counter === 'stores' ? 0.9 : 0.98)
      if (grew < needed)
        problems.push(`${counter} grew by ${grew} for ${result.requests} responses`)
    }
    if (noMisses && s0.stats && s1.stats && s1.stats.misses! > s0.stats.misses!)
      problems.push(`${s1.stats.misses! - s0.stats.misses!} misses among the hits`)
    if (redisCommand && calls1 - calls0 < result.requests * 0.98)
      problems.push(
        `${calls1 - calls0} Redis ${redisCommand.toUpperCase()} for ${result.requests} responses`,
      )
    if (measured.invalidations && measured.invalidations.failed > 0)
      problems.push(`${measured.invalidations.failed} invalidateTags calls failed`)
    if (s1.errors.count > s0.errors.count)
      problems.push(
        `${s1.errors.count - s0.errors.count} errors reported to onError ("${s1.errors.last}")`,
      )
    if (problems.length > 0) measured.invalid = problems.join('; ')
    return measured
  }

  /** Rounds of A B / B A ...; autocannon first, wrk from the start again if autocannon was load-bound. */
  async compare(comparison: Comparison): Promise<ComparisonResult> {
    const contenders = [comparison.baseline, ...comparison.candidates]
    const result: ComparisonResult = { comparison, runs: contenders.map(() => []) }
    try {
      // Start every server of the comparison at once (each is idle until loaded).
      await Promise.all(
        contenders.map(async (c) => this.pool.get(await this.resolve(comparison, c))),
      )
      const urls: string[] = []
      for (const contender of contenders) urls.push(await this.prepare(comparison, contender))
      let driver: DriverName = forcedDriver ?? 'autocannon'
      for (let round = 0; round < mode.rounds; round++) {
        const order = contenders.map((_, i) => i)
        if (round % 2 === 1) order.reverse()
        for (const i of order)
          result.runs[i]![round] = await this.measure(comparison, contenders[i]!, urls[i]!, driver)
        const bound = result.runs.map((runs) => runs[round]!).filter((m) => m.loadBound)
        if (bound.length > 0 && driver === 'autocannon' && !forcedDriver && this.wrk) {
          const cpu = Math.max(
            ...bound.map(
              (m) =>
                m.result.driverCpu +
                (m.redisCpu ?? 0) * (this.pinning.redis === this.pinning.driver ? 1 : 0),
            ),
          )
          result.driverNote = `autocannon load-bound (its core ${cpu.toFixed(2)} busy): measured with wrk`
          driver = 'wrk'
          result.runs = contenders.map(() => [])
          round = -1
        }
      }
    } catch (err) {
      result.error = (err as Error).message.split('\n')[0]
    }
    return result
  }
}

function environment(pinning: Pinning, redis: RedisProcess | undefined, wrk: boolean): string[] {
  const cpus = os.cpus()
  const dirty = git('status', '--porcelain', '--', 'src', 'stores') !== ''
  return [
    `- date: ${new Date().toISOString()}`,
    `- mode: ${mode.name} (${mode.rounds} rounds of ${mode.duration} s per contender, A B / B A alternating; ratios are medians of the per-round ratios)`,
    `- Node ${process.version}, ${os.type()} ${os.release()} ${os.arch()}`,
    `- CPU: ${cpus[0]?.model ?? '?'}, ${os.availableParallelism()} cores available (${cpus.length} online)`,
    `- commit ${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes in src/ or stores/' : ''}`,
    `- pinning: ${pinning.note}`,
    `- load generators: autocannon ${packageVersion('autocannon')} (programmatic, bodies not accumulated, see below)${wrk ? `, wrk ${wrkVersion()} (1 thread)` : ', wrk not installed'}; a row is load-bound when the generator's core was >= ${LOAD_BOUND_CPU * 100} % busy`,
    `- peers: apicache ${packageVersion('apicache')}, Express ${packageVersion('express')}; ioredis ${packageVersion('ioredis')}; redis-server ${redis?.version ?? 'not installed (Redis scenarios skipped)'}`,
    `- RedisStore in the HTTP scenarios: timeoutMs ${args['redis-timeout'] ?? '100 (its default; a command slower than that makes the request a miss, and such a run invalid)'}`,
    `- load average at start: ${os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}`,
  ]
}

/**
 * Scenario 8 (bench/frameworks.ts's servers): for each framework, its own route sending the same
 * precomputed 1 KiB, the adapter's hit, and the route doing about 2 ms of work uncached, in
 * alternating rounds (own hit work / work hit own) through the pinned load generator, 10
 * connections. Prints its table; returns its rows for the Targets table.
 */
async function frameworks(pinning: Pinning, driver: Driver): Promise<string[][]> {
  say()
  say("## 8. Frameworks: each adapter's hit beside its framework's own routes (issue 20)")
  say()
  const rows: string[][] = []
  const targets: string[][] = []
  for (const name of FRAMEWORK_NAMES) {
    const runs = { '/own': [], '/hit': [], '/work': [] } as Record<FrameworkPath, Measured[]>
    let error: string | undefined
    const server = await startFramework(name, pinning.server)
    try {
      for (const path of FRAMEWORK_PATHS) {
        // The 2 ms route warms up with fewer requests (each costs 2 ms of the server's core).
        const requests = Math.round(mode.warmRequests / (path === '/work' ? 8 : 1))
        await driver.warm({ url: server.base + path, requests, connections: 16 })
      }
      await checkHit(name, server.base)
      for (let round = 0; round < mode.rounds; round++) {
        const order = round % 2 === 0 ? FRAMEWORK_PATHS : [...FRAMEWORK_PATHS].reverse()
        for (const path of order) {
          const result = await driver.run({
            driver: forcedDriver ?? 'autocannon',
            url: server.base + path,
            connections: 10,
            duration: mode.duration,
            warmup: 0,
          })
          runs[path].push(frameworkRun(result))
        }
      }
    } catch (err) {
      error = (err as Error).message.split('\n')[0]
    } finally {
      server.stop()
    }
    const ratio = (baseline: FrameworkPath, min: number) =>
      ratioOf(
        {
          // What ratioOf reads of a comparison: its target.
          comparison: { target: { min, text: `>= ${min}` } } as Comparison,
          runs: [runs[baseline], runs['/hit']],
          ...(error === undefined ? {} : { error }),
        },
        1,
      )
    const own = ratio('/own', FRAMEWORK_TARGETS.own)
    const work = ratio('/work', FRAMEWORK_TARGETS.work)
    const rps = (path: FrameworkPath) =>
      runs[path].length === 0
        ? '–'
        : Math.round(median(runs[path].map((m) => m.result.rps))).toLocaleString('en-US')
    rows.push([name, rps('/own'), rps('/hit'), rps('/work'), own.text, work.text])
    const adapter = name === 'hono' ? 'hono (fetch adapter)' : name
    for (const [what, min, r] of [
      ["the framework's own precomputed route", FRAMEWORK_TARGETS.own, own],
      ['the 2 ms route', FRAMEWORK_TARGETS.work, work],
    ] as const)
      targets.push([`frameworks, ${adapter}: hit / ${what}`, `>= ${min}`, r.text, r.verdict])
  }
  say(
    table(
      ['framework', 'own route req/s', 'hit req/s', '2 ms route req/s', 'hit / own', 'hit / 2 ms'],
      rows,
      ['l', 'r', 'r', 'r', 'l', 'l'],
    ),
  )
  say(
    '\nOne server process per framework (bench/frameworks.ts: Fastify with its plugin, Koa, Hono on @hono/node-server ' +
      'with the fetch adapter, Express with the middleware), 1 KiB text bodies, 10 connections; ratios are medians of ' +
      'the per-round ratios (range in brackets). Every run is checked: no errors, only 200s.',
  )
  return targets
}

/** A framework run as the report's ratios read it (its server's CPU is not sampled). */
function frameworkRun(result: RunResult): Measured {
  const problems: string[] = []
  if (result.requests === 0) problems.push('no responses')
  if (result.errors > 0) problems.push(`${result.errors} errors (${result.timeouts} timeouts)`)
  const other = Object.entries(result.statuses).filter(([status]) => status !== '200')
  if (other.length > 0)
    problems.push(`unexpected statuses ${other.map(([s, n]) => `${s}×${n}`).join(', ')}`)
  return {
    result,
    serverCpu: NaN,
    usPerRequest: NaN,
    gcUsPerRequest: NaN,
    loadBound: result.driverCpu >= LOAD_BOUND_CPU,
    ...(problems.length > 0 ? { invalid: problems.join('; ') } : {}),
  }
}

async function main(): Promise<void> {
  const redisCpu = args['redis-cpu'] === 'server' ? 'server' : 'driver'
  const pinning = choosePinning(redisCpu)
  const wrk = await hasWrk()
  const redis = await RedisProcess.start(pinning)
  const cleanup = () => redis?.stop()
  process.on('exit', cleanup)
  process.on('SIGINT', () => process.exit(130))
  const driver = await Driver.start(pinning)
  const runner = new Runner(pinning, driver, redis, wrk)

  say(`# node-accelerator benchmarks`)
  say()
  for (const line of environment(pinning, redis, wrk)) say(line)
  say()
  say(
    "Columns: req/s, p50 and p99 are medians over the rounds; server CPU is the server process's CPU over the run in cores " +
      '(below ~0.9 the server was not the bottleneck: the machine was busy or the load generator was); server µs/req is its CPU ' +
      "time per response; driver CPU is the load generator's core (+ redis-server's when they share it); the ratio is the median " +
      'of the per-round ratios of req/s (range in brackets); "by CPU/req" is the same comparison from server CPU per response, ' +
      'steadier when other processes compete for the machine; "contended" marks a ratio where a server got less than ' +
      `${CONTENDED_CPU} of its core without the generator being the limit (other processes took it). Every run is checked: no errors or timeouts, only the expected ` +
      "status, the accelerator's counters (hits, misses, 304s, stores) and Redis's command counts growing by one per response.",
  )

  const redisTimeout = args['redis-timeout'] ? Number(args['redis-timeout']) : undefined
  const plan = comparisons(
    mode.plan,
    redis?.url,
    Math.random().toString(36).slice(2, 8),
    redisTimeout,
  )
  const scenarioId = (c: Comparison) => /^(\d+[ab]?)\./.exec(c.scenario)?.[1] ?? ''
  const selected = plan.filter(
    (c) =>
      wanted(scenarioId(c)) ||
      (scenarioId(c) === '6b' && wanted('6')) ||
      (scenarioId(c) === '2b' && wanted('2')),
  )
  const results: ComparisonResult[] = []
  for (let i = 0; i < selected.length; i++) {
    const comparison = selected[i]!
    if (i === 0 || selected[i - 1]!.scenario !== comparison.scenario) {
      say()
      say(`## ${comparison.scenario}`)
      say()
    }
    const t0 = Date.now()
    const result = await runner.compare(comparison)
    results.push(result)
    console.log(
      `  … ${comparison.name}: ${comparison.candidates.map((_, c) => ratioOf(result, c + 1).text).join(' | ')}${result.driverNote ? ` [${result.driverNote}]` : ''} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    )
    // Servers no later comparison uses are stopped now.
    const later = selected
      .slice(i + 1)
      .flatMap((c) =>
        [c.baseline, ...c.candidates].flatMap((k) => [
          k.spec,
          ...(k.headersFrom ? [k.headersFrom.spec] : []),
        ]),
      )
    await runner.pool.retain(later)
    const last = i === selected.length - 1 || selected[i + 1]!.scenario !== comparison.scenario
    if (last) {
      const group = results.filter((r) => r.comparison.scenario === comparison.scenario)
      say(scenarioTable(group))
      const notes = group
        .filter((r) => r.driverNote)
        .map((r) => `${r.comparison.name}: ${r.driverNote}`)
      if (notes.length > 0) say(`\nDrivers: ${notes.join('; ')}.`)
      if (comparison.note) say(`\n${comparison.note}`)
    }
  }
  await runner.pool.retain([])

  // 6a: invalidateTags timing, in processes of their own (Redis emptied first: nothing else uses it now).
  const invalidations: InvalidationResult[] = []
  if (wanted('6') || wanted('6a')) {
    say()
    say('## 6a. invalidateTags: one tag held by every entry')
    say()
    for (const spec of mode.invalidation) {
      if (spec.store === 'redis' && !redis) continue
      if (redis) await redis.command('FLUSHALL')
      const full: InvalidationSpec = { ...spec, ...(redis ? { redisUrl: redis.url } : {}) }
      invalidations.push(
        await runJsonProcess<InvalidationResult>('./invalidation.js', full, pinning, [
          '--expose-gc',
        ]),
      )
    }
    say(invalidationTable(invalidations, TARGET_MS))
    say(
      "\nEntries are stored with the store's own `set` (1 KiB bodies, tags `shared` and `item:<i>`), then `app.invalidateTags(['shared'])` " +
        'is timed (after a full GC). RedisStore with its default 100 ms command timeout unless the row says otherwise; redis-server ' +
        (pinning.redis ? `on CPU ${pinning.redis}` : 'unpinned') +
        '.',
    )
  }

  // 7: memory per entry.
  let memory: MemoryResult | undefined
  if (wanted('7')) {
    say()
    say('## 7. Memory per entry: 1 KiB responses in a MemoryStore')
    say()
    const spec: MemorySpec = { entries: mode.memoryEntries, size: KiB }
    memory = await runJsonProcess<MemoryResult>('./memory.js', spec, pinning, ['--expose-gc'])
    say(memoryTable(memory))
    say(
      `\nFilled through real HTTP misses (each response stored with two tags, one of them its own), measured after full GCs ` +
        `(${memory.fillSeconds.toFixed(1)} s to fill). Heap: keys, entry and header objects, the tag index, the LRU's slots ` +
        `(allocated for maxEntries up front); buffers: the body copies.`,
    )
  }

  // 8: each framework adapter's hit beside its own framework's routes (issue 20).
  const frameworkTargets = wanted('8') ? await frameworks(pinning, driver) : []

  // The hit path's profile: where a hit's CPU goes, beside the ceiling's.
  const profiles: ProfileSummary[] = []
  if (mode.profile && (wanted('profile') || !only)) {
    say()
    say('## Hit-path profile (1 KiB, MemoryStore)')
    say()
    const acc: ServerSpec = { app: 'acc-memory', size: KiB }
    // The ceiling sends the headers of the accelerator's hit, read from a server of the pool.
    const ceiling = await runner.resolve({ path: '/page/1024' } as Comparison, {
      label: 'ceiling',
      spec: { app: 'ceiling', size: KiB },
      headersFrom: { spec: acc, status: 200 },
      expect: { status: 200 },
    })
    await runner.pool.retain([])
    const keep = args['profile-dir']
    profiles.push(
      await profileServer('ceiling', ceiling, '/page/1024', driver, pinning, 5, undefined, keep),
    )
    profiles.push(
      await profileServer(
        'accelerator hit',
        acc,
        '/page/1024',
        driver,
        pinning,
        5,
        undefined,
        keep,
      ),
    )
    if (keep)
      console.log(
        `\n.cpuprofile files kept in ${keep} (open them in Chrome DevTools or speedscope for flame graphs)`,
      )
    say(profileTables(profiles))
    say(
      '\n`node --cpu-prof --cpu-prof-interval=100` on each server under autocannon (50 connections, 5 s, after 20k warm-up requests, included); µs per request from the sampled self time. Profiling slows both servers.',
    )
    if (redis) {
      // The same for a Redis hit beside the Redis ceiling (one getBuffer + end): issue 14.
      const timeout = args['redis-timeout'] ? { timeoutMs: Number(args['redis-timeout']) } : {}
      for (const kib of args['profile-sizes']!.split(',').map(Number)) {
        if (!(kib > 0))
          throw new Error(
            `--profile-sizes must be KiB numbers such as 1,16, got ${args['profile-sizes']}`,
          )
        const size = kib * KiB
        const path = `/page/${size}`
        say()
        say(`## Hit-path profile (${kib} KiB, RedisStore)`)
        say()
        const prefix = (what: string) => `prof${process.pid}:${what}${size}:`
        const redisAcc: ServerSpec = {
          app: 'acc-redis',
          size,
          redisUrl: redis.url,
          prefix: prefix('hit'),
          ...timeout,
        }
        const redisCeiling = await runner.resolve({ path } as Comparison, {
          label: 'Redis ceiling',
          spec: { app: 'redis-ceiling', size, redisUrl: redis.url, prefix: prefix('ceil') },
          headersFrom: { spec: redisAcc, status: 200 },
          expect: { status: 200 },
        })
        await runner.pool.retain([])
        const redisProfiles = [
          await profileServer(
            `Redis ceiling ${kib} KiB`,
            redisCeiling,
            path,
            driver,
            pinning,
            5,
            undefined,
            keep,
          ),
          await profileServer(
            `Redis hit ${kib} KiB`,
            redisAcc,
            path,
            driver,
            pinning,
            5,
            undefined,
            keep,
          ),
        ]
        say(profileTables(redisProfiles))
      }
    }
  }

  // Targets.
  say()
  say('## Targets')
  say()
  const rows: string[][] = []
  for (const result of results) {
    const target = result.comparison.target
    if (!target) continue
    result.comparison.candidates.forEach((candidate, c) => {
      if (!candidate.targeted) return
      const ratio = ratioOf(result, c + 1)
      rows.push([
        `${result.comparison.scenario.replace(/^\d+[ab]?\.\s*/, '')}, ${result.comparison.name}: ${candidate.label}`,
        target.text,
        ratio.text,
        ratio.verdict + (ratio.contended ? ' (contended: re-run on a quiet machine)' : ''),
      ])
    })
  }
  rows.push(...frameworkTargets)
  for (const r of invalidations.filter((r) => r.entries >= 100_000)) {
    const ms = median(r.ms)
    const ok = r.error === undefined && r.dropped.every((d) => d === r.entries)
    const store =
      r.store === 'memory'
        ? 'MemoryStore'
        : `RedisStore (timeoutMs ${r.timeoutMs ?? '100, its default'})`
    rows.push([
      `invalidateTags, one tag over ${r.entries.toLocaleString('en-US')} entries, ${store}`,
      `< ${TARGET_MS[r.store]} ms`,
      ok ? `${ms.toFixed(1)} ms` : `failed: ${r.error}`,
      ok ? (ms < TARGET_MS[r.store] ? 'met' : 'NOT met') : 'NOT met (failed)',
    ])
  }
  say(table(['target', 'wanted', 'measured', 'verdict'], rows, ['l', 'l', 'l', 'l']))

  say()
  say('## How this was measured')
  say()
  say(
    "- autocannon 9 appends every response body to a JS string (`PipelinedRequestsQueue.addBody`, from the parser's `kOnBody`) " +
      'so that `expectBody`/`verifyBody` can see it; no option turns it off (`skipAggregateResult` only skips merging histograms). ' +
      'The bench replaces `addBody` with a no-op on each client through the documented `setupClient` hook, so bodies are parsed but not ' +
      'decoded into strings. Rows where autocannon still saturated its core are re-measured from the start with wrk (1 thread), and ' +
      'each table names the driver of each row.',
  )
  say(
    "- Latency percentiles come from the bench's own 10 µs histogram (autocannon's rounds to whole milliseconds); wrk's are its own.",
  )
  say(
    '- Each server process is warmed (JIT, the entry stored, checked to be a hit) before its first run, and stays up for every round of its comparison.',
  )
  say(
    "- Servers run with NODE_ENV=production (Express's production mode; apicache then omits its debug headers).",
  )
  say(
    `- Run time: ${((Date.now() - started) / 1000).toFixed(0)} s; load average at the end: ${os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}.`,
  )
  say(`- ${stealNote()}.`)

  driver.stop()
  redis?.stop()
  const out =
    args.out ??
    (mode.name === 'full' && !only
      ? fileURLToPath(new URL('../../../bench/RESULTS.md', import.meta.url))
      : undefined)
  if (out) {
    // The soak's section (npm run soak) is its own run: keep it.
    const soak = existsSync(out)
      ? /<!-- soak -->[\s\S]*<!-- \/soak -->/.exec(readFileSync(out, 'utf8'))?.[0]
      : undefined
    writeFileSync(out, lines.join('\n') + '\n' + (soak ? `\n${soak}\n` : ''))
    console.log(`\nwritten to ${out}`)
  }
}

await main()
process.exit(0)
