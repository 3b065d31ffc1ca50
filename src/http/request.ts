/** What the request asks of the cache: pure predicates over its headers. */
import type { IncomingHttpHeaders } from 'node:http'
import { deltaSeconds, type CacheControl } from './cache-control.js'
import { responseDirectives, type TargetOptions } from './targeted.js'

/** The request carries validators a 304 can answer (RFC 9110 §13.1.2, §13.1.3). */
export function isConditional(headers: IncomingHttpHeaders): boolean {
  return headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined
}

/**
 * RFC 9111 §4.3.2: a cache does not evaluate If-Match or If-Unmodified-Since (they are for the
 * origin): such requests go to the handler.
 */
export function hasOriginOnlyPrecondition(headers: IncomingHttpHeaders): boolean {
  return headers['if-match'] !== undefined || headers['if-unmodified-since'] !== undefined
}

/** RFC 9110 §9.2.1: the methods defined as safe; any other may change the resource. */
export function isUnsafe(method: string | undefined): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS' && method !== 'TRACE'
}

/** What {@link clientDemand} reads of a stored response: its headers and times (epoch ms). */
export interface StoredResponse {
  headers: Readonly<Record<string, string | string[]>>
  /** Seconds old when stored (RFC 9111 §4.2.3). */
  initialAge: number
  storedAt: number
  staleAt: number
}

/**
 * What the client's request directives (RFC 9111 §5.2.1) make of a stored entry: `revalidate`
 * (no-cache, an age over its max-age, less freshness left than its min-fresh), `accept-stale`
 * (stale, but within its max-stale, and the response does not forbid it), or `as-usual`.
 */
export function clientDemand(
  entry: StoredResponse,
  now: number,
  headers: IncomingHttpHeaders,
  cc: CacheControl,
  targets: TargetOptions = {},
): 'revalidate' | 'accept-stale' | 'as-usual' {
  if (wantsRegeneration(headers, cc)) return 'revalidate'
  const age = entry.initialAge + Math.max(0, (now - entry.storedAt) / 1000)
  const maxAge = deltaSeconds(cc.get('max-age'))
  if (maxAge !== undefined && age > maxAge) return 'revalidate'
  const minFresh = deltaSeconds(cc.get('min-fresh'))
  if (minFresh !== undefined && (entry.staleAt - now) / 1000 < minFresh) return 'revalidate'
  if (now < entry.staleAt || !cc.has('max-stale')) return 'as-usual'
  // RFC 9111 §5.2.2.2: must-revalidate (and no-cache) outrank a client's max-stale; RFC 9213
  // §2.1: as a targeted field says them.
  const strict = responseDirectives(entry.headers, targets).cc
  if (strict.has('must-revalidate') || strict.has('proxy-revalidate') || strict.has('no-cache'))
    return 'as-usual'
  const maxStale = cc.get('max-stale') === true ? Infinity : deltaSeconds(cc.get('max-stale'))
  return maxStale !== undefined && (now - entry.staleAt) / 1000 <= maxStale
    ? 'accept-stale'
    : 'as-usual'
}

/**
 * The client asks for a response validated with the origin: `no-cache` or `max-age=0`
 * (RFC 9111 §5.2.1.4, §5.2.1.1), or `Pragma: no-cache` when it sent no Cache-Control (§5.4).
 */
export function wantsRegeneration(headers: IncomingHttpHeaders, cc: CacheControl): boolean {
  if (cc.has('no-cache') || deltaSeconds(cc.get('max-age')) === 0) return true
  return (
    headers['cache-control'] === undefined &&
    /(^|,)\s*no-cache\s*(,|$)/i.test(String(headers.pragma ?? ''))
  )
}
