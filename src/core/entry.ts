/** Turning a finished response into a stored entry. */
import type { IncomingHttpHeaders } from 'node:http'
import type { CacheEntry } from '../store.js'
import type { Freshness } from '../http/policy.js'
import type { HeaderRecord } from './tee.js'
import { strongEtag } from '../http/etag.js'
import { setOwn } from '../http/merged.js'
import { formatHttpDate } from '../http/http-date.js'
import { retention, staleWindows, type StaleOptions } from './stale.js'
import { selectedBy } from '../http/vary.js'

/**
 * Headers never stored: hop-by-hop ones (RFC 9110 §7.6.1, RFC 9111 §3.1), what is recomputed on
 * every hit (Age, Content-Length, the cache's status), and Set-Cookie, which belongs to one client.
 */
const NOT_STORED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'set-cookie',
  'age',
  'content-length',
  'cache-status',
  'x-cache',
])

/**
 * The headers a response shared with the requests that waited on it carries as it streams:
 * those that will be stored, with the response's Content-Length when known (the body may still be
 * coming).
 */
export function sharedHeaders(sent: HeaderRecord, length: number | undefined): HeaderRecord {
  const headers: HeaderRecord = {}
  for (const name in sent)
    if (!NOT_STORED.has(name) || name === 'content-length')
      setOwn(headers, name, sent[name] as string | string[])
  // A body given whole to end(): Node would say its length; so do we.
  if (length !== undefined) headers['content-length'] ??= String(length)
  return headers
}

/**
 * The entry for a response that finished in full, ready for `store.set`: fresh for `ttl`, then
 * kept for its stale windows and for revalidation (see {@link retention}). `request`: the headers
 * of the request it answered, as the handler got them (for a variant's `selectedBy`).
 */
export function toEntry(
  status: number,
  sent: HeaderRecord,
  body: Buffer,
  tags: readonly string[],
  { ttl, initialAge, keep }: Freshness,
  storedAt: number,
  staleOptions: StaleOptions,
  request?: IncomingHttpHeaders,
): CacheEntry {
  const headers = storedHeaders(status, sent, body, storedAt)
  const staleAt = storedAt + ttl * 1000
  const expiresAt = staleAt + retention(ttl, staleWindows(headers, staleOptions), keep) * 1000
  const entry: CacheEntry = {
    status,
    headers,
    body,
    tags,
    storedAt,
    initialAge,
    staleAt,
    expiresAt,
  }
  const selected = request && selectedBy(headers.vary, request)
  if (selected) entry.selectedBy = selected
  return entry
}

/**
 * The headers as they will be replayed: without what is never stored, and with the three every
 * entry carries: the original `Date` (the one Node generated when the handler set none), an
 * `ETag` (the handler's, or a strong one computed from the bytes), and the exact Content-Length.
 */
export function storedHeaders(
  status: number,
  sent: HeaderRecord,
  body: Buffer,
  storedAt: number,
): HeaderRecord {
  // RFC 9110 §7.6.1: a header named in Connection is hop-by-hop too.
  const connectionOptions = new Set(
    String(sent.connection ?? '')
      .toLowerCase()
      .split(',')
      .map((name) => name.trim()),
  )
  const headers: HeaderRecord = {}
  for (const name in sent)
    if (!NOT_STORED.has(name) && !connectionOptions.has(name))
      setOwn(headers, name, sent[name] as string | string[])
  headers.date ??= formatHttpDate(storedAt)
  headers.etag ??= strongEtag(body)
  // RFC 9110 §8.6: no Content-Length in a 204.
  if (status !== 204) headers['content-length'] = String(body.length)
  return headers
}
