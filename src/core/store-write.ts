/**
 * What a generation asks of the store, and what it reads off the response to store it: the
 * checkpoint taken before the handler runs (no stale resurrection), the write itself (counted,
 * waited on by close(), failures reported and never thrown), the response's TTL and tags.
 */
import type { IncomingMessage } from 'node:http'
import type { CacheEntry, CacheStore, Checkpoint } from '../store.js'
import type { AcceleratedResponse, Stats } from '../types.js'
import type { ResolvedOptions } from './options.js'
import type { ErrorHandler } from './report.js'
import type { SurrogateInstructions } from '../http/surrogate.js'
import type { Flights } from './flights.js'
import type { StatusHeaders } from './respond.js'
import { describe } from '../lib/describe.js'
import { ownTags, validTags } from './invalidation.js'

/** The counters of {@link Stats}, all kept by the accelerator. */
export type Counts = Required<Omit<Stats, 'entries' | 'bytes'>>

/** Every counter at zero. */
export function noCounts(): Counts {
  return {
    hits: 0,
    misses: 0,
    staleHits: 0,
    notModified: 0,
    stores: 0,
    bytesStored: 0,
    bypasses: 0,
    errors: 0,
    coalesced: 0,
    revalidations: 0,
    refreshes: 0,
  }
}

/** What generations need of the accelerator around them. */
export interface Core {
  opts: ResolvedOptions
  store: CacheStore
  counts: Counts
  report: ErrorHandler
  statusHeaders: StatusHeaders
  /** The cache's status header (options.statusHeader) in lower case, as the handler's headers key it. */
  statusName: string | undefined
  /** Store writes in progress, for close() to wait on. */
  writes: Set<Promise<boolean>>
  flights: Flights
}

/** Stores an entry; resolves whether it was stored (failures are reported, never thrown). */
export async function put(
  { store, writes, counts, report }: Core,
  key: string,
  entry: CacheEntry,
  since: Checkpoint,
  isResponse = true,
): Promise<boolean> {
  const write = store.set(key, entry, since)
  const forget = () => writes.delete(write)
  writes.add(write)
  write.then(forget, forget)
  try {
    if (!(await write)) return false
    if (isResponse) {
      counts.stores++
      counts.bytesStored += entry.body.length
    }
    return true
  } catch (err) {
    report(err as Error, { op: 'set', key })
    return false
  }
}

/** The cache's TTL for a response: Surrogate-Control's (no-store: 0), else res.cacheFor. */
export function cacheForOf(
  core: Core,
  res: AcceleratedResponse,
  surrogate: SurrogateInstructions | undefined,
  key: string,
): number | undefined {
  if (surrogate?.noStore) return 0
  return surrogate?.ttl ?? optedInSeconds(core, res, key)
}

function optedInSeconds(
  { report }: Core,
  res: AcceleratedResponse,
  key: string,
): number | undefined {
  const value: unknown = res.cacheFor ?? res.locals.cacheFor
  if (value === undefined || (typeof value === 'number' && value >= 0)) return value
  const what =
    typeof value === 'number' && !Number.isNaN(value)
      ? 'a number of seconds of at least 0'
      : 'a number of seconds'
  const todo =
    'the response is not stored; set 0 (or nothing) not to store it, a positive number to store it'
  report(new TypeError(`expected res.cacheFor to be ${what}, got ${describe(value)}: ${todo}`), {
    op: 'cacheFor',
    key,
  })
  return 0
}

/** The response's tags (`fallback` when it set none), or undefined when they are not strings. */
export function tagsOf(
  { report }: Core,
  res: AcceleratedResponse,
  key: string,
  fallback: readonly string[] = [],
): readonly string[] | undefined {
  const value: unknown = res.tags ?? res.locals.tags ?? fallback
  const tags = validTags(value)
  if (tags !== undefined) return tags
  // Storing with a tag missing would make that tag's invalidation miss this entry.
  const message = `expected res.tags to be an array of well-formed strings, got ${describe(value)}`
  report(new TypeError(message), { op: 'tags', key })
  return undefined
}

/** The response's tags, and the origin's surrogate keys. */
export function withSurrogateTags(
  tags: readonly string[] | undefined,
  surrogate: Pick<SurrogateInstructions, 'tags'> | undefined,
): readonly string[] | undefined {
  if (tags === undefined || !surrogate || surrogate.tags.length === 0) return tags
  return [...new Set([...tags, ...surrogate.tags])]
}

/** The response's tags and the accelerator's own, so that invalidate(url) reaches the entry. */
export function variantTagged(
  { opts }: Core,
  req: IncomingMessage,
  base: string,
  key: string,
  tags: readonly string[] | undefined,
): readonly string[] | undefined {
  return tags && ownTags(opts, req, base, key, tags)
}
