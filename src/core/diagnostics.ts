/**
 * Tracing without a dependency: what the accelerator does, published on `node:diagnostics_channel`
 * (docs/operations.md, "Metrics and tracing"). The core only publishes; metrics (src/metrics.ts), OpenTelemetry
 * or a log subscribe. Nobody subscribing costs one `hasSubscribers` read per call: no message is
 * built, no promise chained, so the hit path pays nothing measurable.
 *
 * Every message and trace context names the `accelerator` it comes from (the function
 * `accelerate()` returned), so that a subscriber can keep to one accelerator of several.
 * TracingChannels (`generate`, `store`, `invalidate`) need Node 20.13 or later, where
 * `TracingChannel.hasSubscribers` exists.
 */
import { channel, tracingChannel } from 'node:diagnostics_channel'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CacheEntry, CacheStore, InvalidateOptions } from '../store.js'
import type { AcceleratedResponse, Accelerator } from '../types.js'
import type { Miss, Run } from './generate.js'
import { tagList } from '../http/tags.js'

/** The channels' names; each starts with `node-accelerator:`. */
export const CHANNELS = {
  /** A channel: one {@link ResponseMessage} per response the accelerator answers. */
  response: 'node-accelerator:response',
  /** A TracingChannel around each generation (a handler run), context {@link GenerateContext}. */
  generate: 'node-accelerator:generate',
  /** A TracingChannel around each call to the store, context {@link StoreContext}. */
  store: 'node-accelerator:store',
  /** A TracingChannel around `invalidateTags`, `invalidate`, `clear`: {@link InvalidateContext}. */
  invalidate: 'node-accelerator:invalidate',
  /** A channel: one {@link EvictMessage} per entry a MemoryStore drops for room. */
  evict: 'node-accelerator:evict',
} as const

/**
 * What the cache did for a response, as its Cache-Status says (RFC 9211):
 * - `hit`: a fresh stored response (`hit; ttl=N`), to a waiter of a generation too;
 * - `not-modified`: a `304` answered from a fresh stored response (`hit`), its body not sent;
 * - `stale`: a stale stored response served (`hit; ttl=-N; detail=stale-while-revalidate`,
 *   `stale-if-error` or `max-stale`);
 * - `miss`: the handler ran for it (`fwd=miss`, or `fwd=stale` when it replaced a stale entry);
 * - `revalidated`: the handler confirmed a stale entry with a 304 (`fwd=stale; fwd-status=304`);
 * - `bypass`: not looked up (other methods, `unless`, no key, after `close()`);
 * - `only-if-cached`: the `504` for `Cache-Control: only-if-cached` with nothing stored.
 */
export type Outcome = (typeof OUTCOMES)[number]

/** Every {@link Outcome}, in the order above. */
export const OUTCOMES = [
  'hit',
  'not-modified',
  'stale',
  'miss',
  'revalidated',
  'bypass',
  'only-if-cached',
] as const

/**
 * Published on `node-accelerator:response` once per response, when the cache decided it (before
 * its headers go out: a subscriber may still add to the request's span). Synchronous, in the
 * request's async context, except for a waiter served by another request's generation: find its
 * span by `req`, not by the active context.
 */
export interface ResponseMessage {
  accelerator: Accelerator
  req: IncomingMessage
  res: ServerResponse
  /** The cache key (the variant's, when one was looked up); undefined for a bypass. */
  key: string | undefined
  outcome: Outcome
}

/**
 * The context of a `node-accelerator:generate` trace: `start` when the handler is called,
 * `asyncEnd` once the generation is over (its response finished and stored, or known not to be).
 */
export interface GenerateContext {
  accelerator: Accelerator
  /** The request the handler runs for (for a background refresh, the cache's own copy of it). */
  req: IncomingMessage
  res: ServerResponse
  key: string
  /** A background refresh of a stale entry (stale-while-revalidate, soft purge): nobody waits. */
  background: boolean
}

/** The store operations the accelerator calls. */
export type StoreOp = (typeof STORE_OPS)[number]

/** Every {@link StoreOp}. */
export const STORE_OPS = ['get', 'checkpoint', 'set', 'delete', 'invalidateTags', 'clear'] as const

/**
 * The context of a `node-accelerator:store` trace, around one store call: `result` on `asyncEnd`,
 * `error` on `error` (a failing or timed-out store; the accelerator fails open).
 */
export interface StoreContext {
  accelerator: Accelerator
  op: StoreOp
  key?: string
  /** For `set`: the entry (its `body.length` is the bytes stored). */
  entry?: CacheEntry
  tags?: readonly string[]
  soft?: boolean
  /** For `clear`: the key prefix (the accelerator's namespace). */
  keyPrefix?: string | undefined
  result?: unknown
  error?: unknown
}

/** How an invalidation was asked for. */
export type InvalidationKind = (typeof INVALIDATION_KINDS)[number]

/** Every {@link InvalidationKind}. */
export const INVALIDATION_KINDS = ['tags', 'soft-tags', 'url', 'clear'] as const

/** The context of a `node-accelerator:invalidate` trace: `result`, how many entries it affected. */
export interface InvalidateContext {
  accelerator: Accelerator
  kind: InvalidationKind
  tags?: readonly string[]
  url?: string
  result?: unknown
  error?: unknown
}

/** Published on `node-accelerator:evict` by a MemoryStore for each entry it drops to make room. */
export interface EvictMessage {
  /** The store (the one given as `options.store`, or the accelerator's own). */
  store: CacheStore
  key: string
  /** What the entry counted for in the store's budget, in bytes. */
  bytes: number
}

const responses = channel(CHANNELS.response)
const generations = tracingChannel<unknown, GenerateContext>(CHANNELS.generate)
const storeCalls = tracingChannel<unknown, StoreContext>(CHANNELS.store)
const invalidations = tracingChannel<unknown, InvalidateContext>(CHANNELS.invalidate)

/**
 * Each accelerator by its resolved options (one object per accelerator, known to every part of
 * the core), and the store it really uses (the one the observing wrapper calls).
 */
const accelerators = new WeakMap<object, Accelerator>()
const stores = new WeakMap<object, CacheStore>()

function acceleratorOf(opts: object): Accelerator {
  return accelerators.get(opts)!
}

/** The options an accelerator resolved (an adapter that answers some requests itself reads them). */
const resolvedOptions = new WeakMap<Accelerator, object>()

export function optionsOf<O extends object>(accelerator: Accelerator): O | undefined {
  return resolvedOptions.get(accelerator) as O | undefined
}

/** The store an accelerator calls (its own MemoryStore when none was given); evictions name it. */
export function storeOf(accelerator: Accelerator): CacheStore | undefined {
  return stores.get(accelerator)
}

/**
 * Registers `accelerator` as the one `opts` belongs to, and traces its invalidations. Called once,
 * on the object `accelerate()` returns.
 */
export function withDiagnostics<A extends Accelerator>(opts: object, accelerator: A): A {
  accelerators.set(opts, accelerator)
  stores.set(accelerator, stores.get(opts)!)
  resolvedOptions.set(accelerator, opts)
  const { invalidateTags, invalidate, clear } = accelerator
  type Fields = Omit<InvalidateContext, 'accelerator'>
  const traced = <T>(fields: Fields, call: () => Promise<T>): Promise<T> => {
    if (!invalidations.hasSubscribers) return call()
    return invalidations.tracePromise(call, { accelerator, ...fields })
  }
  accelerator.invalidateTags = (given: Iterable<string> | string, options?: InvalidateOptions) => {
    const kind = options?.soft === true ? 'soft-tags' : 'tags'
    // Iterated once, here: a generator's tags reach subscribers and the store alike.
    const tags = (tagList(given) ?? given) as readonly string[]
    return traced({ kind, tags }, () => invalidateTags(tags, options))
  }
  accelerator.invalidate = (url: string, options?: { method?: string; host?: string }) =>
    traced({ kind: 'url', url }, () => invalidate(url, options))
  accelerator.clear = () => traced({ kind: 'clear' }, () => clear())
  return accelerator
}

/**
 * The store as the accelerator calls it: each call traced on `node-accelerator:store` while
 * anyone subscribes, and handed straight through (the store's own promise) otherwise.
 */
export function observedStore(opts: object, store: CacheStore): CacheStore {
  stores.set(opts, store)
  type Fields = Omit<StoreContext, 'accelerator'>
  const traced = <T>(fields: Fields, call: () => Promise<T>): Promise<T> =>
    storeCalls.tracePromise(call, { accelerator: acceleratorOf(opts), ...fields })
  // The contract's methods only, explicitly (a Proxy would cost every hit a trap): a method added
  // to CacheStore, optional ones included, must be added here too.
  const observed: CacheStore = {
    get(key) {
      if (!storeCalls.hasSubscribers) return store.get(key)
      return traced({ op: 'get', key }, () => store.get(key))
    },
    checkpoint() {
      if (!storeCalls.hasSubscribers) return store.checkpoint()
      return traced({ op: 'checkpoint' }, () => store.checkpoint())
    },
    set(key, entry, since) {
      if (!storeCalls.hasSubscribers) return store.set(key, entry, since)
      return traced({ op: 'set', key, entry }, () => store.set(key, entry, since))
    },
    delete(key) {
      if (!storeCalls.hasSubscribers) return store.delete(key)
      return traced({ op: 'delete', key }, () => store.delete(key))
    },
    invalidateTags(tags, options) {
      if (!storeCalls.hasSubscribers) return store.invalidateTags(tags, options)
      const soft = options?.soft === true
      return traced({ op: 'invalidateTags', tags, soft }, () => store.invalidateTags(tags, options))
    },
    clear(keyPrefix) {
      if (!storeCalls.hasSubscribers) return store.clear(keyPrefix)
      return traced({ op: 'clear', keyPrefix }, () => store.clear(keyPrefix))
    },
    close: () => store.close(),
  }
  // Only a store that knows its size has size(): stats() reports entries and bytes when known.
  if (store.size) observed.size = () => store.size!()
  // Untraced: a trace is asynchronous; see storeCallsTraced.
  if (store.peek) observed.peek = (key) => store.peek!(key)
  // Only a store that leases has lease(): the core coalesces across processes only then.
  if (store.lease) observed.lease = (key, ttlMs, ifAbsent) => store.lease!(key, ttlMs, ifAbsent)
  if (store.onInvalidation) observed.onInvalidation = (listener) => store.onInvalidation!(listener)
  return observed
}

/** Whether anyone traces store calls: then lookups go through `get`, never `peek`. */
export function storeCallsTraced(): boolean {
  return storeCalls.hasSubscribers
}

/** A generation as generate.ts runs it. */
export type Generate = (
  req: IncomingMessage,
  res: AcceleratedResponse,
  run: Run,
  miss: Miss,
) => Promise<void>

/** `generate`, traced on `node-accelerator:generate` while anyone subscribes. */
export function tracedGenerate(opts: object, generate: Generate): Generate {
  return (req, res, run, miss) => {
    if (!generations.hasSubscribers) return generate(req, res, run, miss)
    const background = miss.background === true
    const context = { accelerator: acceleratorOf(opts), req, res, key: miss.key, background }
    return generations.tracePromise(generate, context, undefined, req, res, run, miss)
  }
}

/** Publishes a response's outcome on `node-accelerator:response`, when anyone subscribes. */
export function responded(
  opts: object,
  req: IncomingMessage,
  res: ServerResponse,
  key: string | undefined,
  outcome: Outcome,
): void {
  if (!responses.hasSubscribers) return
  const message: ResponseMessage = { accelerator: acceleratorOf(opts), req, res, key, outcome }
  responses.publish(message)
}

/**
 * Publishes the outcome of a response served from a stored entry at `now`: stale past its
 * `staleAt`, else a 304 when the hit path answers one (`notModified`, which it decided), else a
 * hit.
 */
export function servedEntry(
  opts: object,
  req: IncomingMessage,
  res: ServerResponse,
  key: string,
  entry: CacheEntry,
  now: number,
  notModified: boolean,
): void {
  if (!responses.hasSubscribers) return
  const outcome = now >= entry.staleAt ? 'stale' : notModified ? 'not-modified' : 'hit'
  const message: ResponseMessage = { accelerator: acceleratorOf(opts), req, res, key, outcome }
  responses.publish(message)
}
