/**
 * Where variants live (RFC 9111 §4.1): a response with `Vary` is stored under a variant key, and
 * the resource's base key holds a {@link VaryRecord} naming the headers that select one.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { CacheEntry, VaryRecord } from '../store.js'
import { variantKey } from '../http/vary.js'

/** Where a response that varies on `names` is stored for a request: its variant, or `base`. */
export function storeKeyFor(
  base: string,
  names: readonly string[],
  headers: IncomingHttpHeaders,
  normalize = true,
): string {
  return names.length > 0 ? variantKey(base, names, headers, normalize) : base
}

/**
 * The tag every variant of a resource carries, so that `invalidate(url)` drops them all (and a
 * generation in flight for any of them is refused). Tags starting with NUL are reserved.
 */
export function variantsTag(base: string): string {
  return `\u0000variants\u0000${base}`
}

/** The record stored at the base key: which headers select a variant, living as long as one. */
export function varyRecord(
  names: readonly string[],
  storedAt: number,
  expiresAt: number,
): VaryRecord {
  return {
    status: 0,
    headers: {},
    body: Buffer.alloc(0),
    tags: [],
    storedAt,
    initialAge: 0,
    staleAt: expiresAt,
    expiresAt,
    variesOn: names,
  }
}

/** Whether a stored vary record already says `names` for at least as long as `expiresAt`. */
export function coversVariant(
  record: CacheEntry | undefined,
  names: readonly string[],
  expiresAt: number,
): boolean {
  return (
    record?.variesOn !== undefined &&
    record.expiresAt >= expiresAt &&
    record.variesOn.join('\n') === names.join('\n')
  )
}
