/**
 * Variants (RFC 9110 §12.5.5, RFC 9111 §4.1): a response with `Vary` is stored once per
 * combination of the request headers it names. The resource's base key holds a small record of
 * those names; each variant lives under a key derived from the base key and the values.
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { CacheEntry } from './store.js'

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

/** Variant keys longer than this are hashed, so a varying Cookie does not make a 16 KiB key. */
const MAX_VARIANT_LENGTH = 256

/**
 * The key of the variant that `headers` select among `names`: values as sent (Node joins repeated
 * lines), an absent header distinct from an empty one.
 */
export function variantKey(base: string, names: readonly string[], headers: IncomingHttpHeaders): string {
  const values = JSON.stringify(names.map((name) => headers[name] ?? null))
  const variant = values.length > MAX_VARIANT_LENGTH ? createHash('sha256').update(values).digest('base64url') : values
  return `${base}\u0000vary\u0000${variant}`
}

/**
 * The tag every variant of a resource carries, so that `invalidate(url)` drops them all (and a
 * generation in flight for any of them is refused). Tags starting with NUL are reserved.
 */
export function variantsTag(base: string): string {
  return `\u0000variants\u0000${base}`
}

/** The record stored at the base key: which headers select a variant, living as long as one. */
export function varyRecord(names: readonly string[], storedAt: number, expiresAt: number): CacheEntry {
  return { status: 0, headers: {}, body: Buffer.alloc(0), tags: [], storedAt, initialAge: 0, staleAt: expiresAt, expiresAt, variesOn: names }
}

/** Whether a stored vary record already says `names` for at least as long as `expiresAt`. */
export function coversVariant(record: CacheEntry | undefined, names: readonly string[], expiresAt: number): boolean {
  return record?.variesOn !== undefined && record.expiresAt >= expiresAt && record.variesOn.join('\n') === names.join('\n')
}
