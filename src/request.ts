/** What the request asks of the cache: pure predicates over its headers. */
import type { IncomingHttpHeaders } from 'node:http'
import { deltaSeconds, type CacheControl } from './cache-control.js'

/** The request carries validators a 304 can answer (RFC 9110 §13.1.2, §13.1.3). */
export function isConditional(headers: IncomingHttpHeaders): boolean {
  return headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined
}

/**
 * RFC 9111 §4.3.2: a cache does not evaluate If-Match, If-Unmodified-Since or If-Range (they are
 * for the origin), and Range is not answered from a stored full response here: such requests go
 * to the handler.
 */
export function hasOriginOnlyPrecondition(headers: IncomingHttpHeaders): boolean {
  return headers.range !== undefined || headers['if-match'] !== undefined || headers['if-unmodified-since'] !== undefined || headers['if-range'] !== undefined
}

/**
 * The client asks for a response validated with the origin: `no-cache` or `max-age=0`
 * (RFC 9111 §5.2.1.4, §5.2.1.1), or `Pragma: no-cache` when it sent no Cache-Control (§5.4).
 */
export function wantsRegeneration(headers: IncomingHttpHeaders, cc: CacheControl): boolean {
  if (cc.has('no-cache') || deltaSeconds(cc.get('max-age')) === 0) return true
  return headers['cache-control'] === undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(String(headers.pragma ?? ''))
}
