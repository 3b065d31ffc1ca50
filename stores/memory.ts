import { createRequire } from 'node:module'
import { channel } from 'node:diagnostics_channel'
import { inspect } from 'node:util'
import cluster from 'node:cluster'
import type { LRUMapWithDelete as LRUMapWithDeleteClass } from 'mnemonist'
// mnemonist's `./*.js` export has only a `require` condition, so an ESM import of this one module
// throws ERR_PACKAGE_PATH_NOT_EXPORTED; its root index loads all of mnemonist (24 ms against 7 ms
// here, measured on Node 20). So: require just the LRU.
const LRUMapWithDelete = createRequire(import.meta.url)(
  'mnemonist/lru-map-with-delete.js',
) as typeof LRUMapWithDeleteClass
import type {
  CacheEntry,
  CacheStore,
  Checkpoint,
  InvalidateOptions,
  StoreSize,
} from '../src/store.js'

/**
 * Bytes counted per entry on top of its strings and body: the objects holding it (the entry, its
 * headers object, tags array and Buffer, the LRU's slot, this store's record of it) and the two
 * header arrays the hit path prepares for it. Measured on Node 20 (test/stores/memory.ts).
 */
export const ENTRY_OVERHEAD = 800
/** Bytes counted per string on top of its characters: V8's string header, rounded up. */
export const STRING_OVERHEAD = 16
/** Bytes counted per header on top of its strings: its slot in the headers object and hit arrays. */
export const HEADER_OVERHEAD = 40
/**
 * Bytes counted per tag on top of its string: its slot in the entry's tags and in the tag index
 * (a Map entry, or a Set member when entries share the tag, with the room those tables keep free).
 */
export const TAG_OVERHEAD = 96
/** `{ store, key, bytes }` for each entry dropped to make room (src/diagnostics.ts: EvictMessage). */
const evictions = channel('node-accelerator:evict')
/** Bytes counted per recorded invalidation (a key's or a tag's) on top of its string: a Map entry. */
const RECORD_OVERHEAD = 40
/** The most bytes recorded invalidations may count, as a fraction of maxBytes, before pruning. */
const RECORDS_SHARE = 1 / 8
/**
 * V8 keeps a substring of 13 characters or more as a slice of its parent (SlicedString), holding
 * the whole parent alive: a tag split out of a 16 KiB Surrogate-Key would cost 16 KiB, not its
 * length. The store keeps its own copy of such tags.
 */
const SLICE_MIN_LENGTH = 13

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * The most bytes the store holds, in bytes as {@link entryBytes} counts them: what its entries
   * cost in the heap, so that the store's part of the heap stays within about `maxBytes` (see
   * docs/stores.md for the factor measured under floods of tags, variants and URLs). @default 64 MiB
   */
  maxBytes?: number
  /**
   * The most entries the store holds, a count; the LRU allocates its pointer arrays for this many
   * up front (about 28 bytes each). @default 100000
   */
  maxEntries?: number
  /** The clock, in epoch milliseconds, that expiry and soft invalidation read. @default Date.now */
  now?: () => number
}

const OPTIONS: readonly string[] = ['maxBytes', 'maxEntries', 'now']

/** A string's heap size as counted: one byte a character, two when it needs more than latin1. */
export function stringBytes(text: string): number {
  return STRING_OVERHEAD + (/[^\u0000-\u00ff]/.test(text) ? 2 : 1) * text.length
}

/**
 * The bytes an entry counts for, as close to what it costs in the heap as a sum can say:
 * {@link ENTRY_OVERHEAD}, its body's bytes, its key, and each header, header value, tag, Vary
 * name and selecting header with its overhead ({@link HEADER_OVERHEAD}, {@link TAG_OVERHEAD}, {@link stringBytes}).
 */
export function entryBytes(key: string, entry: CacheEntry): number {
  let bytes = ENTRY_OVERHEAD + stringBytes(key) + entry.body.byteLength
  // Header names and values are latin1 (Node refuses anything else in a header): a byte each.
  for (const name in entry.headers) {
    const value = entry.headers[name]!
    bytes += HEADER_OVERHEAD + STRING_OVERHEAD + name.length
    if (typeof value === 'string') bytes += STRING_OVERHEAD + value.length
    else for (const v of value) bytes += 8 + STRING_OVERHEAD + v.length
  }
  for (const tag of entry.tags) bytes += TAG_OVERHEAD + stringBytes(tag)
  for (const name of entry.variesOn ?? []) bytes += 8 + stringBytes(name)
  const selected = entry.selectedBy
  if (selected)
    for (const name in selected)
      bytes += HEADER_OVERHEAD + stringBytes(name) + stringBytes(selected[name]!)
  return bytes
}

// Mutable so soft invalidation can swap in a new entry object without promoting it in the LRU.
// The tag index holds these (not keys), so invalidating a tag needs no LRU lookup per entry.
interface Held {
  readonly key: string
  entry: CacheEntry
  readonly bytes: number
}

/** A string with characters of its own (not a slice of a larger one), equal to `text`. */
function ownCopy(text: string): string {
  // Concatenating then slicing makes V8 flatten the pair into a new string: the slice's parent.
  return text.length < SLICE_MIN_LENGTH ? text : (' ' + text).slice(1)
}

function positiveInteger(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`expected options.${name} to be a positive integer, got ${inspect(value)}`)
  }
  return value
}

/**
 * An in-process {@link CacheStore}: an LRU bounded by both entry count and bytes, with an exact
 * tag index and no timers (expired entries are dropped when met).
 *
 * `get` resolves the stored entry object itself: treat it as read-only. `set` keeps the entry
 * object it is given (in a copy only when its body is a view into a larger buffer, or a tag may be
 * a slice of a larger string: memory the count could not see), so do not mutate it afterwards.
 * `size()` counts every entry held, including expired ones not yet met.
 * After `close()` the store holds nothing and declines every `set`; other calls still resolve.
 */
export class MemoryStore implements CacheStore {
  // Past this many recorded invalidations (per map), the oldest half is folded into the floor.
  static readonly #PRUNE_ABOVE = 10_000

  readonly #maxBytes: number
  readonly #now: () => number
  readonly #lru: LRUMapWithDeleteClass<string, Held>
  // A tag held by one entry maps to it directly: per-entry tags (`item:42`) are common, and a
  // Set for each would cost about 200 bytes and an allocation.
  readonly #tagIndex = new Map<string, Held | Set<Held>>()
  #bytes = 0
  #closed = false

  // Invalidation order: `set(.., since)` is refused when `since < #floor`, or when the key's or
  // one of its tags' last invalidation has a seq `> since`. Each map is kept in ascending seq order
  // (delete, then re-insert) so pruning can drop its oldest half from the front.
  #seq = 0
  #floor = 0
  readonly #keySeq = new Map<string, number>()
  readonly #tagSeq = new Map<string, number>()
  // What the two maps above count (stringBytes + RECORD_OVERHEAD each): bounded by RECORDS_SHARE.
  #recordedBytes = 0

  constructor(options: MemoryStoreOptions = {}) {
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      throw new TypeError(`expected options to be an object, got ${inspect(options)}`)
    }
    for (const name of Object.keys(options)) {
      if (OPTIONS.includes(name)) continue
      const meant = OPTIONS.find(
        (known) => known.toLowerCase() === name.toLowerCase().replace(/[-_]/g, ''),
      )
      const hint = meant ? `did you mean ${meant}?` : `the options are ${OPTIONS.join(', ')}`
      throw new TypeError(`unknown option "${name}" for MemoryStore: ${hint}`)
    }
    this.#maxBytes = positiveInteger('maxBytes', options.maxBytes, 64 * 1024 * 1024)
    this.#lru = new LRUMapWithDelete(positiveInteger('maxEntries', options.maxEntries, 100_000))
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new TypeError(`expected options.now to be a function, got ${inspect(options.now)}`)
    }
    this.#now = options.now ?? Date.now
    warnInClusterWorker()
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    return this.peek(key)
  }

  peek(key: string): CacheEntry | undefined {
    const held = this.#lru.get(key)
    if (held === undefined) return undefined
    if (this.#now() >= held.entry.expiresAt) {
      this.#remove(key)
      return undefined
    }
    return held.entry
  }

  async checkpoint(): Promise<Checkpoint> {
    return this.#seq
  }

  async set(key: string, entry: CacheEntry, since: Checkpoint): Promise<boolean> {
    // Written as `!(since >= floor)` so a NaN checkpoint is refused, not waved through.
    if (this.#closed || !(since >= this.#floor)) return false
    if ((this.#keySeq.get(key) ?? 0) > since) return false
    if (entry.tags.some((tag) => (this.#tagSeq.get(tag) ?? 0) > since)) return false
    const bytes = entryBytes(key, entry)
    // The caller meant to replace what was at `key`, so the old entry goes even when the new one
    // is declined for its size or expiry (not when refused above: a newer generation may be there).
    this.#remove(key)
    if (this.#now() >= entry.expiresAt || bytes > this.#maxBytes) return false
    while (this.#bytes + bytes > this.#maxBytes)
      this.#evict(this.#lru.peek(leastRecentKey(this.#lru))!)

    // A small Buffer is usually a view into a shared 8 KiB pool slab (Buffer.concat, Buffer.from):
    // holding the view would pin the whole slab, which the byte budget cannot see. Copy into
    // memory of its own (allocUnsafeSlow: Buffer.from would copy into the pool again).
    const { body } = entry
    if (body.byteLength !== body.buffer.byteLength) {
      const own = Buffer.allocUnsafeSlow(body.byteLength)
      body.copy(own)
      entry = { ...entry, body: own }
    }

    if (entry.tags.some((tag) => tag.length >= SLICE_MIN_LENGTH))
      entry = { ...entry, tags: entry.tags.map(ownCopy) }

    const held: Held = { key, entry, bytes }
    const evicted = this.#lru.setpop(key, held) // evicts by itself when maxEntries is reached
    if (evicted !== null) this.#evicted(evicted.value)
    this.#bytes += bytes
    for (const tag of entry.tags) {
      const indexed = this.#tagIndex.get(tag)
      if (indexed === undefined) this.#tagIndex.set(tag, held)
      else if (indexed instanceof Set) indexed.add(held)
      else if (indexed !== held) this.#tagIndex.set(tag, new Set([indexed, held]))
    }
    return true
  }

  async delete(key: string): Promise<number> {
    this.#record(this.#keySeq, [key], ++this.#seq)
    const held = this.#lru.peek(key)
    return this.#remove(key) && this.#now() < held!.entry.expiresAt ? 1 : 0
  }

  async invalidateTags(tags: readonly string[], options: InvalidateOptions = {}): Promise<number> {
    this.#record(this.#tagSeq, tags, ++this.#seq)
    const now = this.#now()
    let affected = 0
    if (options.soft !== true) {
      // Each tag's set is taken out of the index before it is walked: every entry in it goes, and
      // `#unindex` then leaves that set alone (no copy, no deletes from it while iterating). An
      // entry under several of the tags is gone from the later sets by the time they are walked.
      for (const tag of tags) {
        const indexed = this.#tagIndex.get(tag)
        if (indexed === undefined) continue
        this.#tagIndex.delete(tag)
        for (const held of indexed instanceof Set ? indexed : [indexed]) {
          this.#drop(held)
          if (now < held.entry.expiresAt) affected++
        }
      }
      return affected
    }
    const helds = new Set<Held>()
    for (const tag of tags) {
      const indexed = this.#tagIndex.get(tag)
      if (indexed instanceof Set) for (const held of indexed) helds.add(held)
      else if (indexed !== undefined) helds.add(indexed)
    }
    for (const held of helds) {
      if (now >= held.entry.expiresAt) {
        this.#drop(held)
      } else {
        // A new object, since callers may hold the one a previous `get` returned. `now` is
        // already stale ("from then on it is stale"); min() keeps an earlier staleAt, so a
        // stale-while-revalidate window that has begun is not restarted.
        held.entry = {
          ...held.entry,
          staleAt: Math.min(held.entry.staleAt, now),
          softInvalidated: true,
        }
        affected++
      }
    }
    return affected
  }

  async clear(keyPrefix = ''): Promise<void> {
    // Refuse every generation in flight, whatever its key: the floor now covers every recorded
    // seq, so the per-key and per-tag records are no longer needed.
    this.#floor = ++this.#seq
    this.#keySeq.clear()
    this.#tagSeq.clear()
    this.#recordedBytes = 0
    if (keyPrefix === '') {
      this.#lru.clear()
      this.#tagIndex.clear()
      this.#bytes = 0
      return
    }
    for (const key of [...this.#lru.keys()]) if (key.startsWith(keyPrefix)) this.#remove(key)
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.clear()
  }

  size(): StoreSize {
    return { entries: this.#lru.size, bytes: this.#bytes }
  }

  #remove(key: string): boolean {
    const held = this.#lru.peek(key)
    if (held === undefined) return false
    this.#drop(held)
    return true
  }

  // Makes room: drops the least recently used entry, and says so on the channel.
  #evict(held: Held): void {
    this.#drop(held)
    this.#announce(held)
  }

  // An entry the LRU let go by itself (its entry count), out of the LRU already.
  #evicted(held: Held): void {
    this.#unindex(held)
    this.#announce(held)
  }

  #announce(held: Held): void {
    if (evictions.hasSubscribers)
      evictions.publish({ store: this, key: held.key, bytes: held.bytes })
  }

  // Takes a held entry out of the LRU, the byte count and the tag index.
  #drop(held: Held): void {
    this.#lru.delete(held.key)
    this.#unindex(held)
  }

  // Takes `held` out of the byte count and tag index; the caller has taken it out of the LRU.
  #unindex(held: Held): void {
    this.#bytes -= held.bytes
    for (const tag of held.entry.tags) {
      const indexed = this.#tagIndex.get(tag)
      // Absent when the entry lists the same tag twice and the first pass already emptied it, or
      // when invalidateTags took the tag out of the index to walk its entries.
      if (indexed === held) this.#tagIndex.delete(tag)
      else if (indexed instanceof Set) {
        indexed.delete(held)
        if (indexed.size === 0) this.#tagIndex.delete(tag)
      }
    }
  }

  #record(map: Map<string, number>, names: readonly string[], seq: number): void {
    for (const name of names) {
      if (map.delete(name)) this.#recordedBytes -= RECORD_OVERHEAD + stringBytes(name)
      map.set(name, seq)
      this.#recordedBytes += RECORD_OVERHEAD + stringBytes(name)
    }
    if (map.size > MemoryStore.#PRUNE_ABOVE) this.#prune(map)
    // Invalidations of long keys or tags (16 KiB URLs) are held in bytes, not only in count.
    if (this.#recordedBytes > this.#maxBytes * RECORDS_SHARE) {
      this.#prune(this.#keySeq)
      this.#prune(this.#tagSeq)
    }
  }

  // Drops the oldest half of `map` and raises the floor to the newest seq dropped: every
  // checkpoint a dropped record refused is below the floor, so nothing refused before is accepted.
  #prune(map: Map<string, number>): void {
    let drop = Math.max(1, map.size >> 1)
    for (const [name, dropped] of map) {
      if (drop-- === 0) break
      map.delete(name)
      this.#recordedBytes -= RECORD_OVERHEAD + stringBytes(name)
      this.#floor = Math.max(this.#floor, dropped)
    }
  }
}

/** Whether this process was told already (one warning per process, however many stores). */
let warned = false

/**
 * A MemoryStore in a node:cluster worker (PM2's cluster mode is one) holds this worker's entries
 * only, and a purge reaches this worker only: the other workers go on serving what was purged.
 * Said once per process, as a Node warning (code `NODE_ACCELERATOR_MEMORY_IN_WORKER`), with what
 * to use instead.
 */
function warnInClusterWorker(): void {
  if (warned || !cluster.isWorker) return
  warned = true
  const message =
    `MemoryStore in cluster worker ${cluster.worker!.id} (pid ${process.pid}): its entries and ` +
    'purges stay in this worker, so the other workers keep serving what invalidateTags() dropped here. ' +
    'Share one store: new RedisStore({ url, localCache: { maxBytes } }) (node-accelerator/redis) keeps ' +
    'memory-speed hits in each worker and purges them in all.'
  process.emitWarning(message, { code: 'NODE_ACCELERATOR_MEMORY_IN_WORKER' })
}

/**
 * The least recently used key of a mnemonist LRU, which it has no public way to read (its
 * iterators start at the most recent end). So this reads its internals (lru-cache.js, 0.40.x):
 * `K` holds keys by pointer, `tail` points at the least recent one. Only called while the LRU is
 * non-empty. The test "byte eviction takes exactly the least recently used keys" fails if they
 * change. MemoryStore and RedisStore's local cache evict with it.
 */
export function leastRecentKey(lru: LRUMapWithDeleteClass<string, unknown>): string {
  const internals = lru as unknown as { K: string[]; tail: number }
  const key = internals.K[internals.tail]
  // Renamed internals would make an eviction loop forever, evicting nothing: fail loudly instead.
  /* c8 ignore next -- unreachable with mnemonist 0.40.x, so no test can get here */
  if (key === undefined || !lru.has(key)) throw new Error('mnemonist LRU internals changed')
  return key
}
