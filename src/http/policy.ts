/**
 * Whether a response may be stored, and for how long: pure functions of the request headers,
 * the response status and headers, and the accelerator's options (undici lib/util/cache.js).
 *
 * Two modes. By default (an app's own cache) only what opts in is stored: `res.cacheFor`,
 * `s-maxage`, `public, max-age`, `Expires`, `defaultCacheFor`. As an RFC 9111 shared cache (a
 * reverse proxy in front of an origin that is not ours), the origin's headers alone decide.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { deltaSeconds, type CacheControl } from './cache-control.js'
import { parseHttpDate } from './http-date.js'
import { varyNames } from './vary.js'
import { responseDirectives } from './targeted.js'

/** The options that decide storability, as the accelerator resolved them. */
export interface StoragePolicy {
  cacheableStatuses: ReadonlySet<number>
  honorCacheControl: boolean
  /** Seconds a response that says nothing about its freshness is stored for; 0 stores none. */
  defaultCacheFor: number
  /** Store as an RFC 9111 shared cache: the origin's headers alone decide, no opt-in needed. */
  sharedCache: boolean
  /** Read `CDN-Cache-Control` (RFC 9213) over Cache-Control. @default false */
  cdnCacheControl?: boolean
}

/** How a storable response is to be kept. */
export interface Freshness {
  /** Seconds from now the stored response stays fresh (0: stale at once, always revalidated). */
  ttl: number
  /** Seconds of age the response already has (its `Age` header). */
  initialAge: number
  /** Seconds it is kept after going stale at least, so it can be revalidated (`no-cache`). */
  keep?: number
}

/** The response being decided: what the handler sent, and what it asked of the cache. */
export interface ResponseHead {
  status: number
  headers: Readonly<Record<string, string | string[] | undefined>>
  /** `res.cacheFor` (or Surrogate-Control's max-age), already validated: seconds, or undefined. */
  cacheFor: number | undefined
}

/** RFC 9111 §4.2.2: heuristic freshness is a fraction of the time since Last-Modified, capped. */
const HEURISTIC_FRACTION = 0.1
const HEURISTIC_MAX = 24 * 60 * 60
/** How long a shared cache keeps a `no-cache` response for revalidation when nothing else says. */
const NO_CACHE_KEEP = 60 * 60

/**
 * Why a response is not stored, as `Cache-Status`'s `detail` names it (RFC 9211 §2.8): its
 * `status`; `no-store`, `private`, `set-cookie`, `authorization` (a response to an authenticated
 * request that does not say it may be shared), `vary` (`Vary: *`), `event-stream`; `cache-for`
 * (`res.cacheFor` of 0 or less); `not-opted-in` (nothing says it may be stored); `stale` (a
 * lifetime already spent, or 0).
 */
export type NotStored =
  | 'status'
  | 'no-store'
  | 'private'
  | 'set-cookie'
  | 'authorization'
  | 'vary'
  | 'event-stream'
  | 'cache-for'
  | 'not-opted-in'
  | 'stale'

/**
 * How long a response may be stored, or `undefined` when it must not be. The request method and
 * the client's own directives are the caller's concern; everything the response says is here.
 */
export function freshness(
  reqHeaders: IncomingHttpHeaders,
  head: ResponseHead,
  policy: StoragePolicy,
  now: number,
): Freshness | undefined {
  const decided = storability(reqHeaders, head, policy, now)
  return typeof decided === 'string' ? undefined : decided
}

/** {@link freshness}, or why the response is not stored. */
export function storability(
  reqHeaders: IncomingHttpHeaders,
  { status, headers, cacheFor }: ResponseHead,
  policy: StoragePolicy,
  now: number,
): Freshness | NotStored {
  // RFC 9213 §2.1: a valid targeted field (Accelerator-Cache-Control, CDN-Cache-Control) rules
  // over Cache-Control and Expires.
  const { cc, targeted } = responseDirectives(headers, policy)
  // RFC 9111 §5.2.2.3: must-understand limits storing to a cache that understands the status;
  // one that does ignores no-store.
  const mustUnderstand = policy.sharedCache && cc.has('must-understand')
  if (mustUnderstand ? !UNDERSTOOD_STATUSES.has(status) : !storableStatus(status, policy))
    return 'status'
  // RFC 9111 §3: no-store and private forbid a shared cache from storing, whatever else is said.
  if (cc.has('no-store') && !mustUnderstand) return 'no-store'
  if (cc.has('private')) return 'private'
  // One client's cookie must never be replayed to another.
  if (headers['set-cookie'] !== undefined) return 'set-cookie'
  // RFC 9111 §3.5: a response to an authenticated request is shared only when it says so.
  if (
    reqHeaders.authorization !== undefined &&
    !cc.has('public') &&
    !cc.has('s-maxage') &&
    !(policy.sharedCache && cc.has('must-revalidate'))
  )
    return 'authorization'
  // RFC 9110 §12.5.5: `Vary: *` means the response depends on more than request headers.
  if (varyNames(headers.vary).includes('*')) return 'vary'
  // An event stream never ends; buffering it would only grow.
  if (
    String(headers['content-type'] ?? '')
      .trimStart()
      .toLowerCase()
      .startsWith('text/event-stream')
  )
    return 'event-stream'

  // The app's own handler answers here and now: its Date is a label, not a time in transit.
  const initialAge = policy.sharedCache ? correctedInitialAge(headers, now) : parseAge(headers.age)
  if (cacheFor !== undefined) return cacheFor > 0 ? { ttl: cacheFor, initialAge } : 'cache-for'
  // RFC 9213 §2.1: Expires is ignored along with Cache-Control when a targeted field rules.
  const expires = targeted ? undefined : headers.expires
  if (policy.sharedCache) {
    return sharedFreshness(
      cc,
      headers,
      expires,
      now,
      initialAge,
      policy.cacheableStatuses.has(status),
    )
  }
  const lifetime = policy.honorCacheControl
    ? declaredLifetime(cc, targeted, headers, expires, now)
    : undefined
  // A response that declares its freshness is held to it, even to 0; the default is only for
  // responses that say nothing (RFC 9111 §4.2.1 order: s-maxage, max-age, Expires).
  const ttl = lifetime === undefined ? policy.defaultCacheFor : lifetime - initialAge
  if (ttl > 0) return { ttl, initialAge }
  return lifetime === undefined ? 'not-opted-in' : 'stale'
}

/**
 * RFC 9110 §15: the final statuses whose semantics this cache implements, for must-understand
 * (RFC 9111 §5.2.2.3). 206 and 304 are not among them: a 206 is never stored, a 304 updates.
 */
const UNDERSTOOD_STATUSES: ReadonlySet<number> = new Set([
  200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308, 400, 401, 402, 403, 404, 405, 406,
  407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503, 504,
  505,
])

/**
 * Whether the status allows storing. The app's own cache keeps to `cacheableStatuses`; a shared
 * cache (RFC 9111 §3) stores any final status but 206 and 304 when the response gives explicit
 * freshness (the heuristic stays with `cacheableStatuses`, RFC 9111 §4.2.2, or `public`).
 */
function storableStatus(status: number, policy: StoragePolicy): boolean {
  if (policy.cacheableStatuses.has(status)) return true
  return policy.sharedCache && status >= 200 && status !== 206 && status !== 304
}

/**
 * RFC 9111 §4.2.3: the corrected initial age, seconds, for a response from another server. The
 * larger of the Age received and the apparent age (how long ago the origin's Date says the
 * response was made), so that a response that spent its freshness on the way arrives stale. (The
 * response delay, between asking and the headers arriving, is not measured: under a second.)
 */
export function correctedInitialAge(headers: ResponseHead['headers'], now: number): number {
  const ageValue = parseAge(headers.age)
  const date = parseHttpDate(headers.date, now)
  // Date has one-second resolution (RFC 9110 §5.6.7): the response may have been made up to a
  // second after it says, so count the least age it allows (a max-age=1 response made at
  // 12:00:00.999 and received at 12:00:01.005 is not a second old).
  const apparent = date === undefined ? 0 : Math.max(0, Math.floor((now - date - 999) / 1000))
  return Math.max(ageValue, apparent)
}

/**
 * RFC 9111 §3, §4.2 for a shared cache: storable without an opt-in, fresh for s-maxage, else
 * max-age, else Expires - Date, else (§4.2.2, for a heuristically cacheable status or a `public`
 * response) a tenth of the time since Last-Modified. A `no-cache` response (RFC 9111 §5.2.2.4)
 * is stored stale, to be revalidated before every use; one with a validator is kept past its
 * freshness (§4.3.1) so that it is revalidated rather than fetched anew.
 */
function sharedFreshness(
  cc: CacheControl,
  headers: ResponseHead['headers'],
  expires: ResponseHead['headers'][string],
  now: number,
  initialAge: number,
  heuristicStatus: boolean,
): Freshness | NotStored {
  const explicit = explicitLifetime(cc, headers, expires, now)
  const heuristic = heuristicStatus || cc.has('public')
  const lifetime = explicit ?? (heuristic ? heuristicLifetime(headers, now) : undefined)
  if (lifetime === undefined && !heuristic) return 'not-opted-in'
  const keep = Math.min(Math.max(lifetime ?? 0, NO_CACHE_KEEP), HEURISTIC_MAX)
  if (cc.has('no-cache')) return { ttl: 0, initialAge, keep }
  if (lifetime === undefined) return 'not-opted-in'
  const ttl = lifetime - initialAge
  const validated = headers.etag !== undefined || headers['last-modified'] !== undefined
  if (ttl <= 0) return 'stale'
  return validated ? { ttl, initialAge, keep } : { ttl, initialAge }
}

/**
 * The freshness lifetime the handler's headers opt in to, in seconds: `s-maxage`, else
 * `public, max-age` (any `max-age` of a field targeted at this cache), else `Expires - Date`.
 * `0` when the headers forbid reuse without revalidation; `undefined` when they say nothing that
 * opts in.
 */
function declaredLifetime(
  cc: CacheControl,
  targeted: boolean,
  headers: ResponseHead['headers'],
  expires: ResponseHead['headers'][string],
  now: number,
): number | undefined {
  // RFC 9111 §5.2.2.4: no-cache means revalidate before every reuse; an app's own cache stores
  // such a response only when told to (res.cacheFor), since that is the app's explicit choice.
  if (cc.has('no-cache')) return 0
  // max-age alone is the browser's freshness; only `public` extends it to this cache.
  if (!targeted && !cc.has('s-maxage') && cc.has('max-age') && !cc.has('public')) return undefined
  return explicitLifetime(cc, headers, expires, now)
}

/** RFC 9111 §4.2.1: s-maxage (§5.2.2.10: it wins in a shared cache), max-age, Expires - Date. */
function explicitLifetime(
  cc: CacheControl,
  headers: ResponseHead['headers'],
  expires: ResponseHead['headers'][string],
  now: number,
): number | undefined {
  const sMaxAge = deltaSeconds(cc.get('s-maxage'))
  if (sMaxAge !== undefined) return sMaxAge
  // RFC 9111 §5.3: max-age overrides Expires, a malformed one included (then: already stale).
  if (cc.has('max-age')) return deltaSeconds(cc.get('max-age')) ?? 0
  if (expires === undefined) return undefined
  const expiresAt = parseHttpDate(expires, now)
  // RFC 9111 §5.3: an invalid Expires (such as "0") means already expired.
  if (expiresAt === undefined) return 0
  const date = parseHttpDate(headers.date, now) ?? now
  return Math.max(0, Math.floor((expiresAt - date) / 1000))
}

/** RFC 9111 §4.2.2: 10% of the time since Last-Modified, at most a day; none without it. */
function heuristicLifetime(headers: ResponseHead['headers'], now: number): number | undefined {
  const lastModified = parseHttpDate(headers['last-modified'], now)
  if (lastModified === undefined) return undefined
  const date = parseHttpDate(headers.date, now) ?? now
  const lifetime = Math.floor(((date - lastModified) / 1000) * HEURISTIC_FRACTION)
  return lifetime > 0 ? Math.min(lifetime, HEURISTIC_MAX) : undefined
}

/**
 * RFC 9111 §5.1: the Age a response declares, in seconds. A list (repeated lines, or one line
 * with commas) counts by its first member; a value that is not a non-negative integer
 * (`7200.0`, `-1`, `soon`) is ignored, that is 0.
 */
export function parseAge(value: string | string[] | undefined): number {
  const first = Array.isArray(value) ? value[0] : value
  return deltaSeconds(first?.split(',')[0]?.trim()) ?? 0
}
