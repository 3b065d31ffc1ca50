/**
 * Surrogate keys and controls: the headers an origin sends its reverse proxy (Fastly's
 * `Surrogate-Key`, Cloudflare's `Cache-Tag`, the Edge Architecture's `Surrogate-Control`), meant
 * for the proxy only.
 */
import { deltaSeconds, parseCacheControl } from './cache-control.js'

/** The headers a proxy strips before the client sees the response. */
export const SURROGATE_HEADERS = ['surrogate-key', 'cache-tag', 'surrogate-control'] as const

/** What the origin told its proxy. */
export interface SurrogateInstructions {
  /** Tags: Surrogate-Key (space-separated) and Cache-Tag (comma-separated), deduplicated. */
  tags: string[]
  /** Surrogate-Control's max-age, in seconds: the proxy's TTL, over Cache-Control. */
  ttl?: number
  /** Surrogate-Control: no-store. */
  noStore: boolean
}

/** Reads the surrogate headers of a response (lower-case names). */
export function surrogateInstructions(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): SurrogateInstructions {
  const tags = new Set<string>()
  // (Header values are latin1: always well-formed strings, fit for tags.)
  for (const tag of join(headers['surrogate-key'], ' ').split(/\s+/)) if (tag) tags.add(tag)
  for (const tag of join(headers['cache-tag'], ',').split(',')) if (tag.trim()) tags.add(tag.trim())
  const control = parseCacheControl(headers['surrogate-control'])
  const ttl = deltaSeconds(control.get('max-age'))
  return {
    tags: [...tags],
    ...(ttl === undefined ? {} : { ttl }),
    noStore: control.has('no-store'),
  }
}

function join(value: string | string[] | undefined, separator: string): string {
  return Array.isArray(value) ? value.join(separator) : (value ?? '')
}
