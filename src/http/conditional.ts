/**
 * Conditional GET/HEAD evaluation (RFC 9110 §13) and the headers of a 304 response.
 *
 * Pure functions, shaped like jshttp/fresh: header objects in, a boolean out. Linear in the size
 * of the headers, never throws on any header value.
 */

import type { IncomingHttpHeaders } from 'node:http'
import { parseHttpDate } from './http-date.js'
import { isConditional } from './request.js'

type HeaderValue = string | string[] | number | undefined

/** Whether the char code is OWS (RFC 9110 §5.6.3: SP or HTAB). */
function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09
}

/** RFC 9110 §8.8.3 etagc: `%x21 / %x23-7E / obs-text`; no SP, DQUOTE or controls, no escapes. */
function isEtagc(code: number): boolean {
  return code === 0x21 || (code >= 0x23 && code <= 0x7e) || (code >= 0x80 && code <= 0xff)
}

/**
 * Where the opaque-tag of an entity-tag (`"x"` or `W/"x"`) starting at `i` begins (its opening
 * DQUOTE), or -1 when none starts there.
 */
function opaqueStart(s: string, i: number): number {
  // RFC 9110 §8.8.3: weak = %s"W/" (case-sensitive).
  if (s.charCodeAt(i) === 0x57 /* W */ && s.charCodeAt(i + 1) === 0x2f /* / */) i += 2
  return s.charCodeAt(i) === 0x22 /* " */ ? i : -1
}

/** Index of the DQUOTE closing the opaque-tag opened at `open`, or -1 when it is malformed. */
function opaqueEnd(s: string, open: number): number {
  for (let i = open + 1; i < s.length; i++) {
    const code = s.charCodeAt(i)
    if (code === 0x22 /* " */) return i
    if (!isEtagc(code)) return -1
  }
  return -1
}

/**
 * The opaque-tag (quotes included, `W/` dropped) of a response's ETag, or `undefined` when it is
 * absent or not exactly one entity-tag. A repeated (array) ETag is read by its first value.
 */
function responseOpaqueTag(value: HeaderValue): string | undefined {
  const raw = Array.isArray(value) ? value[0] : value
  if (typeof raw !== 'string') return undefined
  let start = 0
  let end = raw.length
  while (start < end && isOws(raw.charCodeAt(start))) start++
  while (end > start && isOws(raw.charCodeAt(end - 1))) end--
  const open = opaqueStart(raw, start)
  if (open === -1 || opaqueEnd(raw, open) !== end - 1) return undefined
  return raw.slice(open, end)
}

/**
 * Evaluates If-None-Match (RFC 9110 §13.1.2) against a response's opaque-tag with the weak
 * comparison (RFC 9110 §8.8.3.2): `true` on a match, `false` when no member matches, `undefined`
 * when no member is well-formed (the header is then treated as absent).
 *
 * One pass. A malformed member is skipped by resuming after the first comma that follows its
 * start, so `"unbalanced, "a"` still yields `"a"` while commas inside a well-formed opaque-tag
 * (`"a,b"`, allowed by etagc) do not split. Each character is examined a bounded number of times.
 */
function matchIfNoneMatch(s: string, tag: string | undefined): boolean | undefined {
  const len = s.length
  let wellFormed = false
  let i = 0
  while (i < len) {
    const code = s.charCodeAt(i)
    // Empty list elements and OWS between members (RFC 9110 §5.6.1).
    if (code === 0x2c /* , */ || isOws(code)) {
      i++
      continue
    }
    const start = i
    let open = -1
    let end = -1
    if (code === 0x2a /* * */) {
      end = i + 1
    } else {
      open = opaqueStart(s, i)
      const close = open === -1 ? -1 : opaqueEnd(s, open)
      if (close !== -1) end = close + 1
    }
    if (end !== -1) {
      let next = end
      while (next < len && isOws(s.charCodeAt(next))) next++
      if (next === len || s.charCodeAt(next) === 0x2c /* , */) {
        wellFormed = true
        // A `*` member anywhere in the list matches any current representation (RFC 9110
        // §13.1.2 defines `*` alone; a list mixing it with tags is read as `*`).
        if (open === -1) return true
        // RFC 9110 §8.8.3.2 weak comparison: opaque-tags equal, W/ ignored on both sides.
        if (tag !== undefined && end - open === tag.length && s.startsWith(tag, open)) return true
        i = next + 1
        continue
      }
    }
    // Malformed member: ignore it, resuming after the first comma following its start.
    const comma = s.indexOf(',', start + 1)
    if (comma === -1) break
    i = comma + 1
  }
  return wellFormed ? false : undefined
}

/** Joins a list header as Node would (RFC 9110 §5.3): arrays with ', ', numbers as decimal. */
function listHeader(value: string | string[] | number): string {
  return Array.isArray(value) ? value.join(', ') : String(value)
}

/**
 * RFC 9110 §13.2.1: whether `reqHeaders` carry validators that say the client's copy of a
 * response with `status` and `resHeaders` is current, so it is answered 304. Only a 2xx is.
 */
export function answersNotModified(
  reqHeaders: IncomingHttpHeaders,
  status: number,
  resHeaders: Parameters<typeof isNotModified>[1],
): boolean {
  return (
    status >= 200 &&
    status < 300 &&
    isConditional(reqHeaders) &&
    isNotModified(reqHeaders, resHeaders)
  )
}

/**
 * Whether the client's cached copy is current, so a GET/HEAD with a 2xx response may be answered
 * `304 Not Modified` (RFC 9110 §13.1.2, §13.1.3, precedence of §13.2.2); the caller checks the
 * method and status. A well-formed If-None-Match decides alone (weak comparison with the
 * response's `etag`; a `*` member anywhere matches); otherwise If-Modified-Since is compared with
 * the response's `last-modified` (second resolution); invalid dates never match.
 */
export function isNotModified(
  reqHeaders: IncomingHttpHeaders,
  resHeaders: Readonly<Record<string, string | string[] | number | undefined>>,
): boolean {
  const ifNoneMatch: HeaderValue = reqHeaders['if-none-match']
  if (ifNoneMatch !== undefined) {
    const match = matchIfNoneMatch(listHeader(ifNoneMatch), responseOpaqueTag(resHeaders.etag))
    // RFC 9110 §13.1.3: when If-None-Match is present, If-Modified-Since is ignored. A header
    // with no well-formed member is treated as absent (malformed input is ignored).
    if (match !== undefined) return match
  }
  // RFC 9110 §13.1.3: an If-Modified-Since that is not a valid HTTP-date is ignored.
  const ifModifiedSince = parseHttpDate(reqHeaders['if-modified-since'])
  if (ifModifiedSince === undefined) return false
  const lastModified = parseHttpDate(resHeaders['last-modified'])
  // RFC 9110 §13.1.3: not modified when the selected representation's last modification date is
  // earlier than or equal to the date provided.
  return lastModified !== undefined && lastModified <= ifModifiedSince
}

/** Content headers describing a body a 304 does not send (RFC 9110 §15.4.5). */
export const BODY_HEADERS: ReadonlySet<string> = new Set([
  'content-length',
  'content-type',
  'content-encoding',
  'content-language',
  'content-range',
  'content-md5',
  'transfer-encoding',
  'trailer',
])

/**
 * A copy of a response's headers (lower-case names) fit for `304 Not Modified` (RFC 9110
 * §15.4.5): all of them (ETag, Cache-Control, Expires, Vary, Date, Content-Location,
 * Last-Modified, CORS, Link, ...) except the content headers describing the unsent body
 * (`content-length`, `content-type`, `content-encoding`, `content-language`, `content-range`,
 * `content-md5`, `transfer-encoding`, `trailer`). The input is not modified.
 */
export function notModifiedHeaders<T extends Record<string, unknown>>(headers: T): T {
  // Object.fromEntries defines own properties, so even a `__proto__` header is copied as data.
  const kept = Object.entries(headers).filter(([name]) => !BODY_HEADERS.has(name))
  return Object.fromEntries(kept) as T
}

/**
 * An If-None-Match value with each bare entity-tag quoted (`abcdef` → `"abcdef"`), as RFC 9110
 * §8.8.3 spells entity-tags: an origin that sent its ETag unquoted gets a well-formed validator
 * back. `*`, quoted and weak tags, and members that are not etagc are kept as they are.
 */
export function quoteEntityTags(value: string): string {
  return value
    .split(',')
    .map((member) => {
      const tag = member.trim()
      if (tag === '' || tag === '*' || tag.startsWith('"') || tag.startsWith('W/"')) return tag
      for (let i = 0; i < tag.length; i++) if (!isEtagc(tag.charCodeAt(i))) return tag
      return `"${tag}"`
    })
    .filter((tag) => tag !== '')
    .join(', ')
}
