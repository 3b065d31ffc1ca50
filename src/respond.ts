/** Answering from a stored entry: the response a hit, a waiter or a revalidation sends. */
import type { IncomingMessage } from 'node:http'
import type { CacheEntry } from './store.js'
import type { Replacement } from './tee.js'
import { isNotModified, notModifiedHeaders } from './conditional.js'
import { isConditional } from './request.js'
import { ifRangeMatches, parseRange } from './range.js'

/** Builds the cache's status headers for a Cache-Status member's parameters (RFC 9211). */
export type StatusHeaders = (params: string, xCache: 'HIT' | 'MISS', existing?: string | string[]) => Record<string, string>

/** The cache's status headers as the options ask: Cache-Status (or its rename), X-Cache. */
export function statusHeadersFor(statusHeader: string | false, xCache: boolean): StatusHeaders {
  return (params, xCacheValue, existing) => {
    const headers: Record<string, string> = {}
    const member = `node-accelerator; ${params}`
    // RFC 9211 §2: a cache appends its member to what the caches behind it reported.
    if (statusHeader) headers[statusHeader] = existing === undefined ? member : [existing, member].flat().join(', ')
    if (xCache) headers['x-cache'] = xCacheValue
    return headers
  }
}

/**
 * The response `entry` gives `req` at `now`: a 304 when the client's validators match (RFC 9110
 * §13.2.1: for a 2xx only), else the stored status, headers and body (none for HEAD), with Age
 * and the cache's status, `ttl` (negative when stale) and `detail` appended to `params`.
 */
export function entryResponse(
  req: Pick<IncomingMessage, 'method' | 'headers'>,
  entry: CacheEntry,
  now: number,
  status: StatusHeaders,
  params: string,
  detail?: string,
): Replacement {
  const age = String(entry.initialAge + Math.max(0, Math.floor((now - entry.storedAt) / 1000)))
  const ttl = Math.floor((entry.staleAt - now) / 1000)
  const cacheStatus = status(`${params}; ttl=${ttl}${detail ? `; detail=${detail}` : ''}`, 'HIT')
  if (isConditional(req.headers) && entry.status >= 200 && entry.status < 300 && isNotModified(req.headers, entry.headers)) {
    return { status: 304, headers: { ...notModifiedHeaders(entry.headers), age, ...cacheStatus } }
  }
  return { status: entry.status, headers: { ...entry.headers, age, ...cacheStatus }, body: req.method === 'HEAD' ? undefined : entry.body }
}

/**
 * A single range of `entry`'s body as a 206 (RFC 9110 §15.3.7), or a 416 when the range lies
 * outside it (RFC 9110 §15.5.17); the full response when the Range does not apply.
 */
export function rangeResponse(req: Pick<IncomingMessage, 'method' | 'headers'>, entry: CacheEntry, now: number, status: StatusHeaders, params: string, detail?: string): Replacement {
  const full = entry.body.length
  const range = entry.status === 200 && ifRangeMatches(req.headers, entry) ? parseRange(req.headers.range, full) : undefined
  if (range === undefined) return entryResponse(req, entry, now, status, params, detail)
  const cacheStatus = status(`${params}; ttl=${Math.floor((entry.staleAt - now) / 1000)}${detail ? `; detail=${detail}` : ''}`, 'HIT')
  if (range === 'unsatisfiable') return { status: 416, headers: { 'content-range': `bytes */${full}`, 'content-length': '0', ...cacheStatus } }
  const age = String(entry.initialAge + Math.max(0, Math.floor((now - entry.storedAt) / 1000)))
  const headers = { ...entry.headers, 'content-range': `bytes ${range.start}-${range.end}/${full}`, 'content-length': String(range.end - range.start + 1), age, ...cacheStatus }
  return { status: 206, headers, body: req.method === 'HEAD' ? undefined : entry.body.subarray(range.start, range.end + 1) }
}
