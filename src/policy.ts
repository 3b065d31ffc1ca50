/**
 * Whether a response may be stored, and for how long: pure functions of the request headers,
 * the response status and headers, and the accelerator's options (undici lib/util/cache.js).
 */
import type { IncomingHttpHeaders } from 'node:http'
import { deltaSeconds, parseCacheControl } from './cache-control.js'
import { parseHttpDate } from './http-date.js'
import { varyNames } from './vary.js'

/** The options that decide storability, as the accelerator resolved them. */
export interface StoragePolicy {
  cacheableStatuses: ReadonlySet<number>
  honorCacheControl: boolean
  /** Seconds a response that says nothing about its freshness is stored for; 0 stores none. */
  defaultCacheFor: number
}

/** How a storable response is to be kept. */
export interface Freshness {
  /** Seconds from now the stored response stays fresh. */
  ttl: number
  /** Seconds of age the response already has (its `Age` header). */
  initialAge: number
}

/** The response being decided: what the handler sent, and what it asked of the cache. */
export interface ResponseHead {
  status: number
  headers: Readonly<Record<string, string | string[] | undefined>>
  /** `res.cacheFor` (or `res.locals.cacheFor`), already validated: seconds, or undefined. */
  cacheFor: number | undefined
}

/**
 * How long a response may be stored, or `undefined` when it must not be. The request method and
 * the client's own directives are the caller's concern; everything the response says is here.
 */
export function freshness(
  reqHeaders: IncomingHttpHeaders,
  { status, headers, cacheFor }: ResponseHead,
  policy: StoragePolicy,
  now: number,
): Freshness | undefined {
  if (!policy.cacheableStatuses.has(status)) return undefined
  const cc = parseCacheControl(headers['cache-control'])
  // RFC 9111 §3: no-store and private forbid a shared cache from storing, whatever else is said.
  if (cc.has('no-store') || cc.has('private')) return undefined
  // One client's cookie must never be replayed to another.
  if (headers['set-cookie'] !== undefined) return undefined
  // RFC 9111 §3.5: a response to an authenticated request is shared only when it says so.
  if (reqHeaders.authorization !== undefined && !cc.has('public') && !cc.has('s-maxage')) return undefined
  // RFC 9110 §12.5.5: `Vary: *` means the response depends on more than request headers.
  if (varyNames(headers.vary).includes('*')) return undefined
  // An event stream never ends; buffering it would only grow.
  if (String(headers['content-type'] ?? '').trimStart().toLowerCase().startsWith('text/event-stream')) return undefined

  const initialAge = deltaSeconds(firstValue(headers.age)) ?? 0
  if (cacheFor !== undefined) return cacheFor > 0 ? { ttl: cacheFor, initialAge } : undefined
  const lifetime = policy.honorCacheControl ? declaredLifetime(cc, headers, now) : undefined
  // A response that declares its freshness is held to it, even to 0; the default is only for
  // responses that say nothing (RFC 9111 §4.2.1 order: s-maxage, max-age, Expires).
  const ttl = lifetime === undefined ? policy.defaultCacheFor : lifetime - initialAge
  return ttl > 0 ? { ttl, initialAge } : undefined
}

/**
 * The freshness lifetime the handler's headers opt in to, in seconds: `s-maxage`, else
 * `public, max-age`, else `Expires - Date`. `0` when the headers forbid reuse without
 * revalidation; `undefined` when they say nothing that opts in.
 */
function declaredLifetime(
  cc: ReadonlyMap<string, string | true>,
  headers: ResponseHead['headers'],
  now: number,
): number | undefined {
  // RFC 9111 §5.2.2.4: no-cache means revalidate before every reuse, which this cache cannot
  // do yet, so a header-driven entry would never be usable (res.cacheFor still opts in).
  if (cc.has('no-cache')) return 0
  // RFC 9111 §5.2.2.10: s-maxage wins in a shared cache.
  const sMaxAge = deltaSeconds(cc.get('s-maxage'))
  if (sMaxAge !== undefined) return sMaxAge
  if (cc.has('max-age')) {
    // max-age alone is the browser's freshness; only `public` extends it to this cache.
    // RFC 9111 §5.3: max-age also overrides Expires, so it does not fall through to it.
    return cc.has('public') ? (deltaSeconds(cc.get('max-age')) ?? 0) : undefined
  }
  const expires = headers.expires
  if (expires === undefined) return undefined
  const expiresAt = parseHttpDate(expires)
  // RFC 9111 §5.3: an invalid Expires (such as "0") means already expired.
  if (expiresAt === undefined) return 0
  const date = parseHttpDate(headers.date) ?? now
  return Math.max(0, Math.floor((expiresAt - date) / 1000))
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
