/**
 * Generating a response: running the handler (or the rest of a middleware stack) with the tee on,
 * for a miss, a revalidation of a stale entry, or a background refresh; deciding what the client
 * gets once the status and headers are final; storing what finished in full; and telling the
 * requests that waited on it (coalescing) what to serve.
 *
 * One {@link MissRun} per generation holds its state in fields, and its steps are methods: the
 * tee calls its plan, the body sink and the lazy-body demand are the object itself. (A closure per
 * step made every miss allocate twenty functions and a context before the handler ran.)
 */
import type { IncomingMessage } from 'node:http'
import type { CacheEntry, Checkpoint } from '../store.js'
import type { AcceleratedResponse } from '../types.js'
import type { CacheControl } from '../http/cache-control.js'
import { answersNotModified, isNotModified, notModifiedHeaders } from '../http/conditional.js'
import { isConditional } from '../http/request.js'
import { freshness, storability, type Freshness, type NotStored } from '../http/policy.js'
import { strongEtag } from '../http/etag.js'
import { formatHttpDate } from '../http/http-date.js'
import { completion, holdClose, teeResponse } from './tee.js'
import type { BodySink, Head, HeaderRecord, HeadPlan, Replacement, TeeResult } from './tee.js'
import { sharedHeaders, toEntry } from './entry.js'
import { merged } from '../http/merged.js'
import { entryResponse } from './respond.js'
import { varyNames } from '../http/vary.js'
import { coversVariant, storeKeyFor, varyRecord } from './variants.js'
import { userTags } from './invalidation.js'
import { bodyWanted, headUpdates, refreshedHeaders, sendValidators } from './revalidate.js'
import type { Generation, SharedHead } from './generation.js'
import type { Demand } from './body.js'
import {
  SURROGATE_HEADERS,
  surrogateInstructions,
  type SurrogateInstructions,
} from '../http/surrogate.js'
import { responded, tracedGenerate } from './diagnostics.js'
import {
  cacheForOf,
  put,
  tagsOf,
  variantTagged,
  withSurrogateTags,
  type Core,
} from './store-write.js'

export { noCounts, type Core, type Counts } from './store-write.js'

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

/**
 * Generates the response: the handler (with a stale-if-error fallback, and what the cache asks
 * of a returned body) or the next middleware.
 */
export type Run = (fallback?: () => boolean, demand?: Demand) => Promise<boolean>

/** A response being stored: its freshness, when it was generated, the validators the cache added. */
interface ToStore {
  fresh: Freshness
  storedAt: number
  added: Record<string, string>
  /** Its status and headers as they are to be stored (cache-only headers already left out). */
  head: Head
  surrogateTags: string[]
}

/** The request as the handler is asked it: the cache's own method and validators. */
interface Asked {
  method: string | undefined
  headers: IncomingMessage['headers']
}

/**
 * Reasons not to store that belong to the request, not to the responses of its key: they do not
 * stop the next requests for the key from coalescing (see Flights.passes).
 */
const REQUEST_REASONS: ReadonlySet<string> = new Set([
  'authorization',
  'store-down',
  'request-no-store',
  'range',
  'head',
])

type Unstored = NotStored | 'store-down' | 'request-no-store' | 'range' | 'head'

/** Why no response to this request is stored, whatever it says (RFC 9211 §2.8 detail). */
function notStorable(since: Checkpoint | undefined, miss: Miss): Unstored {
  if (since === undefined) return 'store-down'
  return miss.uncached ? 'range' : miss.cc.has('no-store') ? 'request-no-store' : 'head'
}

/** A copy of `headers` without `names`. */
function omit<T extends Record<string, unknown>>(headers: T, names: readonly string[]): T {
  const kept: Record<string, unknown> = { ...headers }
  for (const name of names) delete kept[name]
  return kept as T
}

/** The generate function of one accelerator. */
export function generator(parts: Omit<Core, 'statusName'>) {
  const { statusHeader } = parts.opts
  const core: Core = { ...parts, statusName: statusHeader ? statusHeader.toLowerCase() : undefined }
  return tracedGenerate(core.opts, (req, res, run, miss) =>
    new MissRun(core, req, res, miss).generate(run),
  )
}

/**
 * One generation: runs the handler with the tee on; feeds the shared generation its waiters read;
 * stores the body once complete; resolves once the generation is over (stored, or known not to be).
 */
class MissRun implements BodySink, Demand {
  readonly #method: string | undefined
  readonly #flight: Generation | undefined
  readonly #stale: CacheEntry | undefined
  #since: Checkpoint | undefined
  #mayStore = false
  /** The request the handler is asked (see generate). */
  #client!: Asked
  /** RFC 9111 §4.3.5: a shared cache asks about a stored GET with the client's HEAD itself. */
  #asHead = false
  /** The keys its flight is registered under. */
  readonly #aliases: string[]
  /** Nothing opted the response in when its headers left (to tell a late res.cacheFor). */
  #optedOut = false
  #toStore: ToStore | undefined
  #over!: () => void
  #isOver = false
  #saving = false
  #overflowed = false
  #closing: ReturnType<typeof holdClose> | undefined
  #tee!: TeeResult

  constructor(
    private readonly core: Core,
    private readonly req: IncomingMessage,
    private readonly res: AcceleratedResponse,
    private readonly miss: Miss,
  ) {
    this.#method = req.method
    this.#flight = miss.flight
    this.#stale = miss.stale
    this.#aliases = [miss.key]
  }

  async generate(run: Run): Promise<void> {
    const { core, req, res, miss } = this
    const { opts } = core
    if (!miss.background) core.counts.misses++
    res.locals ??= {}
    let since: Checkpoint | undefined
    if (!miss.storeDown) {
      try {
        since = await core.store.checkpoint()
      } catch (err) {
        core.report(err as Error, { op: 'checkpoint', key: miss.key })
      }
    }
    this.#since = since
    const stale = this.#stale
    const method = this.#method
    const mayStore = (this.#mayStore =
      since !== undefined && !miss.cc.has('no-store') && !miss.uncached)
    // The handler gets the cache's own request: a GET for a HEAD (the entry serves both), with the
    // stored validators (RFC 9111 §4.3.1) or none, so that a route answering 304 itself still
    // gives the body to store. The client's own headers decide what the client gets.
    const validated = stale || (mayStore && isConditional(req.headers))
    this.#client = { method, headers: validated ? sendValidators(req, stale) : req.headers }
    this.#asHead = stale !== undefined && opts.sharedCache && method === 'HEAD'
    if (mayStore && method === 'HEAD' && !this.#asHead) req.method = 'GET'
    if (this.#flight) bodyWanted(req, () => this.wanted)
    const landed = new Promise<void>((resolve) => (this.#over = resolve))
    const bodyless = req.method !== method
    this.#tee = teeResponse(
      res,
      (head) => this.#plan(head),
      opts.maxEntryBytes,
      () => this.#overflow(),
      bodyless,
    )
    if (bodyless) this.#closing = holdClose(res, () => true, opts.coalesceTimeoutMs)
    const finished = completion(res)
    // A client gone before the body was complete: the generation goes on while others read it
    // and the handler still runs (a returned body is pulled for them; an async handler writes on).
    void finished.then((ok) => ok || this.#saving || this.shared() || this.#land())
    try {
      await Promise.all([finished, run(() => this.#fallback(), this)])
      if (this.#optedOut && (res.cacheFor ?? res.locals.cacheFor) !== undefined) {
        const message =
          'res.cacheFor was set after the response headers were sent, too late to store it; ' +
          'set it before the first write (or writeHead)'
        core.report(new Error(message), { op: 'cacheFor', key: miss.key })
      }
      // Its response done and its handler too, with no complete body: nothing more will come.
      if (!this.#saving) this.#land()
      await landed
    } finally {
      req.method = method
    }
  }

  /** The generation is over: the flight leaves the registry, waiters left go on. */
  #land(): void {
    if (this.#isOver) return
    this.#isOver = true
    this.#closing?.release()
    if (this.#flight) this.core.flights.land(this.#flight, this.#aliases)
    this.#over()
  }

  /** What the client gets; each 304 sent is counted here, whoever decided it (stats()). */
  #plan(head: Head): HeadPlan {
    const decided = this.#decide(head)
    if ((decided.replace ?? head).status === 304) this.core.counts.notModified++
    return decided
  }

  /** What the client gets, decided when the handler's status and headers are final. */
  #decide(head: Head): HeadPlan {
    const { core, req, res, miss } = this
    const { opts, flights } = core
    const stale = this.#stale
    const flight = this.#flight
    const since = this.#since
    const mayStore = this.#mayStore
    const client = this.#client
    const now = opts.now()
    // Headers meant for the cache alone leave the response here, and the stored entry too.
    const surrogate = opts.surrogateKeys ? surrogateInstructions(head.headers) : undefined
    const omitHeaders: readonly string[] =
      surrogate && !opts.keepSurrogateHeaders ? SURROGATE_HEADERS : []
    if (omitHeaders.length > 0) head = { ...head, headers: omit(head.headers, omitHeaders) }
    if (miss.background && head.status >= 500) {
      core.report(new Error(`background refresh answered ${head.status}`), {
        op: 'refresh',
        key: miss.key,
      })
    }
    const updates = this.#asHead ? headUpdates(stale!.headers, head, head.wholeBody()) : undefined
    const current = this.#asHead
      ? updates === true
      : head.status === 304 ||
        (head.status >= 200 && head.status < 300 && isNotModified(req.headers, head.headers))
    if (stale && current) return this.#revalidated(head, surrogate, now)
    // RFC 9111 §4.3.5: a HEAD's 200 that shows the stored GET changed makes it stale.
    if (updates === false && mayStore && now < stale!.staleAt) {
      void put(core, miss.key, { ...stale!, staleAt: now }, since!, false)
    }
    if (stale && head.status >= 500 && now < miss.ifErrorUntil) {
      return { replace: this.#staleOnError(now, `; fwd-status=${head.status}`), capture: false }
    }
    if (!miss.background) responded(opts, req, res, miss.key, 'miss')
    const cacheFor = mayStore ? cacheForOf(core, res, surrogate, miss.key) : undefined
    const decided =
      mayStore && !this.#asHead
        ? storability(
            client.headers,
            { status: head.status, headers: head.headers, cacheFor },
            opts,
            now,
          )
        : notStorable(since, miss)
    const fresh = typeof decided === 'string' ? undefined : decided
    this.#optedOut = decided === 'not-opted-in'
    // Hit-for-miss: what the response itself says decides whether the next requests wait.
    if (fresh !== undefined && fresh.ttl > 0) flights.shareable(miss.key)
    else if (fresh !== undefined || !REQUEST_REASONS.has(decided as string))
      flights.unshareable(miss.key)
    const added: Record<string, string> = {}
    if (fresh !== undefined && head.headers.date === undefined) added.date = formatHttpDate(now)
    // A body given whole to end() has its ETag before its headers go out.
    const whole =
      fresh !== undefined && head.headers.etag === undefined ? head.wholeBody() : undefined
    if (whole !== undefined) added.etag = strongEtag(whole)
    // RFC 9110 §9.3.2: a HEAD gets the headers the GET would, its length included.
    if (this.#method === 'HEAD' && head.headers['content-length'] === undefined) {
      const length = head.wholeBody()?.length
      if (length !== undefined) added['content-length'] = String(length)
    }
    const sent = merged(head.headers, added)
    const notModified = answersNotModified(client.headers, head.status, sent)
    // A 304 to this client still stores the body when end() gave it whole, or when others
    // wait for it (a lazy body is then pulled for them): otherwise clients revalidating would
    // keep the cache from ever refilling.
    const capture =
      fresh !== undefined && (!notModified || head.wholeBody() !== undefined || this.wanted)
    if (capture) {
      this.#toStore = { fresh, storedAt: now, added, head, surrogateTags: surrogate?.tags ?? [] }
      // A response stale at once (ttl 0) is revalidated by each request: not shared.
      if (flight && fresh.ttl > 0) {
        this.#share(flight, head, sent, fresh, now)
        this.#closing ??= holdClose(res, () => flight.wanted, opts.coalesceTimeoutMs)
      } else flight?.unshareable()
    } else if (fresh === undefined) {
      // Not to be shared: each waiter runs the handler on its own, now.
      flight?.unshareable()
      this.#land()
    } else this.#land() // a 304 with a body never pulled: one waiter leads the next generation
    const existing = core.statusName ? head.headers[core.statusName] : undefined
    // RFC 9211 §2.7-2.8: `stored` only for what is on its way into the store; else why not.
    const size = capture ? head.length() : undefined
    const tooLarge = size !== undefined && size > opts.maxEntryBytes
    const detail = tooLarge ? 'too-large' : typeof decided === 'string' ? decided : undefined
    const outcome = `${stale ? 'fwd=stale' : 'fwd=miss'}${capture && detail === undefined ? '; stored' : ''}`
    const ours = core.statusHeaders(
      detail === undefined ? outcome : `${outcome}; detail=${detail}`,
      'MISS',
      existing,
    )
    const sink = capture ? this : undefined
    if (!notModified) return { capture, extraHeaders: merged(added, ours), omitHeaders, sink }
    return {
      replace: { status: 304, headers: merged(notModifiedHeaders(sent), ours) },
      capture,
      sink,
    }
  }

  /** Opens the generation to its waiters: the response as each of them gets it. */
  #share(
    flight: Generation,
    { status, wholeBody }: Head,
    sent: HeaderRecord,
    fresh: Freshness,
    now: number,
  ): void {
    const { opts, flights, counts, statusHeaders } = this.core
    const { base } = this.miss
    const names = varyNames(sent.vary)
    const keyFor = (request: Pick<IncomingMessage, 'headers'>) =>
      storeKeyFor(base, names, request.headers, opts.normalizeVary)
    const key = keyFor(this.#client)
    if (key !== this.miss.key) {
      this.#aliases.push(key)
      flights.alias(key, flight)
    }
    const headers = sharedHeaders(sent, wholeBody()?.length)
    const staleAt = now + fresh.ttl * 1000
    const tail = merged(
      { age: String(fresh.initialAge) },
      statusHeaders(`hit; ttl=${fresh.ttl}`, 'HIT'),
    )
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

  // The body sink (BodySink): the waiters reading the captured body, and the store once complete.

  appended(bytes: Buffer): void {
    this.#closing?.progress()
    this.#flight?.append(bytes)
  }

  ended(): void {
    this.#saving = true
    this.#closing?.release()
    this.#flight?.complete()
    void this.#save().finally(() => this.#land())
  }

  /** True while others read the body: their pace is the handler's then, not the client's alone. */
  get wanted(): boolean {
    return this.#flight?.wanted === true
  }

  // What the cache asks of a lazy body (Demand).

  /**
   * A lazy body is not started when the stored entry is still current (the cache's own
   * validators), nor for a client whose copy is current, unless others wait for it.
   */
  notModified(): boolean {
    const { req, res } = this
    const headers = res.getHeaders()
    if (answersNotModified(req.headers, res.statusCode, headers)) return true
    return answersNotModified(this.#client.headers, res.statusCode, headers) && !this.wanted
  }

  /** The body is pulled on, its client gone or a HEAD, while the cache stores it or others read it. */
  shared(): boolean {
    return !this.#isOver && ((this.#toStore !== undefined && !this.#overflowed) || this.wanted)
  }

  #overflow(): void {
    this.#overflowed = true
    this.#flight?.overflowed()
  }

  /** RFC 9111 §4.3.4: still current; the stored body with the handler's fresher headers. */
  #revalidated(head: Head, surrogate: SurrogateInstructions | undefined, now: number): HeadPlan {
    const { core, req, res, miss } = this
    const { opts } = core
    const stale = this.#stale!
    const flight = this.#flight
    core.counts.revalidations++
    if (!miss.background) responded(opts, req, res, miss.key, 'revalidated')
    const date = String(head.headers.date ?? formatHttpDate(now))
    const headers = { ...refreshedHeaders(stale.headers, head.headers), date }
    const cacheFor = cacheForOf(core, res, surrogate, miss.key)
    const fresh = this.#mayStore
      ? freshness(this.#client.headers, { status: stale.status, headers, cacheFor }, opts, now)
      : undefined
    const own =
      fresh && withSurrogateTags(tagsOf(core, res, miss.key, userTags(stale.tags)), surrogate)
    const tags = fresh && variantTagged(core, res.req, miss.base, miss.key, own)
    const entry = tags
      ? toEntry(stale.status, headers, stale.body, tags, fresh!, now, opts, req.headers)
      : { ...stale, headers }
    if (tags) {
      void put(core, miss.key, entry, this.#since!).then((stored) => {
        if (stored) flight?.serve(entry, miss.key)
        else flight?.unshareable()
        this.#land()
      })
    } else {
      flight?.unshareable()
      this.#land()
    }
    const status = `fwd=stale; fwd-status=${this.#asHead ? head.status : 304}${tags ? '; stored' : ''}`
    return {
      replace: entryResponse(this.#client, entry, now, core.statusHeaders, status),
      capture: false,
    }
  }

  /** stale-if-error (RFC 5861 §4): the stale entry instead of the failure. */
  #staleOnError(now: number, fwdStatus = ''): Replacement {
    const { core, req, res, miss } = this
    const stale = this.#stale!
    core.counts.staleHits++
    responded(core.opts, req, res, miss.key, 'stale')
    this.#flight?.serve(stale, miss.key, 'stale-if-error')
    this.#land()
    return entryResponse(
      this.#client,
      stale,
      now,
      core.statusHeaders,
      `fwd=stale${fwdStatus}`,
      'stale-if-error',
    )
  }

  /** The handler failed: the stale entry instead, while stale-if-error allows (RFC 5861 §4). */
  #fallback(): boolean {
    const now = this.core.opts.now()
    if (!this.#stale || this.res.headersSent || now >= this.miss.ifErrorUntil) return false
    const replacement = this.#staleOnError(now)
    if (replacement.status === 304) this.core.counts.notModified++
    this.#tee.replace(replacement)
    return true
  }

  /** Stores a complete body (unless it outgrew the limit or its declared length). */
  async #save(): Promise<void> {
    const { core, res, miss } = this
    const { fresh, storedAt, added, head, surrogateTags } = this.#toStore!
    const body = this.#tee.body()
    // A body shorter or longer than it declared is not the response it claims to be.
    const declared = head.headers['content-length']
    const whole = body !== undefined && (declared === undefined || Number(declared) === body.length)
    const tags = whole
      ? withSurrogateTags(tagsOf(core, res, miss.key), { tags: surrogateTags })
      : undefined
    if (!body || !tags) return
    const names = varyNames(head.headers.vary)
    const key = storeKeyFor(miss.base, names, this.#client.headers, core.opts.normalizeVary)
    const entryTags = variantTagged(core, res.req, miss.base, key, tags)!
    const headers = merged(head.headers, added)
    const entry = toEntry(
      head.status,
      headers,
      body,
      entryTags,
      fresh,
      storedAt,
      core.opts,
      res.req.headers,
    )
    const since = this.#since!
    if (!(await put(core, key, entry, since))) return
    if (names.length > 0 && !coversVariant(miss.record, names, entry.expiresAt)) {
      await put(core, miss.base, varyRecord(names, storedAt, entry.expiresAt), since, false)
    }
  }
}
