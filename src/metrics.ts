/**
 * `node-accelerator/metrics`: Prometheus metrics for an accelerator, with prom-client (an optional
 * peer dependency: only users of this subpath load it, and they share their app's copy, so the
 * metrics land in the registry their `/metrics` already serves).
 *
 * Everything here subscribes to the diagnostics channels the core publishes (src/diagnostics.ts),
 * keeping to one accelerator's messages; the counters the accelerator already keeps exactly
 * (`stats()`: stores, bytes stored, coalesced waiters, errors, the store's size) are read when
 * Prometheus scrapes. Names follow Prometheus' conventions: `accelerator_` first, base units
 * (seconds, bytes), `_total` on counters, and no label that grows with the keys.
 */
import { subscribe, unsubscribe, tracingChannel } from 'node:diagnostics_channel'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Counter, Gauge, Histogram, Registry, register as defaultRegistry } from 'prom-client'
import type { Accelerator, Stats } from './types.js'
import { describe, rejectUnknown } from './lib/describe.js'
import { CHANNELS, INVALIDATION_KINDS, OUTCOMES, STORE_OPS, storeOf } from './core/diagnostics.js'
import type {
  EvictMessage,
  GenerateContext,
  InvalidateContext,
  ResponseMessage,
  StoreContext,
} from './core/diagnostics.js'

export { Registry }

/** Options of {@link registerMetrics}. */
export interface MetricsOptions {
  /** The clock durations are measured with, in milliseconds. @default performance.now */
  now?: () => number
}

/** Handler runs: from 5 ms to 10 s. */
const HANDLER_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** Store calls: from 0.1 ms (in memory) to 1 s (a Redis timing out is at 0.1 s by default). */
const STORE_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
]

/** The one metric name that tells whether a registry has an accelerator's metrics already. */
const FIRST = 'accelerator_responses_total'

/**
 * Registers `accelerator`'s metrics in `registry` (prom-client's default registry when omitted)
 * and starts counting; returns a function that stops counting and removes them again. One
 * accelerator per registry: give a second one a `new Registry()` of its own.
 */
export function registerMetrics(
  accelerator: Accelerator,
  registry: Registry = defaultRegistry,
  options: MetricsOptions = {},
): () => void {
  if (typeof accelerator !== 'function' || typeof accelerator.stats !== 'function') {
    const got = describe(accelerator)
    throw new TypeError(`expected accelerator to be what accelerate() returns, got ${got}`)
  }
  if (!(registry instanceof Registry)) {
    throw new TypeError(`expected registry to be a prom-client Registry, got ${describe(registry)}`)
  }
  if (options === null || typeof options !== 'object')
    throw new TypeError(
      `expected registerMetrics()'s options to be an object, got ${describe(options)}`,
    )
  rejectUnknown(options, ['now'], 'registerMetrics()')
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw new TypeError(
      `expected options.now to be a function returning milliseconds, got ${describe(options.now)}`,
    )
  }
  if (registry.getSingleMetric(FIRST) !== undefined) {
    const fix =
      'give each accelerator a new Registry() (or first call what registerMetrics returned)'
    throw new Error(`registerMetrics: this registry already has an accelerator's metrics; ${fix}`)
  }
  const now = options.now ?? (() => performance.now())
  const registers = [registry]
  const stats = (): Stats => accelerator.stats()

  const responses = new Counter({
    name: 'accelerator_responses_total',
    help: 'Responses by what the cache did, as Cache-Status says (hit, not-modified, stale, miss, ...).',
    labelNames: ['outcome'],
    registers,
  })
  const handler = new Histogram({
    name: 'accelerator_handler_duration_seconds',
    help: 'Handler runs, until their response is finished and stored (refresh: in the background).',
    labelNames: ['kind'],
    buckets: HANDLER_BUCKETS,
    registers,
  })
  const storeDuration = new Histogram({
    name: 'accelerator_store_duration_seconds',
    help: 'Store calls by operation, failed ones included.',
    labelNames: ['op'],
    buckets: STORE_BUCKETS,
    registers,
  })
  const storeErrors = new Counter({
    name: 'accelerator_store_errors_total',
    help: 'Store calls that failed or timed out, by operation (served on without the store).',
    labelNames: ['op'],
    registers,
  })
  const invalidations = new Counter({
    name: 'accelerator_invalidations_total',
    help: 'Invalidations asked for, by kind: tags, soft-tags, url, clear.',
    labelNames: ['kind'],
    registers,
  })
  const invalidated = new Counter({
    name: 'accelerator_invalidated_entries_total',
    help: 'Entries the invalidations dropped or marked stale, by kind (as the store counts them).',
    labelNames: ['kind'],
    registers,
  })
  const evictions = new Counter({
    name: 'accelerator_evictions_total',
    help: 'Entries the in-memory store dropped to make room (bytes or entries at their bound).',
    registers,
  })
  const fromStats = (name: string, help: string, read: (stats: Stats) => number) =>
    statCounter(registers, name, help, () => read(stats()))
  fromStats('accelerator_stored_total', 'Responses stored.', (s) => s.stores)
  fromStats(
    'accelerator_stored_bytes_total',
    'Body bytes of the responses stored.',
    (s) => s.bytesStored,
  )
  const coalesced = "Requests that waited on another request's generation of their key."
  fromStats('accelerator_coalesced_total', coalesced, (s) => s.coalesced)
  fromStats(
    'accelerator_errors_total',
    'Failures reported to onError (served on).',
    (s) => s.errors,
  )
  // Only a store that knows its size says it (MemoryStore does; RedisStore does not).
  if (stats().entries !== undefined) {
    gauge(
      registers,
      'accelerator_store_entries',
      'Entries the store holds.',
      () => stats().entries!,
    )
    gauge(
      registers,
      'accelerator_store_bytes',
      'Bytes the store holds, as it counts.',
      () => stats().bytes!,
    )
  }
  for (const outcome of OUTCOMES) responses.inc({ outcome }, 0)
  for (const kind of ['request', 'refresh']) handler.zero({ kind })
  for (const op of STORE_OPS) {
    storeDuration.zero({ op })
    storeErrors.inc({ op }, 0)
  }
  for (const kind of INVALIDATION_KINDS) {
    invalidations.inc({ kind }, 0)
    invalidated.inc({ kind }, 0)
  }

  // Each series' child, made once: prom-client hashes a labels object on every call otherwise.
  const byOutcome = new Map(OUTCOMES.map((outcome) => [outcome, responses.labels({ outcome })]))
  const byKind = {
    request: handler.labels({ kind: 'request' }),
    refresh: handler.labels({ kind: 'refresh' }),
  }
  const byOp = new Map(STORE_OPS.map((op) => [op, storeDuration.labels({ op })]))

  // When a traced call started, on its context under a symbol of this registration's own (a
  // WeakMap would cost each store call more than the rest of its metrics).
  const startedAt = Symbol('startedAt')
  type Timed = { [startedAt]?: number }
  const started = (context: { accelerator: Accelerator } & Timed) => {
    if (context.accelerator === accelerator) context[startedAt] = now()
  }
  const seconds = (context: Timed) => {
    const at = context[startedAt]
    return at === undefined ? undefined : (now() - at) / 1000
  }

  const onResponse = (message: unknown) => {
    const { accelerator: from, outcome } = message as ResponseMessage
    if (from === accelerator) byOutcome.get(outcome)!.inc()
  }
  const onEvict = (message: unknown) => {
    if ((message as EvictMessage).store === storeOf(accelerator)) evictions.inc()
  }
  const generate = {
    start: started,
    asyncEnd(context: GenerateContext & Timed) {
      const elapsed = seconds(context)
      if (elapsed !== undefined) byKind[context.background ? 'refresh' : 'request'].observe(elapsed)
    },
  }
  const store = {
    start: started,
    asyncEnd(context: StoreContext & Timed) {
      const elapsed = seconds(context)
      if (elapsed !== undefined) byOp.get(context.op)!.observe(elapsed)
    },
    error(context: StoreContext) {
      if (context.accelerator === accelerator) storeErrors.inc({ op: context.op })
    },
  }
  const invalidate = {
    asyncEnd(context: InvalidateContext) {
      if (context.accelerator !== accelerator || context.error !== undefined) return
      invalidations.inc({ kind: context.kind })
      const { kind, result } = context
      if (typeof result === 'number') invalidated.inc({ kind }, result)
    },
  }
  subscribe(CHANNELS.response, onResponse)
  subscribe(CHANNELS.evict, onEvict)
  tracingChannel(CHANNELS.generate).subscribe(generate as never)
  tracingChannel(CHANNELS.store).subscribe(store as never)
  tracingChannel(CHANNELS.invalidate).subscribe(invalidate as never)

  let registered = true
  return () => {
    if (!registered) return
    registered = false
    unsubscribe(CHANNELS.response, onResponse)
    unsubscribe(CHANNELS.evict, onEvict)
    tracingChannel(CHANNELS.generate).unsubscribe(generate as never)
    tracingChannel(CHANNELS.store).unsubscribe(store as never)
    tracingChannel(CHANNELS.invalidate).unsubscribe(invalidate as never)
    for (const name of NAMES) registry.removeSingleMetric(name)
  }
}

/** Every metric name registerMetrics may register. */
const NAMES = [
  'accelerator_responses_total',
  'accelerator_handler_duration_seconds',
  'accelerator_store_duration_seconds',
  'accelerator_store_errors_total',
  'accelerator_invalidations_total',
  'accelerator_invalidated_entries_total',
  'accelerator_evictions_total',
  'accelerator_stored_total',
  'accelerator_stored_bytes_total',
  'accelerator_coalesced_total',
  'accelerator_errors_total',
  'accelerator_store_entries',
  'accelerator_store_bytes',
]

/** A counter following one of the accelerator's own (which only grow), read at each scrape. */
function statCounter(registers: Registry[], name: string, help: string, read: () => number): void {
  let counted = 0
  new Counter({
    name,
    help,
    registers,
    collect() {
      const value = read()
      this.inc(value - counted)
      counted = value
    },
  })
}

/** A gauge read at each scrape. */
function gauge(registers: Registry[], name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers,
    collect() {
      this.set(read())
    },
  })
}

/**
 * A `(req, res)` listener answering with `registry`'s metrics in Prometheus' text format (for
 * `GET /metrics`); a collector that throws gets a `500` naming it.
 */
export function metricsListener(
  registry: Registry = defaultRegistry,
): (req: IncomingMessage, res: ServerResponse) => void {
  const text = 'text/plain; charset=utf-8'
  return (req, res) => {
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
        res.end(req.method === 'HEAD' ? undefined : text)
      },
      (err: Error) => {
        res.writeHead(500, { 'content-type': text, 'cache-control': 'no-store' })
        res.end(`collecting metrics failed: ${err.message}\n`)
      },
    )
  }
}
