/**
 * Stale windows (RFC 5861, RFC 9111 §4.2.4): how long after going stale an entry may still be
 * served, while it is regenerated in the background or when its regeneration fails.
 */
import { deltaSeconds } from '../http/cache-control.js'
import { responseDirectives } from '../http/targeted.js'
import type { CacheEntry } from '../store.js'

/** The window options, in seconds. */
export interface StaleOptions {
  staleWhileRevalidate: number
  staleIfError: number
  /** Read `CDN-Cache-Control` (RFC 9213) over Cache-Control. @default false */
  cdnCacheControl?: boolean
  /** A shared cache, for which s-maxage also means proxy-revalidate (RFC 9111 §5.2.2.10). */
  sharedCache?: boolean
}

/** The windows of a response, in seconds after it goes stale. */
export interface StaleWindows {
  whileRevalidate: number
  ifError: number
}

/** Longest an entry is kept past its windows for conditional revalidation, in seconds. */
const MAX_KEEP = 24 * 60 * 60

/**
 * A response's own `stale-while-revalidate` / `stale-if-error` win over the options. RFC 9111
 * §5.2.2.2, §5.2.2.8: `must-revalidate` and `proxy-revalidate` forbid serving it stale, so the
 * options do not apply to it (its own explicit directives still do: they are more specific).
 */
export function staleWindows(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  options: StaleOptions,
): StaleWindows {
  // RFC 9213 §2.1: a targeted field (Accelerator-Cache-Control, CDN-Cache-Control) rules.
  const { cc } = responseDirectives(headers, options)
  // no-cache (RFC 9111 §5.2.2.4) forbids any reuse without revalidation, stale or not.
  // RFC 9111 §5.2.2.10: in a shared cache, s-maxage carries proxy-revalidate's semantics.
  const strict =
    cc.has('must-revalidate') ||
    cc.has('proxy-revalidate') ||
    cc.has('no-cache') ||
    (options.sharedCache === true && cc.has('s-maxage'))
  return {
    whileRevalidate:
      deltaSeconds(cc.get('stale-while-revalidate')) ?? (strict ? 0 : options.staleWhileRevalidate),
    ifError: deltaSeconds(cc.get('stale-if-error')) ?? (strict ? 0 : options.staleIfError),
  }
}

/**
 * Seconds a stored entry is kept after it goes stale: its windows, and at least as long as it
 * was fresh or `keep` (up to a day), so that it can be revalidated with a conditional request
 * instead of regenerated from nothing.
 */
export function retention(ttl: number, windows: StaleWindows, keep = 0): number {
  return Math.max(windows.whileRevalidate, windows.ifError, Math.min(Math.max(ttl, keep), MAX_KEEP))
}

/** What a stored entry is good for at `now`. */
export type EntryState = 'fresh' | 'stale-while-revalidate' | 'stale'

export function entryState(
  entry: CacheEntry,
  now: number,
  options: StaleOptions,
): { state: EntryState; ifErrorUntil: number } {
  if (now < entry.staleAt) return { state: 'fresh', ifErrorUntil: 0 }
  const windows = staleWindows(entry.headers, options)
  const ifErrorUntil = entry.staleAt + windows.ifError * 1000
  // A soft invalidation keeps the entry servable while one regeneration runs, until it expires.
  const whileRevalidating =
    entry.softInvalidated === true || now < entry.staleAt + windows.whileRevalidate * 1000
  return { state: whileRevalidating ? 'stale-while-revalidate' : 'stale', ifErrorUntil }
}
