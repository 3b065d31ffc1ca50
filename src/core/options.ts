/** `accelerate()` options: their types, defaults, and the TypeErrors that name a bad one. */
import { describe, rejectUnknown } from '../lib/describe.js'
import type { IncomingMessage } from 'node:http'
import type { CacheStore } from '../store.js'
import { defaultKey, NAMESPACE_SEPARATOR, type KeyFunction } from './key.js'
import { logOncePerBurst, type ErrorHandler } from './report.js'

/** Options of {@link accelerate}. Durations that mirror HTTP directives are in seconds. */
export interface AccelerateOptions {
  /** Where responses are stored. @default new MemoryStore() (closed by `close()`) */
  store?: CacheStore
  /** Keeps this accelerator's keys apart from others sharing the store; `''` is the whole store. @default '' */
  namespace?: string
  /**
   * Which requests share a response; `undefined` makes a request bypass the cache.
   * @default host + path + query, the same for GET and HEAD (bypassing invalid Hosts)
   */
  key?: KeyFunction
  /** Requests for which it returns true are passed straight to the handler, untouched. */
  unless?: (req: IncomingMessage) => boolean
  /** Seconds to store responses that say nothing of their freshness; 0 stores only opt-ins. @default 0 */
  defaultCacheFor?: number
  /** Let the handler's `Cache-Control` (`s-maxage`, `public, max-age`) and `Expires` opt in. @default true */
  honorCacheControl?: boolean
  /** Bodies larger than this many bytes stream to the client in full but are not stored. @default 8 MiB */
  maxEntryBytes?: number
  /** Statuses that may be stored. @default [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] */
  cacheableStatuses?: Iterable<number>
  /** Seconds a stale entry may be served while one regeneration runs. @default 0 */
  staleWhileRevalidate?: number
  /** Seconds a stale entry may be served when regeneration fails. @default 0 */
  staleIfError?: number
  /**
   * Honour the client's request directives: `no-cache` / `Pragma: no-cache` / `max-age` /
   * `min-fresh` force a revalidation, `max-stale` accepts a stale entry. @default sharedCache
   */
  honorClientNoCache?: boolean
  /**
   * Cache as an RFC 9111 shared cache (a reverse proxy): the origin's headers alone decide (no
   * opt-in), with heuristic freshness, `no-cache` stored and always revalidated, and unsafe
   * methods invalidating what they change. @default false
   */
  sharedCache?: boolean
  /**
   * Read `CDN-Cache-Control` (RFC 9213) as this cache's Cache-Control when it is a valid
   * Structured Field dictionary: it then rules over `Cache-Control` and `Expires` for storing,
   * freshness and stale serving, and is passed on to the client untouched.
   * `Accelerator-Cache-Control`, the field targeted at this cache alone, is read in any mode and
   * ranks first. @default sharedCache
   */
  cdnCacheControl?: boolean
  /**
   * Select variants on normalised request header values (RFC 9111 §4.1): `Accept-Encoding` by the
   * set of codings accepted, `Accept-Language` ignoring order, case and whitespace, any other
   * header ignoring whitespace around its list members. `false` keys variants on the values as
   * sent. @default true
   */
  normalizeVary?: boolean
  /** Take tags and the TTL from `Surrogate-Key`, `Cache-Tag` and `Surrogate-Control`, and strip them. @default false */
  surrogateKeys?: boolean
  /** With `surrogateKeys`, still send the surrogate headers to the client. @default false */
  keepSurrogateHeaders?: boolean
  /** Milliseconds a request waits for another's generation of the same key before running the handler itself; 0 never waits. @default 5000 */
  coalesceTimeoutMs?: number
  /** Background refreshes (stale-while-revalidate, soft invalidation) running at once; more wait in a bounded queue. @default 4 */
  backgroundConcurrency?: number
  /** The response header reporting what the cache did (RFC 9211), or false for none. @default 'Cache-Status' */
  statusHeader?: string | false
  /** Also send `X-Cache: HIT` / `MISS`. @default false */
  xCache?: boolean
  /** Receives failures the accelerator swallows to keep serving. @default logs the first of each burst */
  onError?: ErrorHandler
  /** The clock, epoch milliseconds. @default Date.now */
  now?: () => number
}

/** The options with every default applied and every value checked. */
export interface ResolvedOptions {
  store: CacheStore | undefined
  namespace: string
  key: KeyFunction
  unless: ((req: IncomingMessage) => boolean) | undefined
  defaultCacheFor: number
  honorCacheControl: boolean
  maxEntryBytes: number
  cacheableStatuses: ReadonlySet<number>
  staleWhileRevalidate: number
  staleIfError: number
  honorClientNoCache: boolean
  sharedCache: boolean
  cdnCacheControl: boolean
  normalizeVary: boolean
  surrogateKeys: boolean
  keepSurrogateHeaders: boolean
  coalesceTimeoutMs: number
  backgroundConcurrency: number
  statusHeader: string | false
  xCache: boolean
  onError: ErrorHandler
  now: () => number
}

export const DEFAULT_CACHEABLE_STATUSES = [
  200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501,
] as const
const STORE_METHODS = [
  'get',
  'checkpoint',
  'set',
  'delete',
  'invalidateTags',
  'clear',
  'close',
] as const

/** Applies the defaults, and throws a TypeError naming the first option that is wrong. */
/** What a name often tried instead of an option means here (keys folded: lower case, no - or _). */
const OPTION_SYNONYMS: Readonly<Record<string, string>> = {
  ttl: 'res.cacheFor = seconds in the handler, or defaultCacheFor for every response',
  maxage: 'res.cacheFor = seconds in the handler, or defaultCacheFor for every response',
  maxbytes: "store: new MemoryStore({ maxBytes }) (the size is the store's)",
  max: "store: new MemoryStore({ maxBytes }) (the size is the store's)",
  redis: 'store: new RedisStore({ url }) from node-accelerator/redis',
}

export function resolveOptions(options: AccelerateOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object')
    throw new TypeError(`expected options to be an object, got ${describe(options)}`)
  const { store, namespace = '', key = defaultKey, unless, statusHeader = 'Cache-Status' } = options
  const now = fn(options, 'now') ?? Date.now
  if (store !== undefined) {
    for (const method of STORE_METHODS) {
      if (typeof (store as unknown as Record<string, unknown>)?.[method] !== 'function') {
        throw new TypeError(
          `expected options.store to have ${method}(), got ${describe((store as unknown as Record<string, unknown>)?.[method])}`,
        )
      }
    }
  }
  if (typeof namespace !== 'string' || namespace.includes(NAMESPACE_SEPARATOR)) {
    throw new TypeError(
      `expected options.namespace to be a string without NUL characters, got ${describe(namespace)}`,
    )
  }
  if (
    statusHeader !== false &&
    (typeof statusHeader !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(statusHeader))
  ) {
    throw new TypeError(
      `expected options.statusHeader to be a header name or false, got ${describe(statusHeader)}`,
    )
  }
  const resolved: ResolvedOptions = {
    store,
    namespace,
    key: fn(options, 'key') ?? key,
    unless: fn(options, 'unless') ?? unless,
    defaultCacheFor: seconds(options, 'defaultCacheFor', 0),
    honorCacheControl: bool(options, 'honorCacheControl', true),
    maxEntryBytes: positiveInteger(options, 'maxEntryBytes', 8 * 1024 * 1024),
    cacheableStatuses: statuses(options.cacheableStatuses),
    staleWhileRevalidate: seconds(options, 'staleWhileRevalidate', 0),
    staleIfError: seconds(options, 'staleIfError', 0),
    honorClientNoCache: bool(options, 'honorClientNoCache', bool(options, 'sharedCache', false)),
    sharedCache: bool(options, 'sharedCache', false),
    cdnCacheControl: bool(options, 'cdnCacheControl', bool(options, 'sharedCache', false)),
    normalizeVary: bool(options, 'normalizeVary', true),
    surrogateKeys: bool(options, 'surrogateKeys', false),
    keepSurrogateHeaders: bool(options, 'keepSurrogateHeaders', false),
    coalesceTimeoutMs: wholeNumber(options, 'coalesceTimeoutMs', 5000),
    backgroundConcurrency: positiveInteger(options, 'backgroundConcurrency', 4),
    statusHeader,
    xCache: bool(options, 'xCache', false),
    onError: fn(options, 'onError') ?? logOncePerBurst(now),
    now,
  }
  // A misspelt or invented option would otherwise change nothing and say nothing.
  rejectUnknown(options, Object.keys(resolved), 'accelerate()', OPTION_SYNONYMS)
  return resolved
}

function fn<K extends 'key' | 'unless' | 'onError' | 'now'>(
  options: AccelerateOptions,
  name: K,
): AccelerateOptions[K] {
  const value = options[name]
  if (value !== undefined && typeof value !== 'function')
    throw new TypeError(`expected options.${name} to be a function, got ${describe(value)}`)
  return value
}

type BooleanOption =
  | 'honorCacheControl'
  | 'honorClientNoCache'
  | 'xCache'
  | 'sharedCache'
  | 'cdnCacheControl'
  | 'normalizeVary'
  | 'surrogateKeys'
  | 'keepSurrogateHeaders'

function bool(options: AccelerateOptions, name: BooleanOption, fallback: boolean): boolean {
  const value = options[name] ?? fallback
  if (typeof value !== 'boolean')
    throw new TypeError(`expected options.${name} to be a boolean, got ${describe(value)}`)
  return value
}

function seconds(
  options: AccelerateOptions,
  name: 'defaultCacheFor' | 'staleWhileRevalidate' | 'staleIfError',
  fallback: number,
): number {
  const value = options[name] ?? fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(
      `expected options.${name} to be a number of seconds >= 0, got ${describe(value)}`,
    )
  }
  return value
}

function positiveInteger(
  options: AccelerateOptions,
  name: 'maxEntryBytes' | 'backgroundConcurrency',
  fallback: number,
): number {
  const value = options[name] ?? fallback
  if (!Number.isSafeInteger(value) || (value as number) <= 0)
    throw new TypeError(`expected options.${name} to be a positive integer, got ${describe(value)}`)
  return value as number
}

function wholeNumber(
  options: AccelerateOptions,
  name: 'coalesceTimeoutMs',
  fallback: number,
): number {
  const value = options[name] ?? fallback
  if (!Number.isSafeInteger(value) || (value as number) < 0)
    throw new TypeError(
      `expected options.${name} to be a whole number of milliseconds, got ${describe(value)}`,
    )
  return value as number
}

function statuses(value: Iterable<number> | undefined): ReadonlySet<number> {
  if (value === undefined) return new Set(DEFAULT_CACHEABLE_STATUSES)
  const list =
    typeof value === 'object' && value !== null && Symbol.iterator in value ? [...value] : undefined
  if (list === undefined || !list.every((s) => Number.isInteger(s) && s >= 100 && s <= 999)) {
    throw new TypeError(
      `expected options.cacheableStatuses to be an iterable of status codes, got ${describe(value)}`,
    )
  }
  return new Set(list)
}
