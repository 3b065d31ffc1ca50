/**
 * Variants (RFC 9110 §12.5.5, RFC 9111 §4.1): a response with `Vary` is stored once per
 * combination of the request headers it names. The resource's base key holds a small record of
 * those names; each variant lives under a key derived from the base key and the values.
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { setOwn } from './merged.js'

/** The request header names a `Vary` value lists: lower-cased, deduplicated, sorted; `['*']` for `*`. */
export function varyNames(vary: string | string[] | undefined): string[] {
  if (vary === undefined) return []
  const names = new Set<string>()
  for (const part of (Array.isArray(vary) ? vary.join(',') : vary).split(',')) {
    const name = part.trim().toLowerCase()
    if (name === '*') return ['*']
    if (name !== '') names.add(name)
  }
  return [...names].sort()
}

/**
 * The values of the request headers a response's `Vary` names, as `request` sent them (RFC 9111
 * §4.1): what selects the stored response (see CacheEntry.selectedBy). Undefined without Vary.
 */
export function selectedBy(
  vary: string | string[] | undefined,
  request: IncomingHttpHeaders,
): Record<string, string> | undefined {
  const names = varyNames(vary)
  if (names.length === 0) return undefined
  const values: Record<string, string> = {}
  for (const name of names) {
    const value = Object.hasOwn(request, name) ? request[name] : undefined
    if (value !== undefined) setOwn(values, name, Array.isArray(value) ? value.join(', ') : value)
  }
  return values
}

/** Variant keys longer than this are hashed, so a varying Cookie does not make a 16 KiB key. */
const MAX_VARIANT_LENGTH = 256

/**
 * The key of the variant that `headers` select among `names`: values as sent (Node joins repeated
 * lines), an absent header distinct from an empty one. With `normalize` (the default), values
 * that mean the same select the same variant (see {@link normalizeSelecting}).
 */
export function variantKey(
  base: string,
  names: readonly string[],
  headers: IncomingHttpHeaders,
  normalize = true,
): string {
  const values = JSON.stringify(names.map((name) => selecting(name, headers, normalize)))
  const variant =
    values.length > MAX_VARIANT_LENGTH
      ? createHash('sha256').update(values).digest('base64url')
      : values
  return `${base}\u0000vary\u0000${variant}`
}

function selecting(
  name: string,
  headers: IncomingHttpHeaders,
  normalize: boolean,
): string | string[] | null {
  // Own properties only: a Vary naming `__proto__` or `constructor` must not read Object's.
  const value = Object.hasOwn(headers, name) ? headers[name] : undefined
  if (value === undefined) return null
  return normalize
    ? normalizeSelecting(name, Array.isArray(value) ? value.join(', ') : value)
    : value
}

/**
 * A selecting header's value in a form that two requests meaning the same share (RFC 9111 §4.1
 * lets a cache normalise them), so that Chrome, Firefox and curl share variants:
 * - `Accept-Encoding`: the content codings accepted (q > 0), lower-cased, sorted and deduplicated
 *   (`gzip, deflate, br, zstd` = `deflate, gzip, br, zstd`). The set is kept whole, not bucketed:
 *   every client of a variant accepts whatever coding the origin chose for it.
 * - `Accept-Language`: its members lower-cased, without whitespace, sorted (order, case and
 *   spaces ignored; q-values kept with their language).
 * - any other: whitespace around its comma-separated members removed (`1,2` = ` 1, 2 `).
 */
export function normalizeSelecting(name: string, value: string): string {
  const members = value
    .split(',')
    .map((member) => member.trim())
    .filter((member) => member !== '')
  if (name === 'accept-encoding') {
    const accepted = new Set<string>()
    for (const member of members) {
      // (split() always gives a first part: the coding.)
      const [coding, ...params] = member
        .toLowerCase()
        .split(';')
        .map((part) => part.trim())
      const q = params.find((param) => /^q\s*=/.test(param))
      if (q === undefined || Number(q.slice(q.indexOf('=') + 1).trim()) > 0) accepted.add(coding!)
    }
    return [...accepted].sort().join(',')
  }
  if (name !== 'accept-language') return members.join(',')
  return members
    .map((member) => member.toLowerCase().replace(/\s+/g, ''))
    .sort()
    .join(',')
}
