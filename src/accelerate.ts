/**
 * The request flow: lookup → hit / stale / coalesce / generate → tee → store. HTTP rules live in
 * small pure modules (policy, conditional, stale, vary, revalidate); storage behind CacheStore.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import pLimit from 'p-limit'
import type { CacheEntry, CacheStore, InvalidateOptions } from './store.js'
import type { AcceleratedResponse, Accelerator, Handler, Stats } from './types.js'
import { MemoryStore } from '../stores/memory.js'
import { resolveOptions, describe, type AccelerateOptions } from './options.js'
import { isTag, namespacePrefix } from './key.js'
import { changedKeys, keyRequest, liveKey, urlPurge, type InvalidateUrlOptions } from './invalidation.js'
import { safeReporter } from './report.js'
import { parseCacheControl } from './cache-control.js'
import { answersNotModified } from './conditional.js'
import { clientDemand, hasOriginOnlyPrecondition, isUnsafe } from './request.js'
import { isBody, writeBody, type Demand } from './body.js'
import { hitWriterFor, rangeResponse, statusHeadersFor } from './respond.js'
import { entryState } from './stale.js'
import { variantKey, variantsTag, varyNames } from './vary.js'
import { Flights } from './flights.js'
import type { Generation, Settled } from './generation.js'
import { backgroundExchange, type Exchange } from './background.js'
import { teeResponse } from './tee.js'
import { memoize, type MemoizeOptions } from './memoize.js'
import { generator, type Counts, type Miss, type Run } from './generate.js'

/** Background refreshes queued per concurrent slot; beyond, they are dropped (a later request asks again). */
const QUEUED_REFRESHES_PER_SLOT = 100

/** Wraps `handler` (a `(req, res)` listener) in a response cache. */
export function accelerate(handler: Handler, options?: AccelerateOptions): Accelerator {
  if (typeof handler !== 'function') throw new TypeError(`expected handler to be a function, got ${describe(handler)}`)
  const opts = resolveOptions(options)
  const store: CacheStore = opts.store ?? new MemoryStore({ now: opts.now })
  const prefix = namespacePrefix(opts.namespace)
  const counts: Counts = { hits: 0, misses: 0, staleHits: 0, notModified: 0, stores: 0, bytesStored: 0, bypasses: 0, errors: 0, coalesced: 0, revalidations: 0, refreshes: 0 }
  const report = safeReporter(opts.onError, () => counts.errors++)
  const statusHeaders = statusHeadersFor(opts.statusHeader, opts.xCache)
  const writeHit = hitWriterFor(opts.statusHeader, opts.xCache)
  const flights = new Flights(opts.coalesceTimeoutMs)
  const background = pLimit(opts.backgroundConcurrency)
  const exchanges = new Set<Exchange>()
  const writes = new Set<Promise<boolean>>()
  const generate = generator({ opts, store, counts, report, statusHeaders, writes, flights })
  let closed = false

  /** Runs the request through the cache; `run` generates the response (handler or `next`). */
  async function serve(req: IncomingMessage, res: AcceleratedResponse, run: Run, canRefresh: boolean): Promise<void> {
    res.locals ??= {}
    const base = cacheKey(req)
    if (base === undefined) {
      counts.bypasses++
      // RFC 9111 §4.4: what an unsafe method changed is dropped once it succeeded.
      return void (opts.sharedCache && isUnsafe(req.method) && !closed ? dropChanged(req, res, run) : run())
    }
    const cc = parseCacheControl(req.headers['cache-control'])
    // RFC 9111 §4.3.2: preconditions a cache does not evaluate go to the handler.
    if (hasOriginOnlyPrecondition(req.headers)) return generate(req, res, run, { base, key: base, cc, ifErrorUntil: 0 })
    const { key, entry, record, storeDown } = await lookup(base, req.headers)
    const now = opts.now()
    const demand = entry && opts.honorClientNoCache ? clientDemand(entry, now, req.headers, cc) : 'as-usual'
    const forced = demand === 'revalidate'
    if (entry && !forced && (now < entry.staleAt || demand === 'accept-stale')) return serveEntry(req, res, entry, now, 'hit', demand === 'accept-stale' ? 'max-stale' : undefined)
    // A Range not answered from a fresh entry goes to the handler, and its answer is not stored.
    if (req.headers.range !== undefined) return generate(req, res, run, { base, key, cc, ifErrorUntil: 0, uncached: true })
    const { state, ifErrorUntil } = entry && !forced ? entryState(entry, now, opts) : { state: 'stale', ifErrorUntil: 0 }
    const flight = flights.get(key)
    // Served stale at once while one regeneration runs: in the background, or (middleware, which
    // cannot call the stack without a client) in the foreground of the request that started it.
    if (entry && state === 'stale-while-revalidate' && (flight || canRefresh)) {
      counts.staleHits++
      if (!flight) refresh(req, { base, key, record, stale: entry, ifErrorUntil: 0, cc: parseCacheControl(undefined) })
      return serveEntry(req, res, entry, now, 'hit', 'stale-while-revalidate')
    }
    // RFC 9111 §5.2.1.7: only-if-cached and nothing usable stored → 504.
    if (cc.has('only-if-cached')) return sendStatus(res, 504)
    await coalesce(req, res, run, { base, key, record, stale: entry, ifErrorUntil, cc, storeDown })
  }

  /**
   * Waits on the generation under way for the key, or leads the next one. A request sent on from
   * one that cannot serve it (another variant, no body, too slow, gone) loops here: the first to
   * find no joinable generation starts one, registered at once, and the others wait on it.
   */
  async function coalesce(req: IncomingMessage, res: AcceleratedResponse, run: Run, miss: Miss): Promise<void> {
    let { key } = miss
    let last: Generation | undefined
    for (;;) {
      const flight = flights.joinable(key)
      if (!flight || flight === last) return generate(req, res, run, { ...miss, key, flight: flights.start(key) })
      if (!last) counts.coalesced++
      last = flight
      const settled: Settled = await flight.wait(req, res)
      if (settled.kind === 'served') return
      if (settled.kind === 'alone') return generate(req, res, run, { ...miss, key })
      if (settled.kind === 'entry' && serveOutcome(req, res, miss.base, settled)) return
      key = settled.kind === 'next' ? settled.key : key
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
      if (key !== undefined) report(new TypeError(`expected options.key to return a string or undefined, got ${describe(key)}`), { op: 'key' })
    } catch (err) {
      report(err as Error, { op: 'key' })
    }
    return undefined
  }

  /**
   * The entry for a request: at the base key, or at its variant when the base holds a vary
   * record. A store that fails is reported and the request goes on as a miss (`storeDown`).
   */
  async function lookup(base: string, headers: IncomingHttpHeaders): Promise<{ key: string; entry?: CacheEntry | undefined; record?: CacheEntry; storeDown?: boolean }> {
    try {
      const first = await store.get(base)
      if (first?.variesOn === undefined) return { key: base, entry: first }
      const key = variantKey(base, first.variesOn, headers)
      return { key, entry: await store.get(key), record: first }
    } catch (err) {
      report(err as Error, { op: 'get', key: base })
      return { key: base, storeDown: true }
    }
  }

  function serveEntry(req: IncomingMessage, res: ServerResponse, entry: CacheEntry, now: number, params: string, detail?: string): void {
    counts.hits++
    if (req.headers.range !== undefined) {
      const { status, headers, body } = rangeResponse(req, entry, now, statusHeaders, params, detail)
      if (status === 304) counts.notModified++
      res.writeHead(status, headers)
      return void res.end(body)
    }
    const notModified = answersNotModified(req.headers, entry.status, entry.headers)
    if (notModified) counts.notModified++
    writeHit(res, entry, now, params, detail, notModified ? 'not-modified' : req.method === 'HEAD' ? 'head' : 'full')
  }

  /**
   * Serves a waiter what the generation it waited on produced, unless it is another variant's, or
   * already stale (only a stale-if-error outcome is served stale: that is what it is for).
   */
  function serveOutcome(req: IncomingMessage, res: ServerResponse, base: string, { entry, key, detail }: { entry: CacheEntry; key: string; detail?: string | undefined }): boolean {
    const names = varyNames(entry.headers.vary)
    const now = opts.now()
    if ((names.length > 0 ? variantKey(base, names, req.headers) : base) !== key || (detail === undefined && now >= entry.staleAt)) return false
    serveEntry(req, res, entry, now, 'hit', detail)
    return true
  }

  /**
   * RFC 9111 §4.4: a non-error response to an unsafe method drops the target URL, and the
   * same-origin URLs of its Location and Content-Location, keyed as the store keyed them (see
   * changedKeys: nothing from the request or the response can make it throw). The drop starts
   * once the status is known and the response's end waits for it: a client that reads after its
   * write completed never gets the old page.
   */
  function dropChanged(req: IncomingMessage, res: ServerResponse, run: Run): void {
    let dropping: Promise<unknown> | undefined
    const start = (status: number, headers: Record<string, unknown>) => {
      if (dropping !== undefined || status >= 400) return
      const keys = changedKeys(opts, keyRequest(req), headers)
      dropping = Promise.all(keys.map((key) => dropResource(key).catch((err: Error) => report(err, { op: 'invalidate', key }))))
    }
    teeResponse(res, (head) => (start(head.status, head.headers), { capture: false }), 1)
    const end = res.end
    res.end = function (this: ServerResponse, ...args: unknown[]) {
      if (!res.headersSent) start(res.statusCode, res.getHeaders())
      void Promise.resolve(dropping).then(() => end.apply(res, args as never))
      return res
    } as ServerResponse['end']
    void run()
  }

  /**
   * An invalidation: once it is done, no generation that began before it serves anyone more
   * (those started while it ran included, which may have read the data before it changed).
   */
  function sealing<T>(invalidation: Promise<T>): Promise<T> {
    return invalidation.finally(() => flights.seal())
  }

  /** Drops a resource: the entry at its base key (a response, or its vary record) and every variant. */
  async function dropResource(base: string): Promise<number> {
    const removed = await store.delete(base)
    const variants = await store.invalidateTags([variantsTag(base)])
    return variants > 0 ? variants : removed
  }

  /** One background regeneration of a stale entry; its failures go to onError only. */
  function refresh(from: IncomingMessage, gen: Miss): void {
    if (background.pendingCount >= opts.backgroundConcurrency * QUEUED_REFRESHES_PER_SLOT) return
    counts.refreshes++
    const flight = flights.start(gen.key)
    // The cache's own request: the client's headers (for Vary) without its cache directives.
    const { 'cache-control': _cc, pragma: _pragma, ...headers } = from.headers
    void background(async () => {
      const exchange = backgroundExchange(from, headers)
      const res = exchange.res as AcceleratedResponse
      res.locals = {}
      exchanges.add(exchange)
      try {
        // No client to answer: a handler that throws just ends the exchange (reported once).
        const aborting = () => (exchange.abort(), true)
        await generate(exchange.req, res, (_fallback, demand) => runHandler(exchange.req, res, aborting, 'refresh', demand), { ...gen, flight, background: true })
      } finally {
        exchanges.delete(exchange)
      }
    })
  }

  /** Calls the handler and writes what it returns; false when it failed. */
  async function runHandler(req: IncomingMessage, res: AcceleratedResponse, fallback?: () => boolean, op = 'handler', demand?: Demand): Promise<boolean> {
    try {
      const result = await handler(req, res)
      if (result === undefined || result === null || result === res || res.writableEnded) return true
      if (!isBody(result)) throw new TypeError(`expected the handler to return a string, Uint8Array, Iterable or AsyncIterable, got ${describe(result)}`)
      await writeBody(res, result, demand ?? { notModified: () => answersNotModified(req.headers, res.statusCode, res.getHeaders()), shared: () => false })
      return true
    } catch (err) {
      report(err as Error, { op })
      if (fallback?.()) return false
      // Like a Node server: a 500 while nothing was sent, a cut connection once it was.
      if (res.headersSent) res.destroy()
      else {
        for (const name of res.getHeaderNames()) res.removeHeader(name)
        sendStatus(res, 500)
      }
      return false
    }
  }

  /** A 500 (the tee, when on, reports the miss) or the only-if-cached 504 (no tee: says so itself). */
  function sendStatus(res: ServerResponse, status: 500 | 504): void {
    const body = status === 500 ? 'Internal Server Error\n' : 'Gateway Timeout\n'
    const cacheStatus = status === 504 ? statusHeaders('detail=only-if-cached', 'MISS') : {}
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(body.length), ...cacheStatus })
    res.end(body)
  }

  function guard(req: IncomingMessage, res: ServerResponse, run: Run, canRefresh: boolean): void {
    serve(req, res as AcceleratedResponse, run, canRefresh).catch((err: Error) => {
      // A defect of the cache itself: report it, and never leave the client waiting.
      report(err, { op: 'accelerate' })
      if (!res.headersSent) sendStatus(res, 500)
    })
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => guard(req, res, (fallback, demand) => runHandler(req, res as AcceleratedResponse, fallback, 'handler', demand), true)
  return Object.assign(listener, {
    middleware(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
      guard(req, res, async () => {
        next()
        return true
      }, false)
    },
    invalidateTags(tags: readonly string[], options?: InvalidateOptions) {
      if (!Array.isArray(tags) || !tags.every(isTag)) {
        return Promise.reject(new TypeError(`expected tags to be an array of well-formed strings (none of the reserved form "\\u0000name\\u0000..."), got ${describe(tags)}`))
      }
      return tags.length === 0 ? Promise.resolve(0) : sealing(store.invalidateTags(tags, options))
    },
    async invalidate(url: string, options?: InvalidateUrlOptions) {
      const purge = urlPurge(opts, url, options)
      return sealing('tag' in purge ? store.invalidateTags([purge.tag]) : dropResource(purge.base))
    },
    clear: () => sealing(store.clear(prefix)),
    memoize: <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: Omit<MemoizeOptions<A>, 'store' | 'keyPrefix'>) =>
      memoize(fn, { now: opts.now, onError: report, ...options, store, keyPrefix: prefix }),
    stats: (): Stats => ({ ...counts, ...store.size?.() }),
    async close() {
      if (closed) return
      closed = true
      background.clearQueue()
      for (const exchange of exchanges) exchange.abort()
      flights.clear()
      await Promise.allSettled([...writes])
      if (opts.store === undefined) await store.close()
    },
  })
}

