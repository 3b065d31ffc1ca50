/**
 * The load generators. `runLoad(spec)` drives one URL with autocannon (programmatic API) or wrk
 * and returns req/s, p50/p99, errors, statuses and the generator's own CPU over the measured
 * window. Run as `node drivers.js` with an IPC channel, this file is the driver process the
 * runner pins to a CPU of its own: it answers `run` messages one at a time.
 *
 * Body accumulation: autocannon 9 appends every response body to a JS string
 * (`PipelinedRequestsQueue.addBody`, `req.body += data`, called from the parser's kOnBody in
 * lib/httpClient.js) so that `expectBody`/`verifyBody`/`onResponse` can see it. No option turns
 * that off (`skipAggregateResult` only skips the histogram merge). The documented `setupClient`
 * hook runs on each client after its queue is created and before its first response, so the bench
 * replaces that one method with a no-op on each client: bodies are still received and parsed, just
 * not decoded into strings. (`accumulateBodies: true` keeps autocannon's default, for comparison.)
 */
import { spawn } from 'node:child_process'
import http from 'node:http'
import autocannon from 'autocannon'
import {
  CLOCK_TICKS,
  cpuUs,
  LatencyHistogram,
  type FromDriver,
  type RunResult,
  type RunSpec,
  type ToDriver,
  type WarmSpec,
} from './common.js'

const noop = () => {}
const keepBodiesOut = (client: autocannon.Client) => {
  client.pipelinedRequests.addBody = noop
}

function autocannonOnce(
  spec: RunSpec,
  seconds: number,
  onResponse?: (status: number, ms: number) => void,
): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const options: autocannon.Options = {
      url: spec.url,
      connections: spec.connections,
      duration: seconds,
      timeout: 10,
    }
    if (spec.headers) options.headers = spec.headers
    if (!spec.accumulateBodies) options.setupClient = keepBodiesOut
    const instance = autocannon(options, (err, result) => (err ? reject(err) : resolve(result)))
    if (onResponse)
      instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) =>
        onResponse(status, ms),
      )
  })
}

async function runAutocannon(spec: RunSpec): Promise<RunResult> {
  // autocannon ends a run on its 1 s tick: durations are whole seconds.
  if (spec.warmup > 0) await autocannonOnce(spec, Math.max(1, Math.round(spec.warmup)))
  const latency = new LatencyHistogram()
  let responses = 0
  const cpu0 = cpuUs()
  const t0 = performance.now()
  const result = await autocannonOnce(
    spec,
    Math.max(1, Math.round(spec.duration)),
    (_status, ms) => {
      responses++
      latency.record(ms)
    },
  )
  const seconds = (performance.now() - t0) / 1000
  const statuses: Record<string, number> = {}
  for (const [status, { count }] of Object.entries(result.statusCodeStats)) statuses[status] = count
  return {
    driver: 'autocannon',
    requests: responses,
    seconds: result.duration,
    rps: responses / result.duration,
    p50: latency.percentile(50),
    p99: latency.percentile(99),
    errors: result.errors,
    timeouts: result.timeouts,
    statuses,
    driverCpu: (cpuUs() - cpu0) / 1e6 / seconds,
  }
}

/** A duration printed by wrk (`797.00us`, `1.92ms`, `1.00s`, `2.00m`) in ms. */
function wrkMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim())
  if (!match) return NaN
  const value = Number(match[1])
  return value * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as 'us' | 'ms' | 's' | 'm']
}

/**
 * One wrk run (1 thread: one core), through `sh` so that the shell's own /proc stat, read after it
 * waited for wrk, gives wrk's CPU time (cutime + cstime): Node cannot read a child's rusage.
 */
function wrkOnce(
  spec: RunSpec,
  seconds: number,
): Promise<{ out: string; cpuUs: number; wallS: number }> {
  const args = ['-t1', `-c${spec.connections}`, `-d${seconds}s`, '--timeout', '10s', '--latency']
  for (const [name, value] of Object.entries(spec.headers ?? {}))
    args.push('-H', `${name}: ${value}`)
  args.push(spec.url)
  const script = 'wrk "$@"; status=$?; echo "@@stat $(cat /proc/$$/stat)"; exit $status'
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn('sh', ['-c', script, 'sh', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (data: Buffer) => (out += data))
    child.stderr.on('data', (data: Buffer) => (err += data))
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited ${code}: ${err || out}`))
      const stat = /@@stat (.*)/.exec(out)?.[1] ?? ''
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const ticks = Number(fields[13]) + Number(fields[14]) // cutime + cstime: the waited-for wrk
      resolve({ out, cpuUs: (ticks * 1e6) / CLOCK_TICKS, wallS: (performance.now() - t0) / 1000 })
    })
  })
}

async function runWrk(spec: RunSpec): Promise<RunResult> {
  if (spec.warmup > 0) await wrkOnce(spec, Math.max(1, Math.round(spec.warmup)))
  const { out, cpuUs: used, wallS } = await wrkOnce(spec, Math.max(1, Math.round(spec.duration)))
  const done = /(\d+) requests in ([\d.]+\w+)/.exec(out)
  if (!done) throw new Error(`unexpected wrk output: ${out}`)
  const requests = Number(done[1])
  const seconds = wrkMs(done[2]!) / 1000
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const [connect, read, write, timeout] = socket ? socket.slice(1).map(Number) : [0, 0, 0, 0]
  const bad = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const percentile = (p: number) =>
    wrkMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '')
  return {
    driver: 'wrk',
    requests,
    seconds,
    rps: requests / seconds,
    p50: percentile(50),
    p99: percentile(99),
    errors: connect! + read! + write! + timeout!,
    timeouts: timeout!,
    // wrk only counts statuses >= 400 ("Non-2xx or 3xx"); the runner checks the rest server-side.
    statuses: bad > 0 ? { '>=400': bad } : {},
    driverCpu: used / 1e6 / wallS,
  }
}

export function runLoad(spec: RunSpec): Promise<RunResult> {
  return spec.driver === 'wrk' ? runWrk(spec) : runAutocannon(spec)
}

/**
 * Warms a server up (JIT, connection objects, its cache) with plain keep-alive requests: quicker
 * than a load run, which autocannon only ends on a whole second. Resolves the statuses seen.
 */
export async function warm({
  url,
  requests,
  connections,
  headers = {},
}: WarmSpec): Promise<Record<string, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const statuses: Record<string, number> = {}
  let left = requests
  const one = () =>
    new Promise<void>((resolve, reject) => {
      http
        .get(url, { agent, headers }, (res) => {
          statuses[res.statusCode!] = (statuses[res.statusCode!] ?? 0) + 1
          res.resume()
          res.on('end', resolve)
          res.on('error', reject)
        })
        .on('error', reject)
    })
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (left-- > 0) await one()
    }),
  )
  agent.destroy()
  return statuses
}

/** Whether wrk is on the PATH. */
export function hasWrk(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('wrk', ['--version'], { stdio: 'ignore' })
    child.on('error', () => resolve(false))
    child.on('close', () => resolve(true))
  })
}

// As the driver process: one run at a time, on request.
if (process.send && process.argv[2] === '--driver') {
  const send = (message: FromDriver) => process.send!(message)
  process.on('message', async (message: ToDriver) => {
    if (message.type === 'exit') process.exit(0)
    try {
      if (message.type === 'warm')
        return send({ type: 'warmed', id: message.id, statuses: await warm(message.spec) })
      send({ type: 'result', id: message.id, result: await runLoad(message.spec) })
    } catch (err) {
      send({ type: 'result', id: message.id, error: (err as Error).stack ?? String(err) })
    }
  })
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready' })
}
