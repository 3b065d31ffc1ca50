/**
 * Range requests answered from a stored full response (RFC 9110 §14): one byte range, as a 206;
 * a range outside the body, as a 416. Several ranges (multipart), or a Range that does not parse,
 * are not answered here.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { parseHttpDate } from './http-date.js'

/** The byte range a request selects from a body of `size` bytes, inclusive. */
export type ByteRange = { start: number; end: number } | 'unsatisfiable'

/**
 * Parses a single-range `bytes=` Range header (RFC 9110 §14.1.2): `a-b`, `a-`, `-n`. Undefined
 * for anything else (several ranges, another unit, garbage): such requests are not answered
 * from the cache.
 */
export function parseRange(value: string | undefined, size: number): ByteRange | undefined {
  const match = value === undefined ? null : /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(value)
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  const [, first = '', last = ''] = match
  if (first === '') {
    // A suffix: the last n bytes (RFC 9110 §14.1.2); zero of them is unsatisfiable.
    const length = Math.min(Number(last), size)
    return length === 0 ? 'unsatisfiable' : { start: size - length, end: size - 1 }
  }
  const start = Number(first)
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
  if (last !== '' && Number(last) < start) return undefined // invalid: ignore the header
  return start >= size ? 'unsatisfiable' : { start, end }
}

/**
 * RFC 9110 §13.1.5: a Range with If-Range applies only when the validator still matches the
 * stored response: a strong ETag compared strongly, or exactly its Last-Modified date.
 */
export function ifRangeMatches(
  headers: IncomingHttpHeaders,
  stored: Readonly<Record<string, string | string[]>>,
): boolean {
  const ifRange = headers['if-range']
  if (ifRange === undefined) return true
  const value = String(ifRange).trim()
  if (value.startsWith('"')) return value === stored.etag
  if (value.startsWith('W/')) return false
  const date = parseHttpDate(value)
  return date !== undefined && date === parseHttpDate(stored['last-modified'])
}

/**
 * Whether a Range header asks for several byte ranges (RFC 9110 §14.1.2, `bytes=0-1,4-5`): a
 * multipart answer the cache does not build, so the request goes to the origin even when a fresh
 * entry is stored. (A Range that does not parse is ignored instead, RFC 9110 §14.2: the full
 * stored response answers it.)
 */
export function isMultiRange(value: string | undefined): boolean {
  const match = value === undefined ? null : /^\s*bytes\s*=(.*)$/is.exec(value)
  if (!match) return false
  const ranges = match[1]!
    .split(',')
    .map((range) => range.trim())
    .filter((range) => range !== '')
  if (ranges.length < 2 || ranges.length > MAX_FORWARDED_RANGES) return false
  return ranges.every((range) => /^(\d+\s*-\s*\d*|-\s*\d+)$/.test(range))
}

/**
 * More ranges than this are ignored (RFC 9110 §14.2 allows it; §17.15 warns of their cost): the
 * full stored response answers them, and they never reach the origin (CVE-2011-3192).
 */
const MAX_FORWARDED_RANGES = 16
