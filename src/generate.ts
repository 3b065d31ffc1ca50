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
import { isConditional } from './request.js'
import { freshness, storability, type Freshness, type NotStored } from './policy.js'
import { strongEtag } from './etag.js'
import { formatHttpDate } from './http-date.js'
import { completion, holdClose, teeResponse, type BodySink, type Head, type HeaderRecord, type HeadPlan, type TeeResult } from './tee.js'
import { sharedHeaders, toEntry } from './entry.js'
import { merged } from './merged.js'
import { entryResponse, type StatusHeaders } from './respond.js'
import { coversVariant, variantKey, varyNames, varyRecord } from './vary.js'
import { isTag } from './key.js'
import { ownTags, userTags } from './invalidation.js'
import { bodyWanted, headUpdates, refreshedHeaders, sendValidators } from './revalidate.js'
import type { Flights } from './flights.js'
import type { Generation, SharedHead } from './generation.js'
import type { Demand } from './body.js'
import { SURROGATE_HEADERS, surrogateInstructions, type SurrogateInstructions } from './surrogate.js'
import { responded, tracedGenerate } from './diagnostics.js'

/** A miss to generate: for a request, a revalidation, or a background refresh. */
export interface Miss {
  base: string
  /** Where the lookup looked (the variant key when a vary record was found). */
  key: string
  record?: CacheEntry | undefined
  /** The stored entry being revalidated: its validators go to the handler. */
  stale?: CacheEntry | undefined
  ifErrorUntil: number
  cc: CacheControl
  /** The shared generation this run feeds (coalescing): registered under `key` in flights. */
  flight?: Generation | undefined
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

/**
 * Reasons not to store that belong to the request, not to the responses of its key: they do not
 * stop the next requests for the key from coalescing (see Flights.passes).
 */
const REQUEST_REASONS: ReadonlySet<string> = new Set(['authorization', 'store-down', 'request-no-store', 'range', 'head'])

/** Why no response to this request is stored, whatever it says (RFC 9211 §2.8 detail). */
function notStorable(since: Checkpoint | undefined, miss: Miss): NotStored | 'store-down' | 'request-no-store' | 'range' | 'head' {
  return since === undefined ? 'store-down' : miss.uncached ? 'range' : miss.cc.has('no-store') ? 'request-no-store' : 'head'
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

/**
 * Generates the response: the handler (with a stale-if-error fallback, and what the cache asks
 * of a returned body) or the next middleware.
 */
export type Run = (fallback?: () => boolean, demand?: Demand) => Promise<boolean>

/** The counters of {@link Stats}, all kept by the accelerator. */
export type Counts = Required<Omit<Stats, 'entries' | 'bytes'>>

/** Every counter at zero. */
export function noCounts(): Counts {
  return {
    hits: 0, misses: 0, staleHits: 0, notModified: 0, stores: 0, bytesStored: 0, bypasses: 0,
    errors: 0, coalesced: 0, revalidations: 0, refreshes: 0,
  }
}

/** What generations need of the accelerator around them. */
export interface Core {
  opts: ResolvedOptions
  store: CacheStore
  counts: Counts
  report: ErrorHandler
  statusHeaders: StatusHeaders
  /** Store writes in progress, for close() to wait on. */
  writes: Set<Promise<boolean>>
  flights: Flights
}

/** The generate function of one accelerator. */
export function generator({ opts, store, counts, report, statusHeaders, writes, flights }: Core) {
  /**
   * Runs the handler with the tee on; feeds the shared generation its waiters read; stores the
   * body once complete; resolves once the generation is over (stored, or known not to be).
   */
  async function generate(req: IncomingMessage, res: AcceleratedResponse, run: Run, miss: Miss): Promise<void> {
    if (!miss.background) counts.misses++
    const since = miss.storeDown ? undefined : await checkpoint(miss.key)
    const { stale, flight } = miss
    const method = req.method
    const mayStore = since !== undefined && !miss.cc.has('no-store') && !miss.uncached
    // The handler gets the cache's own request: a GET for a HEAD (the entry serves both), with the
    // stored validators (RFC 9111 §4.3.1) or none, so that a route answering 304 itself still
    // gives the body to store. The client's own headers decide what the client gets.
    const client = { method, headers: stale || (mayStore && isConditional(req.headers)) ? sendValidators(req, stale) : req.headers }
    // RFC 9111 §4.3.5: a shared cache asks about a stored GET with the client's HEAD itself.
    const asHead = stale !== undefined && opts.sharedCache && method === 'HEAD'
    if (mayStore && method === 'HEAD' && !asHead) req.method = 'GET'
    bodyWanted(req, () => flight?.wanted === true)
    const aliases = [miss.key]
    // Nothing opted the response in when its headers left (to tell a late res.cacheFor).
    let optedOut = false
    let toStore: ToStore | undefined
    let over!: () => void
    const landed = new Promise<void>((resolve) => (over = resolve))
    let isOver = false
    let saving = false
    let closing: ReturnType<typeof holdClose> | undefined
    /** The generation is over: the flight leaves the registry, waiters left go on. */
    const land = () => {
      if (isOver) return
      isOver = true
      closing?.release()
      if (flight) flights.land(flight, aliases)
      over()
    }

    /** What the client gets; each 304 sent is counted here, whoever decided it (stats()). */
    function plan(head: Head): HeadPlan {
      const decided = decide(head)
      if ((decided.replace ?? head).status === 304) counts.notModified++
      return decided
    }

    /** What the client gets, decided when the handler's status and headers are final. */
    function decide(head: Head): HeadPlan {
      const now = opts.now()
      // Headers meant for the cache alone leave the response here, and the stored entry too.
      const surrogate = opts.surrogateKeys ? surrogateInstructions(head.headers) : undefined
      const omitHeaders: readonly string[] = surrogate && !opts.keepSurrogateHeaders ? SURROGATE_HEADERS : []
      if (omitHeaders.length > 0) head = { ...head, headers: omit(head.headers, omitHeaders) }
      if (miss.background && head.status >= 500) report(new Error(`background refresh answered ${head.status}`), { op: 'refresh', key: miss.key })
      const updates = asHead ? headUpdates(stale!.headers, head, head.wholeBody()) : undefined
      if (stale && (asHead ? updates === true : head.status === 304 || (head.status >= 200 && head.status < 300 && isNotModified(req.headers, head.headers)))) {
        return revalidated(head, surrogate, now)
      }
      // RFC 9111 §4.3.5: a HEAD's 200 that shows the stored GET changed makes it stale.
      if (updates === false && mayStore && now < stale!.staleAt) void put(miss.key, { ...stale!, staleAt: now }, since!, false)
      if (stale && head.status >= 500 && now < miss.ifErrorUntil) return { replace: staleOnError(now, `; fwd-status=${head.status}`), capture: false }
      if (!miss.background) responded(opts, req, res, miss.key, 'miss')
      const cacheFor = mayStore ? cacheForOf(res, surrogate, miss.key) : undefined
      const decided = mayStore && !asHead ? storability(client.headers, { status: head.status, headers: head.headers, cacheFor }, opts, now) : notStorable(since, miss)
      const fresh = typeof decided === 'string' ? undefined : decided
      optedOut = decided === 'not-opted-in'
      // Hit-for-miss: what the response itself says decides whether the next requests wait.
      if (fresh !== undefined && fresh.ttl > 0) flights.shareable(miss.key)
      else if (fresh !== undefined || !REQUEST_REASONS.has(decided as string)) flights.unshareable(miss.key)
      const added: Record<string, string> = {}
      if (fresh !== undefined && head.headers.date === undefined) added.date = formatHttpDate(now)
      // A body given whole to end() has its ETag before its headers go out.
      const whole = fresh !== undefined && head.headers.etag === undefined ? head.wholeBody() : undefined
      if (whole !== undefined) added.etag = strongEtag(whole)
      // RFC 9110 §9.3.2: a HEAD gets the headers the GET would, its length included.
      const length = method === 'HEAD' && head.headers['content-length'] === undefined ? head.wholeBody()?.length : undefined
      if (length !== undefined) added['content-length'] = String(length)
      const sent = merged(head.headers, added)
      const wanted = flight?.wanted === true
      const notModified = answersNotModified(client.headers, head.status, sent)
      // A 304 to this client still stores the body when end() gave it whole, or when others
      // wait for it (a lazy body is then pulled for them): otherwise clients revalidating would
      // keep the cache from ever refilling.
      const capture = fresh !== undefined && (!notModified || head.wholeBody() !== undefined || wanted)
      if (capture) {
        toStore = { fresh, storedAt: now, added, head, surrogateTags: surrogate?.tags ?? [] }
        // A response stale at once (ttl 0) is revalidated by each request: not shared.
        if (flight && fresh.ttl > 0) {
          share(flight, head, sent, fresh, now)
          closing ??= holdClose(res, () => flight.wanted, opts.coalesceTimeoutMs)
        } else flight?.unshareable()
      } else if (fresh === undefined) {
        // Not to be shared: each waiter runs the handler on its own, now.
        flight?.unshareable()
        land()
      } else land() // a 304 with a body never pulled: one waiter leads the next generation
      const existing = opts.statusHeader ? head.headers[opts.statusHeader.toLowerCase()] : undefined
      // RFC 9211 §2.7-2.8: `stored` only for what is on its way into the store; else why not.
      const size = capture ? head.length() : undefined
      const detail = size !== undefined && size > opts.maxEntryBytes ? 'too-large' : typeof decided === 'string' ? decided : undefined
      const outcome = `${stale ? 'fwd=stale' : 'fwd=miss'}${capture && detail === undefined ? '; stored' : ''}`
      const ours = statusHeaders(detail === undefined ? outcome : `${outcome}; detail=${detail}`, 'MISS', existing)
      const sink = capture ? bodySink(flight) : undefined
      if (!notModified) return { capture, extraHeaders: merged(added, ours), omitHeaders, sink }
      return { replace: { status: 304, headers: merged(notModifiedHeaders(sent), ours) }, capture, sink }
    }

    /** Opens the generation to its waiters: the response as each of them gets it. */
    function share(flight: Generation, { status, wholeBody }: Head, sent: HeaderRecord, fresh: Freshness, now: number): void {
      const names = varyNames(sent.vary)
      const keyFor = (request: IncomingMessage) =>
        names.length > 0 ? variantKey(miss.base, names, request.headers, opts.normalizeVary) : miss.base
      const key = names.length > 0 ? variantKey(miss.base, names, client.headers, opts.normalizeVary) : miss.base
      if (key !== miss.key) {
        aliases.push(key)
        flights.alias(key, flight)
      }
      const headers = sharedHeaders(sent, wholeBody()?.length)
      const staleAt = now + fresh.ttl * 1000
      const tail = merged({ age: String(fresh.initialAge) }, statusHeaders(`hit; ttl=${fresh.ttl}`, 'HIT'))
      const head: SharedHead = {
        key,
        keyFor,
        fresh: () => opts.now() < staleAt,
        respond(request, response) {
          counts.hits++
          if (answersNotModified(request.headers, status, headers)) {
            counts.notModified++
            responded(opts, request, response, key, 'not-modified')
            response.writeHead(304, merged(notModifiedHeaders(headers), tail) as HeaderRecord)
            return false
          }
          responded(opts, request, response, key, 'hit')
          response.writeHead(status, merged(headers, tail) as HeaderRecord)
          return request.method !== 'HEAD'
        },
      }
      flight.open(head)
    }

    /** Where the captured body goes: the waiters reading it, and the store once it is complete. */
    function bodySink(flight: Generation | undefined): BodySink {
      return {
        appended: (bytes) => {
          closing?.progress()
          flight?.append(bytes)
        },
        ended: () => {
          saving = true
          closing?.release()
          flight?.complete()
          void save(res, tee, client.headers, miss, toStore!, since!).finally(land)
        },
        get wanted() {
          return flight?.wanted === true
        },
      }
    }

    /** RFC 9111 §4.3.4: still current; the stored body with the handler's fresher headers. */
    function revalidated(head: Head, surrogate: SurrogateInstructions | undefined, now: number): HeadPlan {
      counts.revalidations++
      if (!miss.background) responded(opts, req, res, miss.key, 'revalidated')
      const headers = { ...refreshedHeaders(stale!.headers, head.headers), date: String(head.headers.date ?? formatHttpDate(now)) }
      const fresh = mayStore ? freshness(client.headers, { status: stale!.status, headers, cacheFor: cacheForOf(res, surrogate, miss.key) }, opts, now) : undefined
      const tags = fresh && variantTagged(res, miss, withSurrogateTags(tagsOf(res, miss.key, userTags(stale!.tags)), surrogate))
      const entry = tags ? toEntry(stale!.status, headers, stale!.body, tags, fresh!, now, opts, req.headers) : { ...stale!, headers }
      if (tags) {
        void put(miss.key, entry, since!).then((stored) => {
          if (stored) flight?.serve(entry, miss.key)
          else flight?.unshareable()
          land()
        })
      } else {
        flight?.unshareable()
        land()
      }
      return { replace: entryResponse(client, entry, now, statusHeaders, `fwd=stale; fwd-status=${asHead ? head.status : 304}${tags ? '; stored' : ''}`), capture: false }
    }

    /** stale-if-error (RFC 5861 §4): the stale entry instead of the failure. */
    function staleOnError(now: number, fwdStatus = '') {
      counts.staleHits++
      responded(opts, req, res, miss.key, 'stale')
      flight?.serve(stale!, miss.key, 'stale-if-error')
      land()
      return entryResponse(client, stale!, now, statusHeaders, `fwd=stale${fwdStatus}`, 'stale-if-error')
    }
    const fallback = () => {
      const now = opts.now()
      if (!stale || res.headersSent || now >= miss.ifErrorUntil) return false
      const replacement = staleOnError(now)
      if (replacement.status === 304) counts.notModified++
      tee.replace(replacement)
      return true
    }
    const demand: Demand = {
      // A lazy body is not started when the stored entry is still current (the cache's own
      // validators), nor for a client whose copy is current, unless others wait for it.
      notModified: () => {
        const headers = res.getHeaders()
        if (answersNotModified(req.headers, res.statusCode, headers)) return true
        return answersNotModified(client.headers, res.statusCode, headers) && flight?.wanted !== true
      },
      // The body is pulled on, its client gone or a HEAD, while the cache stores it or others read it.
      shared: () => !isOver && ((toStore !== undefined && !overflowed) || flight?.wanted === true),
    }

    let overflowed = false
    const overflow = () => {
      overflowed = true
      flight?.overflowed()
    }
    const bodyless = req.method !== method
    const tee = teeResponse(res, plan, opts.maxEntryBytes, overflow, bodyless)
    if (bodyless) closing = holdClose(res, () => true, opts.coalesceTimeoutMs)
    const finished = completion(res)
    // A client gone before the body was complete: the generation goes on while others read it
    // and the handler still runs (a returned body is pulled for them; an async handler writes on).
    void finished.then((ok) => ok || saving || demand.shared() || land())
    try {
      await Promise.all([finished, run(fallback, demand)])
      if (optedOut && (res.cacheFor ?? res.locals.cacheFor) !== undefined) {
        const message = 'res.cacheFor was set after the response headers were sent, too late to store it; ' +
          'set it before the first write (or writeHead)'
        report(new Error(message), { op: 'cacheFor', key: miss.key })
      }
      // Its response done and its handler too, with no complete body: nothing more will come.
      if (!saving) land()
      await landed
    } finally {
      req.method = method
    }
  }

  /** Stores a complete body (unless it outgrew the limit or its declared length). */
  async function save(res: AcceleratedResponse, tee: TeeResult, headers: IncomingHttpHeaders, gen: Miss, { fresh, storedAt, added, head, surrogateTags }: ToStore, since: Checkpoint): Promise<void> {
    const body = tee.body()
    // A body shorter or longer than it declared is not the response it claims to be.
    const declared = head.headers['content-length']
    const tags = body && (declared === undefined || Number(declared) === body.length) ? withSurrogateTags(tagsOf(res, gen.key), { tags: surrogateTags }) : undefined
    if (!body || !tags) return
    const names = varyNames(head.headers.vary)
    const key = names.length > 0 ? variantKey(gen.base, names, headers, opts.normalizeVary) : gen.base
    const entry = toEntry(head.status, merged(head.headers, added), body, variantTagged(res, { ...gen, key }, tags)!, fresh, storedAt, opts, res.req.headers)
    if (!(await put(key, entry, since))) return
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
  function variantTagged(res: AcceleratedResponse, { base, key }: Pick<Miss, 'base' | 'key'>, tags: readonly string[] | undefined): readonly string[] | undefined {
    return tags && ownTags(opts, res.req, base, key, tags)
  }

  /** The cache's TTL for a response: Surrogate-Control's (no-store: 0), else res.cacheFor. */
  function cacheForOf(res: AcceleratedResponse, surrogate: SurrogateInstructions | undefined, key: string): number | undefined {
    if (surrogate?.noStore) return 0
    return surrogate?.ttl ?? optedInSeconds(res, key)
  }

  function optedInSeconds(res: AcceleratedResponse, key: string): number | undefined {
    const value: unknown = res.cacheFor ?? res.locals.cacheFor
    if (value === undefined || (typeof value === 'number' && value >= 0)) return value
    const what = typeof value === 'number' && !Number.isNaN(value) ? 'a number of seconds of at least 0' : 'a number of seconds'
    const todo = 'the response is not stored; set 0 (or nothing) not to store it, a positive number to store it'
    report(new TypeError(`expected res.cacheFor to be ${what}, got ${describe(value)}: ${todo}`), { op: 'cacheFor', key })
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

  return tracedGenerate(opts, generate)
}
