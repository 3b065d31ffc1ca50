/**
 * The request flow: lookup → hit / stale / coalesce / generate → tee → store. HTTP rules live in
 * small pure modules (policy, conditional, stale, vary, revalidate); storage behind CacheStore.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CacheEntry, CacheStore, InvalidateOptions } from './store.js'
import type { AcceleratedResponse, Accelerator, Handler, Stats } from './types.js'
import { MemoryStore } from '../stores/memory.js'
import { resolveOptions, type AccelerateOptions } from './core/options.js'
import { describe } from './lib/describe.js'
import { namespacePrefix } from './core/key.js'
import { changedKeys, keyRequest, liveKey, tagsError, validTags } from './core/invalidation.js'
import { urlPurge, type InvalidateUrlOptions } from './core/invalidation.js'
import { safeReporter } from './core/report.js'
import { parseCacheControl } from './http/cache-control.js'
import { answersNotModified } from './http/conditional.js'
import { clientDemand, hasOriginOnlyPrecondition, isUnsafe } from './http/request.js'
import { hitWriterFor, isMultiRange, rangeResponse, statusHeadersFor } from './core/respond.js'
import { entryState } from './core/stale.js'
import { varyNames } from './http/vary.js'
import { storeKeyFor } from './core/variants.js'
import { Flights } from './core/flights.js'
import type { Generation, Settled } from './core/generation.js'
import { dropChanged } from './core/drop-changed.js'
import { handlerRunner, sendStatus } from './core/run-handler.js'
import { memoizeIn, type AppMemoizeOptions } from './memoize/memoize.js'
import { generator, noCounts, type Miss, type Run } from './core/generate.js'
import { observedStore, responded, servedEntry, withDiagnostics } from './core/diagnostics.js'
import { leader } from './core/lease.js'
import { lookupIn } from './core/lookup.js'
import { middleware } from './core/middleware.js'
import { Refreshes } from './core/refresh.js'
import { Purges } from './core/purges.js'

/** Wraps `handler` (a `(req, res)` listener) in a response cache. */
export function accelerate(handler: Handler, options?: AccelerateOptions): Accelerator {
  if (typeof handler !== 'function') {
    throw new TypeError(`expected handler to be a function, got ${describe(handler)}`)
  }
  const opts = resolveOptions(options)
  const store: CacheStore = observedStore(opts, opts.store ?? new MemoryStore({ now: opts.now }))
  const prefix = namespacePrefix(opts.namespace)
  const counts = noCounts()
  const report = safeReporter(opts.onError, () => counts.errors++)
  const statusHeaders = statusHeadersFor(opts.statusHeader, opts.xCache)
  const writeHit = hitWriterFor(opts.statusHeader, opts.xCache)
  const flights = new Flights(opts.coalesceTimeoutMs, opts.now)
  const writes = new Set<Promise<boolean>>()
  const generate = generator({ opts, store, counts, report, statusHeaders, writes, flights })
  const runHandler = handlerRunner(handler, report)
  const refreshes = new Refreshes(opts.backgroundConcurrency, flights, counts, generate, runHandler)
  const purges = new Purges(store, flights, report)
  // Purges in other processes seal this one's generations too, when the store hears of them.
  const unwatch = store.onInvalidation?.(() => flights.seal())
  const lookup = lookupIn(store, opts, report)
  const lead = leader({ store, flights, opts, report, lookup, hit: serveEntry })
  let closed = false

  /**
   * Runs the request through the cache; `run` generates the response (handler or `next`); with
   * `detach`, it may also run with no client (a background refresh; not so for middleware).
   */
  async function serve(req: IncomingMessage, res: AcceleratedResponse, run: Run, detach: boolean) {
    const base = cacheKey(req)
    if (base === undefined) {
      res.locals ??= {} // for the handler: a hit never runs it, a miss sets it in generate
      counts.bypasses++
      responded(opts, req, res, undefined, 'bypass')
      // RFC 9111 §4.4: what an unsafe method changed is dropped once it succeeded.
      if (!opts.sharedCache || !isUnsafe(req.method) || closed) return void run()
      return dropChanged(res, run, (sent) =>
        purges.dropAll(changedKeys(opts, keyRequest(req), sent)),
      )
    }
    const cc = parseCacheControl(req.headers['cache-control'])
    // RFC 9111 §4.3.2: preconditions a cache does not evaluate go to the handler.
    if (hasOriginOnlyPrecondition(req.headers)) {
      return generate(req, res, run, { base, key: base, cc, ifErrorUntil: 0 })
    }
    const found = lookup(base, req.headers) // at once from a store that can (no turn for a hit)
    const { key, entry, record, storeDown } = found instanceof Promise ? await found : found
    const now = opts.now()
    const honored = entry && opts.honorClientNoCache
    const demand = honored ? clientDemand(entry, now, req.headers, cc, opts) : 'as-usual'
    const forced = demand === 'revalidate'
    const acceptStale = demand === 'accept-stale'
    const usable = entry && !forced && (now < entry.staleAt || acceptStale)
    if (usable && !isMultiRange(req.headers.range)) {
      return serveEntry(req, res, key, entry, now, 'hit', acceptStale ? 'max-stale' : undefined)
    }
    // A Range not answered from a fresh entry goes to the handler, and its answer is not stored.
    if (req.headers.range !== undefined) {
      return generate(req, res, run, { base, key, cc, ifErrorUntil: 0, uncached: true })
    }
    const { state, ifErrorUntil } =
      entry && !forced ? entryState(entry, now, opts) : { state: 'stale', ifErrorUntil: 0 }
    const flight = flights.get(key)
    // Served stale at once while one regeneration runs: in the background, or (middleware, which
    // cannot call the stack without a client) in the foreground of the request that started it.
    if (entry && state === 'stale-while-revalidate' && (flight || detach)) {
      counts.staleHits++
      const none = parseCacheControl(undefined)
      if (!flight)
        refreshes.start(req, { base, key, record, stale: entry, ifErrorUntil: 0, cc: none })
      return serveEntry(req, res, key, entry, now, 'hit', 'stale-while-revalidate')
    }
    // RFC 9111 §5.2.1.7: only-if-cached and nothing usable stored → 504 (no tee: it says so).
    if (cc.has('only-if-cached')) {
      responded(opts, req, res, key, 'only-if-cached')
      return sendStatus(res, 504, statusHeaders('detail=only-if-cached', 'MISS'))
    }
    const miss: Miss = { base, key, record, stale: entry, ifErrorUntil, cc, storeDown }
    await coalesce(req, res, run, miss)
  }

  /**
   * Waits on the generation under way for the key, or leads the next one. A request sent on from
   * one that cannot serve it (another variant, no body, too slow, gone) loops here: the first to
   * find no joinable generation starts one, registered at once, and the others wait on it.
   */
  async function coalesce(req: IncomingMessage, res: AcceleratedResponse, run: Run, miss: Miss) {
    // The request's own Miss, changed in place (a spread with more keys costs a miss 0.5 µs);
    // `return await`: fewer turns than returning the promise from an async function.
    let last: Generation | undefined
    const since = performance.now()
    for (;;) {
      const flight = flights.joinable(miss.key)
      if (!flight && flights.passes(miss.key)) return await generate(req, res, run, miss)
      if (!flight || flight === last) {
        miss.flight = flights.start(miss.key)
        // One generation across processes too: a hit stored by another meanwhile is served.
        if (lead && (await lead(req, res, miss, since))) return
        return await generate(req, res, run, miss)
      }
      if (!last) counts.coalesced++
      last = flight
      const settled: Settled = await flight.wait(req, res)
      if (settled.kind === 'served') return
      if (settled.kind === 'alone') return generate(req, res, run, miss)
      if (settled.kind === 'entry' && serveOutcome(req, res, miss.base, settled)) return
      if (settled.kind === 'next') miss.key = settled.key
    }
  }

  /** The base store key, or undefined when the request bypasses the cache. */
  function cacheKey(req: IncomingMessage): string | undefined {
    if (closed || (req.method !== 'GET' && req.method !== 'HEAD')) return undefined
    try {
      if (opts.unless?.(req)) return undefined
      // The whole URL (req.originalUrl under a mount path), as sent.
      const key = liveKey(opts.key, req)
      if (typeof key === 'string') return prefix + key
      if (key === undefined) return undefined
      const message = `expected options.key to return a string or undefined, got ${describe(key)}`
      report(new TypeError(message), { op: 'key' })
    } catch (err) {
      report(err as Error, { op: 'key' })
    }
    return undefined
  }

  function serveEntry(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    entry: CacheEntry,
    now: number,
    params: string,
    detail?: string,
  ): void {
    counts.hits++
    if (req.headers.range !== undefined) {
      const range = rangeResponse(req, entry, now, statusHeaders, params, detail)
      const { status, headers, body } = range
      if (status === 304) counts.notModified++
      servedEntry(opts, req, res, key, entry, now, status === 304)
      res.writeHead(status, headers)
      return void res.end(body)
    }
    const notModified = answersNotModified(req.headers, entry.status, entry.headers)
    if (notModified) counts.notModified++
    servedEntry(opts, req, res, key, entry, now, notModified)
    const form = notModified ? 'not-modified' : req.method === 'HEAD' ? 'head' : 'full'
    writeHit(res, entry, now, params, detail, form)
  }

  /**
   * Serves a waiter what the generation it waited on produced, unless it is another variant's, or
   * already stale (only a stale-if-error outcome is served stale: that is what it is for).
   */
  function serveOutcome(
    req: IncomingMessage,
    res: ServerResponse,
    base: string,
    { entry, key, detail }: Extract<Settled, { kind: 'entry' }>,
  ): boolean {
    const names = varyNames(entry.headers.vary)
    const now = opts.now()
    const own = storeKeyFor(base, names, req.headers, opts.normalizeVary)
    if (own !== key || (detail === undefined && now >= entry.staleAt)) return false
    serveEntry(req, res, key, entry, now, 'hit', detail)
    return true
  }

  function guard(req: IncomingMessage, res: ServerResponse, run: Run, canRefresh: boolean): void {
    serve(req, res as AcceleratedResponse, run, canRefresh).catch((err: Error) => {
      // A defect of the cache itself: report it, and never leave the client waiting.
      report(err, { op: 'accelerate' })
      if (!res.headersSent) sendStatus(res, 500)
    })
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    guard(req, res, (fallback, demand) => runHandler(req, res, fallback, 'handler', demand), true)
  }
  return withDiagnostics(
    opts,
    Object.assign(listener, {
      middleware(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
        guard(req, res, async () => (next(), true), false)
      },
      invalidateTags(given: Iterable<string> | string, options?: InvalidateOptions) {
        // Not async: the seal is the last step before the caller resumes (no extra turns after it).
        const tags = validTags(given)
        if (tags === undefined) return Promise.reject(tagsError(given))
        if (tags.length === 0) return Promise.resolve(0)
        return purges.sealing(store.invalidateTags(tags, options))
      },
      async invalidate(url: string, options?: InvalidateUrlOptions) {
        const purge = urlPurge(opts, url, options)
        const done =
          'tag' in purge ? store.invalidateTags([purge.tag]) : purges.dropResource(purge.base)
        return purges.sealing(done)
      },
      clear: () => purges.sealing(store.clear(prefix)),
      memoize: <A extends unknown[], R>(
        fn: (...args: A) => R | Promise<R>,
        options?: AppMemoizeOptions<A>,
      ) => memoizeIn(prefix, fn, { now: opts.now, onError: report, ...options, store }),
      stats: (): Stats => ({ ...counts, ...store.size?.() }),
      async close() {
        if (closed) return
        closed = true
        refreshes.close()
        unwatch?.()
        flights.clear()
        await Promise.allSettled([...writes])
        if (opts.store === undefined) await store.close()
      },
    }),
  )
}

/** Middleware mode with no handler: `app.use(accelerate.middleware(options))`. */
accelerate.middleware = middleware
