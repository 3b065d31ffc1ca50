/**
 * The request flow: lookup → hit / 304 / miss → tee → store. HTTP rules live in small pure
 * modules (policy, conditional, cache-control, entry); storage lives behind the CacheStore.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CacheEntry, CacheStore, Checkpoint, InvalidateOptions } from './store.js'
import type { AcceleratedResponse, Accelerator, Handler, Stats } from './types.js'
import { MemoryStore } from '../stores/memory.js'
import { resolveOptions, describe, type AccelerateOptions } from './options.js'
import { defaultKey, keyRequestFor, namespacePrefix } from './key.js'
import { safeReporter } from './report.js'
import { parseCacheControl } from './cache-control.js'
import { isNotModified, notModifiedHeaders } from './conditional.js'
import { hasOriginOnlyPrecondition, isConditional, wantsRegeneration } from './request.js'
import { freshness, type Freshness } from './policy.js'
import { strongEtag } from './etag.js'
import { formatHttpDate } from './http-date.js'
import { completion, teeResponse, type TeeResult } from './tee.js'
import { isBody, writeBody } from './body.js'
import { toEntry } from './entry.js'

/** Wraps `handler` (a `(req, res)` listener) in a response cache. */
export function accelerate(handler: Handler, options?: AccelerateOptions): Accelerator {
  if (typeof handler !== 'function') throw new TypeError(`expected handler to be a function, got ${describe(handler)}`)
  const opts = resolveOptions(options)
  const store: CacheStore = opts.store ?? new MemoryStore({ now: opts.now })
  const prefix = namespacePrefix(opts.namespace)
  const counts = { hits: 0, misses: 0, staleHits: 0, notModified: 0, stores: 0, bytesStored: 0, bypasses: 0, errors: 0 }
  const report = safeReporter(opts.onError, () => counts.errors++)
  const pending = new Set<Promise<void>>()
  let closed = false

  /** Runs the request through the cache; `run` generates the response (handler or `next`). */
  async function serve(req: IncomingMessage, res: AcceleratedResponse, run: () => Promise<boolean>): Promise<void> {
    res.locals ??= {}
    const key = cacheKey(req)
    if (key === undefined) {
      counts.bypasses++
      return void run()
    }
    const cc = parseCacheControl(req.headers['cache-control'])
    // RFC 9111 §4.3.2: preconditions a cache does not evaluate, and Range, go to the handler.
    const fromCache = !(opts.honorClientNoCache && wantsRegeneration(req.headers, cc)) && !hasOriginOnlyPrecondition(req.headers)
    const entry = fromCache ? await lookup(key) : undefined
    const now = opts.now()
    if (entry !== undefined && now < entry.staleAt) return serveEntry(req, res, entry, now)
    // RFC 9111 §5.2.1.7: only-if-cached and nothing stored → 504.
    if (cc.has('only-if-cached')) return sendStatus(res, 504)
    counts.misses++
    // The checkpoint is taken before the handler starts: an invalidation after this point
    // keeps this response out of the store (no stale resurrection).
    const since = await checkpoint(key)
    // RFC 9111 §5.2.1.5: a client's no-store forbids storing the response to it.
    const mayStore = since !== undefined && req.method === 'GET' && !cc.has('no-store')
    miss(req, res, key, mayStore ? since : undefined, run)
  }

  /** The store key, or undefined when the request bypasses the cache. */
  function cacheKey(req: IncomingMessage): string | undefined {
    if (closed || (req.method !== 'GET' && req.method !== 'HEAD')) return undefined
    try {
      if (opts.unless?.(req)) return undefined
      const key = opts.key(req)
      if (typeof key === 'string') return prefix + key
      report(new TypeError(`expected options.key to return a string, got ${describe(key)}`), { op: 'key' })
    } catch (err) {
      report(err as Error, { op: 'key' })
    }
    return undefined
  }

  function serveEntry(req: IncomingMessage, res: ServerResponse, entry: CacheEntry, now: number): void {
    counts.hits++
    const age = String(entry.initialAge + Math.max(0, Math.floor((now - entry.storedAt) / 1000)))
    const status = statusHeaders(`hit; ttl=${Math.floor((entry.staleAt - now) / 1000)}`, 'HIT')
    // RFC 9110 §13.2.1: conditionals apply only where the response would be 2xx.
    if (isConditional(req.headers) && entry.status >= 200 && entry.status < 300 && isNotModified(req.headers, entry.headers)) {
      counts.notModified++
      res.writeHead(304, { ...notModifiedHeaders(entry.headers), age, ...status })
      res.end()
      return
    }
    res.writeHead(entry.status, { ...entry.headers, age, ...status })
    res.end(req.method === 'HEAD' ? undefined : entry.body)
  }

  /** Runs the generator of the response with the tee on, and stores what finished in full. */
  function miss(req: IncomingMessage, res: AcceleratedResponse, key: string, since: Checkpoint | undefined, run: () => Promise<boolean>): void {
    let fresh: Freshness | undefined
    let storedAt = 0
    // Validators the cache adds to a storable response, so the client that caused the miss
    // gets the very Date and ETag that the hits after it will replay.
    const added: Record<string, string> = {}
    const tee = teeResponse(res, (head) => {
      storedAt = opts.now()
      const cacheFor = since === undefined ? undefined : optedInSeconds(res, key)
      fresh = since === undefined ? undefined : freshness(req.headers, { ...head, cacheFor }, opts, storedAt)
      if (fresh !== undefined && head.headers.date === undefined) added.date = formatHttpDate(storedAt)
      // A body given whole to end() has its ETag before its headers go out.
      const whole = fresh !== undefined && head.headers.etag === undefined ? head.wholeBody() : undefined
      if (whole !== undefined) added.etag = strongEtag(whole)
      const notModified = isConditional(req.headers) && head.status >= 200 && head.status < 300 && isNotModified(req.headers, { ...head.headers, ...added })
      if (notModified) counts.notModified++
      // A 304 to this client still stores the body when end() gave it whole: otherwise clients
      // revalidating an expired entry would keep the cache from ever refilling.
      const capture = fresh !== undefined && (!notModified || head.wholeBody() !== undefined)
      const existing = opts.statusHeader ? head.headers[opts.statusHeader.toLowerCase()] : undefined
      const ours = statusHeaders(capture ? 'fwd=miss; stored' : 'fwd=miss', 'MISS', existing)
      return { notModified, capture, extraHeaders: { ...added, ...ours } }
    }, opts.maxEntryBytes)
    const stored = Promise.all([completion(res), run()]).then(([finished, succeeded]) => {
      if (finished && succeeded && fresh !== undefined && since !== undefined) return save(key, res, tee, fresh, storedAt, added, since)
    })
    track(stored)
  }

  async function save(key: string, res: AcceleratedResponse, tee: TeeResult, fresh: Freshness, storedAt: number, added: Record<string, string>, since: Checkpoint): Promise<void> {
    const body = tee.body()
    const head = tee.head
    if (body === undefined || head === undefined) return
    // A body shorter or longer than it declared is not the response it claims to be.
    const declared = head.headers['content-length']
    if (declared !== undefined && Number(declared) !== body.length) return
    const tags = tagsOf(res, key)
    if (tags === undefined) return
    try {
      if (await store.set(key, toEntry(head.status, { ...head.headers, ...added }, body, tags, fresh, storedAt), since)) {
        counts.stores++
        counts.bytesStored += body.length
      }
    } catch (err) {
      report(err as Error, { op: 'set', key })
    }
  }

  /** Calls the handler and writes what it returns; false when it failed. */
  async function runHandler(req: IncomingMessage, res: AcceleratedResponse): Promise<boolean> {
    try {
      const result = await handler(req, res)
      if (result === undefined || result === null || result === res || res.writableEnded) return true
      if (!isBody(result)) throw new TypeError(`expected the handler to return a string, Uint8Array, Iterable or AsyncIterable, got ${describe(result)}`)
      await writeBody(res, result, () => isConditional(req.headers) && res.statusCode >= 200 && res.statusCode < 300 && isNotModified(req.headers, res.getHeaders()))
      return true
    } catch (err) {
      report(err as Error, { op: 'handler' })
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

  /** The cache's status headers (RFC 9211 Cache-Status, and X-Cache when asked for). */
  function statusHeaders(params: string, xCache: 'HIT' | 'MISS', existing?: string | string[]): Record<string, string> {
    const headers: Record<string, string> = {}
    // RFC 9211 §2: a cache appends its member to what the handler's own caches reported.
    if (opts.statusHeader) headers[opts.statusHeader] = [existing, `node-accelerator; ${params}`].flat().filter(Boolean).join(', ')
    if (opts.xCache) headers['x-cache'] = xCache
    return headers
  }

  function optedInSeconds(res: AcceleratedResponse, key: string): number | undefined {
    const value: unknown = res.cacheFor ?? res.locals.cacheFor
    if (value === undefined || (typeof value === 'number' && !Number.isNaN(value))) return value
    report(new TypeError(`expected res.cacheFor to be a number of seconds, got ${describe(value)}`), { op: 'cacheFor', key })
    return 0
  }

  function tagsOf(res: AcceleratedResponse, key: string): readonly string[] | undefined {
    const value: unknown = res.tags ?? res.locals.tags ?? []
    const tags = typeof value === 'string' ? [value] : typeof value === 'object' && value !== null && Symbol.iterator in value ? [...(value as Iterable<unknown>)] : undefined
    if (tags?.every((tag) => typeof tag === 'string')) return tags as string[]
    // Storing with a tag missing would make that tag's invalidation miss this entry.
    report(new TypeError(`expected res.tags to be an array of strings, got ${describe(value)}`), { op: 'tags', key })
    return undefined
  }

  async function lookup(key: string): Promise<CacheEntry | undefined> {
    try {
      return await store.get(key)
    } catch (err) {
      report(err as Error, { op: 'get', key })
      return undefined
    }
  }

  async function checkpoint(key: string): Promise<Checkpoint | undefined> {
    try {
      return await store.checkpoint()
    } catch (err) {
      report(err as Error, { op: 'checkpoint', key })
      return undefined
    }
  }

  function track(work: Promise<void>): void {
    pending.add(work)
    work.catch((err: Error) => report(err, { op: 'store' })).finally(() => pending.delete(work))
  }

  function guard(req: IncomingMessage, res: ServerResponse, run: () => Promise<boolean>): void {
    serve(req, res as AcceleratedResponse, run).catch((err: Error) => {
      // A defect of the cache itself: report it, and never leave the client waiting.
      report(err, { op: 'accelerate' })
      if (!res.headersSent) sendStatus(res, 500)
    })
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => guard(req, res, () => runHandler(req, res as AcceleratedResponse))
  return Object.assign(listener, {
    middleware(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
      guard(req, res, async () => {
        next()
        return true
      })
    },
    invalidateTags(tags: readonly string[], options?: InvalidateOptions) {
      if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string')) {
        return Promise.reject(new TypeError(`expected tags to be an array of strings, got ${describe(tags)}`))
      }
      return tags.length === 0 ? Promise.resolve(0) : store.invalidateTags(tags, options)
    },
    async invalidate(url: string, { method = 'GET', host }: { method?: string; host?: string } = {}) {
      return store.delete(prefix + opts.key(keyRequestFor(url, method, host, opts.key === defaultKey)))
    },
    clear: () => store.clear(prefix),
    stats: (): Stats => ({ ...counts, ...store.size?.() }),
    async close() {
      if (closed) return
      closed = true
      await Promise.allSettled([...pending])
      if (opts.store === undefined) await store.close()
    },
  })
}
