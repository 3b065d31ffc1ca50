/** Revalidation (RFC 9111 §4.3): asking the handler whether a stored response is still current. */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { CacheEntry } from '../store.js'
import type { HeaderRecord } from './tee.js'
import { BODY_HEADERS } from '../http/conditional.js'
import { setRawHeaders } from './raw-headers.js'
import { strongEtag } from '../http/etag.js'
import { varyNames } from '../http/vary.js'
import { setOwn } from '../http/merged.js'

/**
 * Replaces the request's own validators with the stored entry's (RFC 9111 §4.3.1), so that a
 * handler that compares them (or sets an ETag and returns a lazy body) can answer 304 instead of
 * regenerating the body; with no entry, removes them (the cache wants the body to store). A
 * variant's selecting headers become those it was stored for (its `selectedBy`), so that the
 * validators are asked about with them. Both views of the request change: `headers`, and
 * `rawHeaders`, which a proxying handler forwards. Returns the request's headers as the client
 * sent them.
 */
export function sendValidators(
  req: Pick<IncomingMessage, 'headers' | 'rawHeaders'>,
  entry: CacheEntry | undefined,
): IncomingHttpHeaders {
  const { headers } = req
  const asSent = { ...headers }
  if (!entry)
    Object.defineProperty(req, CLIENT_VALIDATION, {
      value: { headers: asSent, wanted: () => false },
      configurable: true,
    })
  delete headers['if-none-match']
  delete headers['if-modified-since']
  // RFC 9111 §4.3.1: a request synthesised from a stored response copies the request headers its
  // Vary names; one being satisfied may differ in them only as the variant key normalises them.
  const selected = entry?.selectedBy
  const names = selected ? varyNames(entry!.headers.vary) : []
  const replaced = (name: string) =>
    /^if-(none-match|modified-since)$/i.test(name) || names.includes(name.toLowerCase())
  const raw = req.rawHeaders.filter((_, i, all) => !replaced(all[i - (i % 2)]!))
  for (const name of names) {
    const value = Object.hasOwn(selected!, name) ? selected![name]! : undefined
    if (value === undefined) {
      delete headers[name]
    } else {
      raw.push(name, value)
      setOwn(headers as Record<string, string>, name, value)
    }
  }
  if (names.length > 0) Object.defineProperty(req, SELECTED, { value: names, configurable: true })
  const { etag, 'last-modified': lastModified } = entry?.headers ?? {}
  // RFC 9110 §13.1.3: with If-None-Match, If-Modified-Since is ignored; an ETag the cache computed
  // from the body (the handler sent none) would keep a Last-Modified origin from answering 304.
  const computed = typeof lastModified === 'string' && etag === strongEtag(entry!.body)
  if (typeof etag === 'string' && !computed)
    raw.push('If-None-Match', (headers['if-none-match'] = etag))
  if (typeof lastModified === 'string')
    raw.push('If-Modified-Since', (headers['if-modified-since'] = lastModified))
  setRawHeaders(req, raw)
  return asSent
}

/** Set on a request whose selecting headers sendValidators set: their names. */
const SELECTED = Symbol('node-accelerator.selected')

/**
 * The request headers the cache set to a stored variant's values (see sendValidators): a
 * forwarder that builds its header lines before the cache looked sends these from `headers`.
 */
export function selectingSet(req: object): readonly string[] {
  return (req as { [SELECTED]?: readonly string[] })[SELECTED] ?? []
}

/** Set on a request whose validators the cache took away: the client's own, and whether others need the body. */
const CLIENT_VALIDATION = Symbol('node-accelerator.clientValidation')

interface ClientValidation {
  headers: IncomingHttpHeaders
  wanted: () => boolean
}

/** Tells lazy-body helpers whether anyone besides the client needs the body (coalescing). */
export function bodyWanted(req: object, wanted: () => boolean): void {
  const validation = (req as { [CLIENT_VALIDATION]?: ClientValidation })[CLIENT_VALIDATION]
  if (validation) validation.wanted = wanted
}

/**
 * The request headers a lazy body compares its validators with (withEtag): on a miss the cache
 * runs the handler without the client's validators, so that what it generates can be stored; a
 * handler that can answer 304 without generating anything still may, for the client alone,
 * when nobody else waits for the body.
 */
export function conditionalHeaders(req: Pick<IncomingMessage, 'headers'>): IncomingHttpHeaders {
  const validation = (req as { [CLIENT_VALIDATION]?: ClientValidation })[CLIENT_VALIDATION]
  return validation && !validation.wanted() ? validation.headers : req.headers
}

/**
 * The stored headers updated with those of a 304 (RFC 9111 §4.3.4, §3.2): each header the 304
 * carries replaces the stored one, except those describing the body it did not send.
 */
export function refreshedHeaders(stored: HeaderRecord, fromHandler: HeaderRecord): HeaderRecord {
  const headers = { ...stored }
  for (const name in fromHandler)
    if (!BODY_HEADERS.has(name)) headers[name] = fromHandler[name] as string | string[]
  return headers
}

/**
 * RFC 9111 §4.3.5: whether the response to a HEAD the cache sent on updates the stored GET
 * response: a 304 (§4.3.4), or a 200 whose validators (ETag, Last-Modified) and Content-Length,
 * each where it sent one, are the stored response's. A 200 that differs says the stored response
 * changed (the caller treats it as stale); any other status says nothing about it. A handler that
 * gave its body whole but no ETag or length is compared by those of that body.
 */
export function headUpdates(
  stored: HeaderRecord,
  { status, headers }: { status: number; headers: HeaderRecord },
  whole: Buffer | undefined,
): boolean | undefined {
  if (status === 304) return true
  if (status !== 200) return undefined
  const etag = headers.etag ?? (whole && strongEtag(whole))
  const length = headers['content-length'] ?? (whole && String(whole.length))
  const same = (value: string | string[] | undefined, was: string | string[] | undefined) =>
    value === undefined || String(value).trim() === String(was).trim()
  return (
    same(etag, stored.etag) &&
    same(headers['last-modified'], stored['last-modified']) &&
    same(length, stored['content-length'])
  )
}
