/** Answering from a stored entry: the response a hit, a waiter or a revalidation sends. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CacheEntry } from '../store.js'
import type { Replacement } from './tee.js'
import { answersNotModified, notModifiedHeaders } from '../http/conditional.js'
import { merged } from '../http/merged.js'
import { ifRangeMatches, parseRange } from '../http/range.js'
// The cache answers one range; the flow sends several to the origin (RFC 9110 §14.1.2).
export { isMultiRange } from '../http/range.js'

/** Builds the cache's status headers for a Cache-Status member's parameters (RFC 9211). */
export type StatusHeaders = (
  params: string,
  xCache: 'HIT' | 'MISS',
  existing?: string | string[],
) => Record<string, string>

/** The cache's status headers as the options ask: Cache-Status (or its rename), X-Cache. */
export function statusHeadersFor(statusHeader: string | false, xCache: boolean): StatusHeaders {
  return (params, xCacheValue, existing) => {
    const headers: Record<string, string> = {}
    const member = statusMember(params)
    // RFC 9211 §2: a cache appends its member to what the caches behind it reported.
    if (statusHeader)
      headers[statusHeader] = existing === undefined ? member : [existing, member].flat().join(', ')
    if (xCache) headers['x-cache'] = xCacheValue
    return headers
  }
}

/**
 * Writes a hit: `entry`'s status, headers and body (none for HEAD), or (`notModified`) a 304 with
 * the headers RFC 9110 §15.4.5 keeps; either with Age and the cache's status headers. The design
 * notes' hit path: an entry's headers object is flattened once (per kind) into the
 * `[name, value, ...]` array `writeHead` takes, its last slots kept for Age and the status
 * headers; a hit fills those slots and hands Node the same array (writeHead reads it at once and
 * keeps nothing), so a hit allocates no header object. MemoryStore entries keep their headers
 * object for life; RedisStore shares one per stored version of an entry.
 */
export type HitWriter = (
  res: ServerResponse,
  entry: CacheEntry,
  now: number,
  params: string,
  detail: string | undefined,
  send: 'full' | 'head' | 'not-modified',
) => void

export function hitWriterFor(statusHeader: string | false, xCache: boolean): HitWriter {
  const head = hitHeadFor(statusHeader, xCache)
  return (res, entry, now, params, detail, send) => {
    const notModified = send === 'not-modified'
    res.writeHead(notModified ? 304 : entry.status, head(entry, now, params, detail, notModified))
    res.end(send === 'full' ? entry.body : undefined)
  }
}

/**
 * A hit's header lines, `[name, value, ...]`, as {@link hitWriterFor} hands them to `writeHead`
 * (an adapter that answers without a ServerResponse builds its response from the same lines).
 * The array is the entry's own, refilled by the next hit: read it at once, keep nothing.
 */
export type HitHead = (
  entry: CacheEntry,
  now: number,
  params: string,
  detail: string | undefined,
  notModified: boolean,
) => string[]

export function hitHeadFor(statusHeader: string | false, xCache: boolean): HitHead {
  // By headers object: a store that decodes each hit anew may share one (RedisStore does).
  const prepared = {
    full: new WeakMap<CacheEntry['headers'], Prepared>(),
    notModified: new WeakMap<CacheEntry['headers'], Prepared>(),
  }
  // Ours replace any the entry holds under the same names.
  const replaced = new Set([
    'age',
    ...(statusHeader ? [statusHeader.toLowerCase()] : []),
    ...(xCache ? ['x-cache'] : []),
  ])
  const tail = [
    'age',
    '',
    ...(statusHeader ? [statusHeader, ''] : []),
    ...(xCache ? ['x-cache', 'HIT'] : []),
  ]
  function linesOf(entry: CacheEntry, kind: 'full' | 'notModified'): Prepared {
    const headers = kind === 'full' ? entry.headers : notModifiedHeaders(entry.headers)
    const lines: string[] = []
    for (const name in headers) {
      if (replaced.has(name.toLowerCase())) continue
      const value = headers[name]!
      if (typeof value === 'string') lines.push(name, value)
      else for (const v of value) lines.push(name, v)
    }
    lines.push(...tail)
    const made: Prepared = { lines, age: -1, ttl: NaN, params: '', detail: undefined }
    prepared[kind].set(entry.headers, made)
    return made
  }
  const agePosition = -tail.length + 1
  return (entry, now, params, detail, notModified) => {
    const kind = notModified ? 'notModified' : 'full'
    const made = prepared[kind].get(entry.headers) ?? linesOf(entry, kind)
    const { lines } = made
    // The values change once a second at most: a hot entry's hits reuse the last strings.
    const age = ageOf(entry, now)
    if (age !== made.age) {
      made.age = age
      lines[lines.length + agePosition] = String(age)
    }
    if (statusHeader) {
      const ttl = ttlOf(entry, now)
      if (ttl !== made.ttl || params !== made.params || detail !== made.detail) {
        made.ttl = ttl
        made.params = params
        made.detail = detail
        lines[lines.length + agePosition + 2] = statusMember(memberParams(params, ttl, detail))
      }
    }
    return lines
  }
}

/** A hit's header array, and the values its Age and status slots were last filled with. */
interface Prepared {
  lines: string[]
  age: number
  ttl: number
  params: string
  detail: string | undefined
}

/** This cache's member of a Cache-Status (RFC 9211 §2). */
function statusMember(params: string): string {
  return `node-accelerator; ${params}`
}

/** Seconds since the response was generated (RFC 9111 §4.2.3), counting the age it arrived with. */
function ageOf(entry: CacheEntry, now: number): number {
  return entry.initialAge + Math.max(0, Math.floor((now - entry.storedAt) / 1000))
}

/** The status header's member parameters for an entry served at `now`: `ttl` is negative when stale. */
function hitParams(entry: CacheEntry, now: number, params: string, detail?: string): string {
  return memberParams(params, ttlOf(entry, now), detail)
}

function memberParams(params: string, ttl: number, detail: string | undefined): string {
  return `${params}; ttl=${ttl}${detail ? `; detail=${detail}` : ''}`
}

/** Whole seconds until `entry` is stale at `now`; negative once it is. */
function ttlOf(entry: CacheEntry, now: number): number {
  return Math.floor((entry.staleAt - now) / 1000)
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
  const age = String(ageOf(entry, now))
  const cacheStatus = status(hitParams(entry, now, params, detail), 'HIT')
  if (answersNotModified(req.headers, entry.status, entry.headers)) {
    return { status: 304, headers: merged(notModifiedHeaders(entry.headers), { age }, cacheStatus) }
  }
  return {
    status: entry.status,
    headers: merged(entry.headers, { age }, cacheStatus),
    body: req.method === 'HEAD' ? undefined : entry.body,
  }
}

/**
 * A single range of `entry`'s body as a 206 (RFC 9110 §15.3.7), or a 416 when the range lies
 * outside it (RFC 9110 §15.5.17); the full response, or a 304, when the Range does not apply.
 */
export function rangeResponse(
  req: Pick<IncomingMessage, 'method' | 'headers'>,
  entry: CacheEntry,
  now: number,
  status: StatusHeaders,
  params: string,
  detail?: string,
): Replacement {
  const full = entry.body.length
  // RFC 9110 §13.2.2: If-None-Match and If-Modified-Since come before Range (a 304 wins).
  const range =
    !answersNotModified(req.headers, entry.status, entry.headers) &&
    entry.status === 200 &&
    ifRangeMatches(req.headers, entry.headers)
      ? parseRange(req.headers.range, full)
      : undefined
  if (range === undefined) return entryResponse(req, entry, now, status, params, detail)
  const cacheStatus = status(hitParams(entry, now, params, detail), 'HIT')
  if (range === 'unsatisfiable')
    return {
      status: 416,
      headers: { 'content-range': `bytes */${full}`, 'content-length': '0', ...cacheStatus },
    }
  const age = String(ageOf(entry, now))
  const headers = merged(
    entry.headers,
    {
      'content-range': `bytes ${range.start}-${range.end}/${full}`,
      'content-length': String(range.end - range.start + 1),
      age,
    },
    cacheStatus,
  )
  return {
    status: 206,
    headers,
    body: req.method === 'HEAD' ? undefined : entry.body.subarray(range.start, range.end + 1),
  }
}
