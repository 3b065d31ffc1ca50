/**
 * What the bench's processes share: the specs the runner sends to servers and drivers, what they
 * answer, the bodies every server serves, and small helpers (IPC, CPU time, percentiles).
 */
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'

export const KiB = 1024
export const MiB = 1024 * KiB

/** Which server a process runs; see bench/servers.ts for each one. */
export type App =
  | 'ceiling' // raw http: writeHead(status, the headers a hit carries) + end(the same bytes)
  | 'acc-memory' // accelerate(page) on MemoryStore: hits
  | 'redis-ceiling' // raw http: one ioredis getBuffer, then writeHead + end
  | 'acc-redis' // accelerate(page) on RedisStore: hits
  | 'redis-store-get' // raw http: one RedisStore.get of an entry, then writeHead + end(its body): the store's share of a hit
  | 'bare-stream' // a handler streaming `total` bytes in `chunk`-byte writes, no cache
  | 'acc-stream' // the same handler inside accelerate(): not storable, or stored under a new key each time
  | 'ceiling-304' // raw http: writeHead(304, the headers a cached 304 carries) + end()
  | 'bare-expensive' // sets an ETag, then renders an expensive body: full generation every time
  | 'acc-lazy' // the same handler returning its body lazily inside accelerate(): 304 before rendering
  | 'apicache-memory' // Express + apicache('1 hour') around page
  | 'apicache-redis' // Express + apicache with its Redis client (ioredis, see servers.ts)
  | 'acc-express' // Express + accelerate().middleware around page

export interface ServerSpec {
  app: App
  /** Body bytes of the page (hit scenarios) or streamed in total (stream scenarios). */
  size: number
  /** Bytes per write for the stream scenarios. */
  chunk?: number
  /** acc-stream: store each response under a key of its own (every request a miss that stores). */
  storing?: boolean
  /** acc-stream, not storing: a key of its own per request too (no coalescing of the misses). */
  distinct?: boolean
  /** The headers the ceilings send (read from the accelerator's own hit beforehand). */
  headers?: Record<string, string | string[]>
  redisUrl?: string
  /** Key prefix in Redis, unique per server process so runs never share entries. */
  prefix?: string
  /** Cold entries to hold beside the hot one (invalidation under load), in groups of 10 by tag. */
  cold?: number
  /** invalidateTags calls per second while a measurement runs (one group tag each). */
  invalidateRate?: number
  /** RedisStore's timeoutMs (the store's default when absent). */
  timeoutMs?: number
  /** acc-redis: RedisStore's localCache, this many bytes (hits from the process's memory). */
  localCacheBytes?: number
}

/** Messages from the runner to a server process. */
export type ToServer =
  | { type: 'sample'; id: number }
  | { type: 'phase'; id: number; phase: 'measure' | 'idle' }
  | { type: 'exit' }

/** What a server reports: its CPU time so far and the accelerator's counters. */
export interface ServerSample {
  /** User + system CPU time of the process, µs. */
  cpuUs: number
  /** Time the process spent in garbage-collection pauses, µs (PerformanceObserver 'gc'). */
  gcUs: number
  /** The accelerator's stats() (hits, misses, notModified, ...), when the server has one. */
  stats?: Record<string, number>
  /** Failures the accelerator reported to onError (store timeouts, ...), and the last message. */
  errors: { count: number; last: string }
  /** invalidateTags calls completed, and their total time in ms (invalidation under load). */
  invalidations?: { count: number; ms: number; failed: number }
}

export type FromServer =
  | { type: 'ready'; port: number }
  | { type: 'sample'; id: number; sample: ServerSample }
  | { type: 'phase'; id: number }
  | { type: 'error'; message: string }

export type DriverName = 'autocannon' | 'wrk'

/** One load run: `warmup` seconds discarded, then `duration` seconds measured. */
export interface RunSpec {
  driver: DriverName
  url: string
  connections: number
  duration: number
  warmup: number
  headers?: Record<string, string>
  /** autocannon only: keep its default of appending every body to a string (for the record). */
  accumulateBodies?: boolean
}

export interface RunResult {
  driver: DriverName
  /** Responses completed in the measured window. */
  requests: number
  seconds: number
  rps: number
  /** Latency percentiles in ms. */
  p50: number
  p99: number
  /** Connection errors, plus timeouts (counted apart too), plus read/write errors (wrk). */
  errors: number
  timeouts: number
  /** Responses by status (autocannon); wrk reports only those >= 400, as `status >= 400`. */
  statuses: Record<string, number>
  /** CPU of the load generator over the measured window, in cores (1 = one core busy). */
  driverCpu: number
}

/** Warm-up: `requests` requests over `connections` keep-alive connections, as fast as they go. */
export interface WarmSpec {
  url: string
  requests: number
  connections: number
  headers?: Record<string, string>
}

export type ToDriver =
  | { type: 'run'; id: number; spec: RunSpec }
  | { type: 'warm'; id: number; spec: WarmSpec }
  | { type: 'exit' }
export type FromDriver =
  | { type: 'ready' }
  | { type: 'result'; id: number; result?: RunResult; error?: string }
  | { type: 'warmed'; id: number; statuses: Record<string, number> }

/**
 * The page body: `size` bytes of HTML-ish text (the same bytes in every server of a size, so a
 * ceiling writes exactly what a hit writes).
 */
export function pageBody(size: number): Buffer {
  const unit = Buffer.from(
    '<p>node-accelerator bench: the same bytes a hit serves, written by a raw handler.</p>\n',
  )
  const body = Buffer.allocUnsafeSlow(size)
  for (let i = 0; i < size; i += unit.length) unit.copy(body, i, 0, Math.min(unit.length, size - i))
  return body
}

/** User + system CPU time of this process, µs. */
export function cpuUs(): number {
  const { user, system } = process.cpuUsage()
  return user + system
}

/** User + system CPU time of another process (and of its waited-for children), µs, from /proc. */
export function procCpuUs(pid: number, children = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces), which ends at the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // utime, stime, cutime, cstime are fields 14-17 of stat(5); here 0-based from field 3.
  const ticks =
    Number(fields[11]) +
    Number(fields[12]) +
    (children ? Number(fields[13]) + Number(fields[14]) : 0)
  return ticks * (1e6 / CLOCK_TICKS)
}

/** USER_HZ: 100 on every Linux since 2.6 (getconf CLK_TCK). */
export const CLOCK_TICKS = 100

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * Latencies in 10 µs buckets up to 10 s (autocannon's own histogram rounds to whole ms, too coarse
 * for sub-millisecond hits).
 */
export class LatencyHistogram {
  static readonly #RESOLUTION_MS = 0.01
  readonly #counts = new Uint32Array(1_000_001)
  #total = 0

  record(ms: number): void {
    const bucket = Math.min(
      this.#counts.length - 1,
      Math.round(ms / LatencyHistogram.#RESOLUTION_MS),
    )
    this.#counts[bucket]!++
    this.#total++
  }

  percentile(p: number): number {
    if (this.#total === 0) return NaN
    const rank = Math.ceil((p / 100) * this.#total)
    let seen = 0
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!
      if (seen >= rank) return i * LatencyHistogram.#RESOLUTION_MS
    }
    return NaN
  }
}

/**
 * Request/response over a child's IPC channel: sends `message` with a fresh id and resolves the
 * first reply carrying it (or rejects when the child exits first, or after `timeoutMs`).
 */
let nextId = 1
export function ask<T extends { id: number }>(
  child: ChildProcess,
  message: { type: string; [k: string]: unknown },
  timeoutMs = 60_000,
): Promise<T> {
  const id = nextId++
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`no answer to ${message.type} within ${timeoutMs} ms`)),
      timeoutMs,
    )
    const onMessage = (reply: { id?: number }) => {
      if (reply.id === id) done(undefined, reply as T)
    }
    const onExit = (code: number | null) =>
      done(new Error(`process exited (${code}) before answering ${message.type}`))
    function done(err?: Error, reply?: T) {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (err) reject(err)
      else resolve(reply!)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
    child.send({ ...message, id })
  })
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
