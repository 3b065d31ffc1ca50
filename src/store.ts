/**
 * The store contract: what the accelerator asks of a cache store, and what a store promises.
 *
 * Every time is absolute epoch milliseconds (`*At`) unless the field says otherwise. Every
 * method returns a Promise, even when a store could answer synchronously, so that callers never
 * assume a store is in-process (undici PR #4826 fixed exactly that assumption).
 *
 * A store never parses HTTP: it keeps bytes, numbers and strings, and answers by key and tag.
 * Stores import this file with `import type` only.
 */

/** One stored response. Binary-safe: the body is bytes, headers are strings. */
export interface CacheEntry {
  /** The HTTP status code, as sent. */
  status: number
  /**
   * The response headers as sent, lower-case names, ready to hand to `writeHead`. They always
   * include `etag`, `date` and `content-length`, and never hop-by-hop headers, `Set-Cookie`,
   * `Age` or the cache's own status headers (those are recomputed on every hit).
   */
  headers: Record<string, string | string[]>
  /** The body bytes exactly as they went out (compressed if the handler compressed them). */
  body: Buffer
  /** Opaque tags; `invalidateTags` with any of them removes this entry. */
  tags: readonly string[]
  /** When the response was generated (its headers were sent). */
  storedAt: number
  /** The age, in seconds, the response already had at `storedAt` (a declared `Age`). */
  initialAge: number
  /** Fresh until this time; from then on it is stale and served only as the spec allows. */
  staleAt: number
  /** The store may forget the entry from this time and never returns it after it. */
  expiresAt: number
  /**
   * Set by `invalidateTags(tags, { soft: true })` (with `staleAt` moved to that moment): the entry
   * may still be served while one regeneration runs, until `expiresAt`.
   */
  softInvalidated?: boolean
  /**
   * Set on the record stored at a resource's base key when its responses vary (`Vary`): the
   * lower-case request header names that select a variant, whose entries live under keys
   * derived from the base key. Such a record holds no response (status 0, no headers, empty body).
   */
  variesOn?: readonly string[]
  /**
   * For a response with `Vary`: the values of the request headers it names, as the request it
   * answered sent them (lower-case names; a header that request did not send is absent). A
   * revalidation asks the origin about this variant with them (RFC 9111 §4.3.1). Entries stored
   * before this field existed have none; a store keeps it as it keeps `headers`.
   */
  selectedBy?: Readonly<Record<string, string>>
}

/**
 * What a resource's base key holds when its responses vary: no response (status 0, no headers,
 * an empty body), only the request header names that select a variant. It travels through the
 * store as a CacheEntry, so that every store keeps, expires and drops it like one.
 */
export type VaryRecord = CacheEntry & { readonly status: 0; readonly variesOn: readonly string[] }

/**
 * A position in the store's invalidation order, taken (with {@link CacheStore.checkpoint}) before
 * a response starts being generated and handed back to {@link CacheStore.set}. Stores compare
 * checkpoints only with their own: a counter in memory, a Redis-side counter in Redis. Never a
 * local clock, which differs between processes.
 */
export type Checkpoint = number

/** Options of {@link CacheStore.invalidateTags}. */
export interface InvalidateOptions {
  /**
   * Mark the entries stale instead of removing them: `staleAt` becomes the time of the call (if
   * it was later) and `softInvalidated` true; everything else, `expiresAt` included, is kept.
   * @default false
   */
  soft?: boolean
}

/** What a store knows of its own size, synchronously, when it knows it at all. */
export interface StoreSize {
  /** Entries currently held. */
  entries: number
  /** Bytes currently held, as the store counts them (bodies, headers, keys, tags). */
  bytes: number
}

/**
 * What {@link CacheStore.lease} found: the lease is this process's (`held`), another process holds
 * it (`busy`), or (when asked `ifAbsent`) an entry is already stored at the key (`stored`).
 */
export type LeaseClaim =
  | {
      kind: 'held'
      /**
       * Gives the lease up and wakes the processes waiting on it. `alone`: the response could not
       * be shared (Set-Cookie, private, ...), so each of them generates its own at once.
       * Settles within the store's timeout; rejects only as other store calls do.
       */
      release(alone?: boolean): Promise<void>
    }
  | {
      kind: 'busy'
      /**
       * Resolves, within `ms` at most, once the holder released the lease (`released`, or
       * `alone`: generate without waiting again), or it may have expired (`expired`), or `ms`
       * passed (`timeout`). Wakes come from the store (a message), never from polling.
       */
      wait(ms: number): Promise<LeaseWake>
    }
  | { kind: 'stored' }

/** Why a wait on a busy lease ended (see {@link LeaseClaim}). */
export type LeaseWake = 'released' | 'alone' | 'expired' | 'timeout' | 'closed'

/**
 * A cache store.
 *
 * **Invalidation guarantee (no stale resurrection).** Let a checkpoint `c` be taken before a
 * call to `invalidateTags(T)`, `delete(k)` or `clear()` begins. After that call resolves, a
 * `set(k2, entry, c)` whose entry carries a tag in `T` (respectively whose key is `k`, or any
 * key) stores nothing, or whatever it stored is removed before `set` resolves. So a response
 * whose generation began before an invalidation is never served as fresh after it. A store
 * may refuse more than that (it never has to store), never less.
 *
 * **Failures.** A store rejects instead of hanging: every call settles within the store's own
 * timeout. The accelerator treats a rejected `get`/`checkpoint`/`set` as a miss (fail open).
 * An error of an expected outage (the backend unreachable, slow, not connected yet) carries
 * `outage: true` and a message naming the backend and what happened; the default `onError`
 * logs it as that one line, without its stack.
 */
export interface CacheStore {
  /** The entry stored at `key`, stale or fresh; `undefined` when absent or past `expiresAt`. */
  get(key: string): Promise<CacheEntry | undefined>
  /**
   * Optional, for stores that hold entries (all or some) in this process: `get`'s answer at
   * once, when the store has it here, so that a hit never waits for a turn of the event loop
   * (no promise is made for it). Three answers:
   *
   * - an entry: what `get(key)` would resolve now, with the same guarantees (never past
   *   `expiresAt`, never an entry an invalidation that has returned removed);
   * - `undefined`: `get(key)` would resolve `undefined` now: nothing is stored at `key`
   *   (a store answers this only when it holds every entry there is, as MemoryStore does);
   * - `null`: not known here (a copy not held, or not trusted now); the caller asks `get(key)`.
   *
   * It never throws for an outage (a store that would have to ask its backend answers `null`)
   * and never blocks.
   */
  peek?(key: string): CacheEntry | undefined | null
  /**
   * Optional. Calls `listener` whenever this store hears that a process sharing it, this one
   * included, invalidated entries (`invalidateTags`, `delete`, `clear`), before that process's
   * call returns. The accelerator then seals its generations in flight, as it does after its own
   * invalidations: no request that comes after a purge in another process joins a generation
   * begun before it (the data it read may be what the purge was for). Returns a function that
   * removes the listener. A RedisStore with `localCache` has it (its fences, stores/local-cache.ts).
   */
  onInvalidation?(listener: () => void): () => void
  /** The current position in the invalidation order; take it before generating a response. */
  checkpoint(): Promise<Checkpoint>
  /**
   * Stores `entry` at `key`, replacing what was there, unless an invalidation of one of its tags
   * (or of `key`, or a `clear()`) happened after `since` was taken. Resolves `true` when
   * stored, `false` when declined (invalidated since, too large for the store, already expired).
   */
  set(key: string, entry: CacheEntry, since: Checkpoint): Promise<boolean>
  /** Removes the entry at `key`; resolves with how many entries were removed (0 or 1). */
  delete(key: string): Promise<number>
  /**
   * Removes (or, with `soft`, marks stale) every entry carrying any of `tags`, matched exactly;
   * resolves with how many entries were affected (a store may document an estimate).
   */
  invalidateTags(tags: readonly string[], options?: InvalidateOptions): Promise<number>
  /** Removes every entry whose key starts with `keyPrefix` (all entries when it is empty). */
  clear(keyPrefix?: string): Promise<void>
  /** Releases what the store owns (timers, connections it created). Idempotent. */
  close(): Promise<void>
  /**
   * Optional, for stores shared by many processes: claims the generation of `key` for this
   * process, so that concurrent misses in other processes wait for its entry instead of running
   * the handler too. The lease expires `ttlMs` after it was last renewed (the store renews it
   * while held, so it dies with its holder). With `ifAbsent`, an entry already stored at `key`
   * (readable or not yet) answers `stored` instead. A store without it coalesces per process.
   */
  lease?(key: string, ttlMs: number, ifAbsent?: boolean): Promise<LeaseClaim>
  /** Current size, when the store can tell synchronously (an in-process store can). */
  size?(): StoreSize
}
