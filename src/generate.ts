/**
 * Generating a response: running the handler (or the rest of a middleware stack) with the tee on,
 * for a miss, a revalidation of a stale entry, or a background refresh; deciding what the client
 * gets once the status and headers are final; storing what finished in full; and telling the
 * requests that waited on it (coalescing) what to serve.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { CacheEntry, CacheStore, Checkpoint } from './store.js'
import type { AcceleratedResponse, Stats } from './types.js'
import type { ResolvedOptions } from './options.js'
import type { ErrorHandler } from './report.js'
import type { CacheControl } from './cache-control.js'
import { describe } from './options.js'
import { answersNotModified, isNotModified, notModifiedHeaders } from './conditional.js'
import { freshness, type Freshness } from './policy.js'
import { strongEtag } from './etag.js'
import { formatHttpDate } from './http-date.js'
import { completion, teeResponse, type Head, type HeadPlan, type TeeResult } from './tee.js'
import { toEntry } from './entry.js'
import { merged } from './merged.js'
import { entryResponse, type StatusHeaders } from './respond.js'
import { coversVariant, variantKey, varyNames, varyRecord } from './vary.js'
import { isTag } from './key.js'
import { ownTags, userTags } from './invalidation.js'
import { refreshedHeaders, sendValidators } from './revalidate.js'
import type { Flight, Outcome } from './flights.js'
import { SURROGATE_HEADERS, surrogateInstructions, type SurrogateInstructions } from './surrogate.js'

/** One generation of a response: for a miss, a revalidation, or a background refresh. */
export interface Generation {
  base: string
  /** Where the lookup looked (the variant key when a vary record was found). */
  key: string
  record?: CacheEntry | undefined
  /** The stored entry being revalidated: its validators go to the handler. */
  stale?: CacheEntry | undefined
  ifErrorUntil: number
  cc: CacheControl
  lease?: { flight: Flight; land: () => void } | undefined
  background?: boolean
  /** The lookup just failed: do not wait for the store again (nothing is stored). */
  storeDown?: boolean | undefined
  /** Pass the response through without storing it (a Range the cache did not answer). */
  uncached?: boolean
}

/** A response being stored: its freshness, when it was generated, the validators the cache added. */
interface ToStore {
  fresh: Freshness
  storedAt: number
  added: Record<string, string>
  /** Its status and headers as they are to be stored (cache-only headers already left out). */
  head: Head
  surrogateTags: string[]
}

/** The response's tags, and the origin's surrogate keys. */
function withSurrogateTags(tags: readonly string[] | undefined, surrogate: Pick<SurrogateInstructions, 'tags'> | undefined): readonly string[] | undefined {
  if (tags === undefined || !surrogate || surrogate.tags.length === 0) return tags
  return [...new Set([...tags, ...surrogate.tags])]
}

/** A copy of `headers` without `names`. */
function omit<T extends Record<string, unknown>>(headers: T, names: readonly string[]): T {
  const kept: Record<string, unknown> = { ...headers }
  for (const name of names) delete kept[name]
  return kept as T
}

/** Generates the response: the handler (with a stale-if-error fallback) or the next middleware. */
export type Run = (fallback?: () => boolean) => Promise<boolean>

/** The counters of {@link Stats}, all kept by the accelerator. */
export type Counts = Required<Omit<Stats, 'entries' | 'bytes'>>

/** What generations need of the accelerator around them. */
export interface Core {
  opts: ResolvedOptions
  store: CacheStore
  counts: Counts
  report: ErrorHandler
  statusHeaders: StatusHeaders
  /** Store writes in progress, for close() to wait on. */
  writes: Set<Promise<boolean>>
}

/** The generate function of one accelerator. */
export function generator({ opts, store, counts, report, statusHeaders, writes }: Core) {
  /** Runs the handler with the tee on; stores what finished in full; settles the waiters. */
  async function generate(req: IncomingMessage, res: AcceleratedResponse, run: Run, gen: Generation): Promise<void> {
    if (!gen.background) counts.misses++
    const since = gen.storeDown ? undefined : await checkpoint(gen.key)
    const { stale, lease } = gen
    // The handler sees the stored validators; the client's own decide what the client gets.
    const client = { method: req.method, headers: stale ? sendValidators(req, stale) : req.headers }
    const mayStore = since !== undefined && req.method === 'GET' && !gen.cc.has('no-store') && !gen.uncached
    const settle = (outcome?: Outcome) => lease?.flight.settle(outcome)
    let toStore: ToStore | undefined
    let storing: Promise<unknown> | undefined

    /** What the client gets, decided when the handler's status and headers are final. */
    function plan(head: Head): HeadPlan {
      const now = opts.now()
      // Headers meant for the cache alone leave the response here, and the stored entry too.
      const surrogate = opts.surrogateKeys ? surrogateInstructions(head.headers) : undefined
      const omitHeaders: readonly string[] = surrogate && !opts.keepSurrogateHeaders ? SURROGATE_HEADERS : []
      if (omitHeaders.length > 0) head = { ...head, headers: omit(head.headers, omitHeaders) }
      if (gen.background && head.status >= 500) report(new Error(`background refresh answered ${head.status}`), { op: 'refresh', key: gen.key })
      if (stale && (head.status === 304 || (head.status >= 200 && head.status < 300 && isNotModified(req.headers, head.headers)))) {
        // RFC 9111 §4.3.4: still current; the stored body with the handler's fresher headers.
        counts.revalidations++
        const headers = { ...refreshedHeaders(stale.headers, head.headers), date: String(head.headers.date ?? formatHttpDate(now)) }
        const fresh = mayStore ? freshness(client.headers, { status: stale.status, headers, cacheFor: cacheForOf(res, surrogate, gen.key) }, opts, now) : undefined
        const tags = fresh && variantTagged(res, gen, withSurrogateTags(tagsOf(res, gen.key, userTags(stale.tags)), surrogate))
        const entry = tags ? toEntry(stale.status, headers, stale.body, tags, fresh!, now, opts) : { ...stale, headers }
        if (tags) storing = put(gen.key, entry, since!).then((stored) => settle(stored ? { entry, key: gen.key } : undefined))
        else settle()
        return { replace: entryResponse(client, entry, now, statusHeaders, `fwd=stale; fwd-status=304${tags ? '; stored' : ''}`), capture: false }
      }
      if (stale && head.status >= 500 && now < gen.ifErrorUntil) return { replace: staleOnError(now, `; fwd-status=${head.status}`), capture: false }
      const cacheFor = mayStore ? cacheForOf(res, surrogate, gen.key) : undefined
      const fresh = mayStore ? freshness(client.headers, { status: head.status, headers: head.headers, cacheFor }, opts, now) : undefined
      const added: Record<string, string> = {}
      if (fresh !== undefined && head.headers.date === undefined) added.date = formatHttpDate(now)
      // A body given whole to end() has its ETag before its headers go out.
      const whole = fresh !== undefined && head.headers.etag === undefined ? head.wholeBody() : undefined
      if (whole !== undefined) added.etag = strongEtag(whole)
      const notModified = answersNotModified(client.headers, head.status, merged(head.headers, added))
      // A 304 to this client still stores the body when end() gave it whole: otherwise clients
      // revalidating an expired entry would keep the cache from ever refilling.
      const capture = fresh !== undefined && (!notModified || head.wholeBody() !== undefined)
      if (capture) toStore = { fresh, storedAt: now, added, head, surrogateTags: surrogate?.tags ?? [] }
      else settle() // waiters run the handler themselves, now
      const existing = opts.statusHeader ? head.headers[opts.statusHeader.toLowerCase()] : undefined
      const ours = statusHeaders(`${stale ? 'fwd=stale' : 'fwd=miss'}${capture ? '; stored' : ''}`, 'MISS', existing)
      if (!notModified) return { capture, extraHeaders: merged(added, ours), omitHeaders }
      counts.notModified++
      return { replace: { status: 304, headers: merged(notModifiedHeaders(merged(head.headers, added)), ours) }, capture }
    }

    /** stale-if-error (RFC 5861 §4): the stale entry instead of the failure. */
    function staleOnError(now: number, fwdStatus = '') {
      counts.staleHits++
      settle({ entry: stale!, key: gen.key, detail: 'stale-if-error' })
      return entryResponse(client, stale!, now, statusHeaders, `fwd=stale${fwdStatus}`, 'stale-if-error')
    }
    const fallback = () => {
      const now = opts.now()
      if (!stale || res.headersSent || now >= gen.ifErrorUntil) return false
      tee.replace(staleOnError(now))
      return true
    }

    const tee = teeResponse(res, plan, opts.maxEntryBytes, () => settle())
    const finished = completion(res)
    // A response cut short frees its key at once, whatever the handler does next.
    void finished.then((ok) => ok || lease?.land())
    try {
      const [ok, succeeded] = await Promise.all([finished, run(fallback)])
      if (storing) await storing
      if (ok && succeeded && toStore) await save(res, tee, client.headers, gen, toStore, since!)
    } finally {
      lease?.land()
    }
  }

  async function save(res: AcceleratedResponse, tee: TeeResult, headers: IncomingHttpHeaders, gen: Generation, { fresh, storedAt, added, head, surrogateTags }: ToStore, since: Checkpoint): Promise<void> {
    const body = tee.body()
    // A body shorter or longer than it declared is not the response it claims to be.
    const declared = head.headers['content-length']
    const tags = body && (declared === undefined || Number(declared) === body.length) ? withSurrogateTags(tagsOf(res, gen.key), { tags: surrogateTags }) : undefined
    if (!body || !tags) return gen.lease?.flight.settle(undefined)
    const names = varyNames(head.headers.vary)
    const key = names.length > 0 ? variantKey(gen.base, names, headers) : gen.base
    const entry = toEntry(head.status, merged(head.headers, added), body, variantTagged(res, { ...gen, key }, tags)!, fresh, storedAt, opts)
    if (!(await put(key, entry, since))) return gen.lease?.flight.settle(undefined)
    gen.lease?.flight.settle({ entry, key })
    if (names.length > 0 && !coversVariant(gen.record, names, entry.expiresAt)) await put(gen.base, varyRecord(names, storedAt, entry.expiresAt), since, false)
  }

  /** Stores an entry; resolves whether it was stored (failures are reported, never thrown). */
  async function put(key: string, entry: CacheEntry, since: Checkpoint, isResponse = true): Promise<boolean> {
    const write = store.set(key, entry, since)
    const forget = () => writes.delete(write)
    writes.add(write)
    write.then(forget, forget)
    try {
      if (!(await write)) return false
      if (isResponse) {
        counts.stores++
        counts.bytesStored += entry.body.length
      }
      return true
    } catch (err) {
      report(err as Error, { op: 'set', key })
      return false
    }
  }

  /** The response's tags and the accelerator's own, so that invalidate(url) reaches the entry. */
  function variantTagged(res: AcceleratedResponse, { base, key }: Pick<Generation, 'base' | 'key'>, tags: readonly string[] | undefined): readonly string[] | undefined {
    return tags && ownTags(opts, res.req, base, key, tags)
  }

  /** The cache's TTL for a response: Surrogate-Control's (no-store: 0), else res.cacheFor. */
  function cacheForOf(res: AcceleratedResponse, surrogate: SurrogateInstructions | undefined, key: string): number | undefined {
    if (surrogate?.noStore) return 0
    return surrogate?.ttl ?? optedInSeconds(res, key)
  }

  function optedInSeconds(res: AcceleratedResponse, key: string): number | undefined {
    const value: unknown = res.cacheFor ?? res.locals.cacheFor
    if (value === undefined || (typeof value === 'number' && !Number.isNaN(value))) return value
    report(new TypeError(`expected res.cacheFor to be a number of seconds, got ${describe(value)}`), { op: 'cacheFor', key })
    return 0
  }

  /** The response's tags (`fallback` when it set none), or undefined when they are not strings. */
  function tagsOf(res: AcceleratedResponse, key: string, fallback: readonly string[] = []): readonly string[] | undefined {
    const value: unknown = res.tags ?? res.locals.tags ?? fallback
    const tags = typeof value === 'string' ? [value] : typeof value === 'object' && value !== null && Symbol.iterator in value ? [...(value as Iterable<unknown>)] : undefined
    if (tags?.every(isTag)) return tags as string[]
    // Storing with a tag missing would make that tag's invalidation miss this entry.
    report(new TypeError(`expected res.tags to be an array of well-formed strings, got ${describe(value)}`), { op: 'tags', key })
    return undefined
  }

  async function checkpoint(key: string): Promise<Checkpoint | undefined> {
    try {
      return await store.checkpoint()
    } catch (err) {
      report(err as Error, { op: 'checkpoint', key })
      return undefined
    }
  }

  return generate
}
