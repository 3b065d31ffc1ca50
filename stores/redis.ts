/**
 * RedisStore: one cache shared by every process (and machine) on one Redis or Redis Cluster.
 *
 * Key layout under `prefix` (default `acc:`); the `{...}` part is the Redis Cluster hash tag, so
 * the keys one script touches always share a slot and different entries spread over the slots:
 *
 *   acc:{k:<key>}v   string: the entry's frame (redis-frame.ts): a fixed ASCII head (staleAt, soft
 *                    flag, checkpoint, lengths), the meta JSON, the tags JSON, the body bytes
 *   acc:{k:<key>}k   the invalidation number of the last delete(key)
 *   acc:{t:<tag>}z   sorted set: the keys carrying the tag, scored by their expiresAt
 *   acc:{t:<tag>}i   the invalidation number of the tag's last invalidation
 *   acc:#seq         the invalidation sequence: max(INCR, Redis TIME in ms)
 *   acc:#floor       the invalidation number of the last clear()
 *
 * Every key has a TTL: entries until their expiresAt, tag indexes until their last member's,
 * invalidation records a day, the sequence 30 days. Index members are never removed by an
 * invalidation or an overwrite (that would race with a writer in another slot): they are trimmed
 * by score once the entries they point to have expired, and an invalidation drops only entries
 * that still carry the tag (exact, though the index may hold a key that no longer does).
 *
 * No stale resurrection, across processes: `set` reads its tags' last invalidations (refusing
 * at once, leaving what is stored untouched, when one is newer than its checkpoint), writes
 * the entry with a short provisional TTL (refused if its key was deleted after the
 * checkpoint), then adds it to each tag's index while reading the tag's last invalidation
 * again, and deletes it if one is newer, or else gives it its full TTL; an invalidation bumps the
 * sequence, records it on the tag, then deletes the indexed entries generated before it.
 * Whichever way the two interleave, either the writer sees the record or the invalidator sees
 * the entry. Ordering comes from Redis (one counter), never from local clocks.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { inspect } from 'node:util'
import type {
  CacheEntry,
  CacheStore,
  Checkpoint,
  InvalidateOptions,
  LeaseClaim,
} from '../src/store.js'
import { Connection } from './redis-connection.js'
import { encodeFrame, fixed16, frameParts, HEAD_BYTES } from './redis-frame.js'
import { SCRIPTS, type Scripted } from './redis-scripts.js'
import { attachLocalCache, localCacheOptions, type LocalCacheOptions } from './local-cache.js'
import { Leases } from './redis-lease.js'

export { RedisStoreError } from './redis-connection.js'

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /** Where to connect (a client is created, and closed by `close()`). @default 'redis://127.0.0.1:6379' */
  url?: string
  /** An ioredis `Redis` or `Cluster` to use instead; it is not closed by `close()`. */
  client?: Redis | Cluster
  /**
   * ioredis options for the client the store creates, over its fail-fast defaults (with `url`,
   * or alone): `{ sentinels, name }` for Redis Sentinel, `tls` for a CA of your own, `username`
   * and `password` for an ACL user. Not with `client`.
   */
  clientOptions?: RedisOptions
  /** Prefix of every key, keeping apps on one Redis apart; not empty, no `{` or `}`. @default 'acc:' */
  prefix?: string
  /** Milliseconds after which a command is given up on (the request goes on as a miss). @default 100 */
  timeoutMs?: number
  /** Bodies larger than this many bytes are not stored. @default 8 MiB */
  maxEntryBytes?: number
  /** The clock for expiry, epoch milliseconds. @default Date.now */
  now?: () => number
  /**
   * @internal For tests of the races `set` is built to survive: awaited between its steps, so
   * that an invalidation can land exactly there. Not for production use.
   */
  interleave?: (step: 'checked' | 'written') => Promise<void> | void
  /**
   * Keep the entries read in this process's memory too, up to `maxBytes`: hits without a round
   * trip, each copy dropped when Redis says its entry changed (see local-cache.ts and the
   * docs/stores.md, "Local cache"). On a Cluster, one invalidation connection per master.
   */
  localCache?: LocalCacheOptions
  /**
   * One generation per key across processes: a miss takes a lease in Redis while it generates,
   * and concurrent misses in other processes wait for its entry (see redis-lease.ts). One more
   * connection per store (a subscriber). `false`: each process coalesces on its own. @default true
   */
  lease?: boolean
}

const DAY = 24 * 60 * 60 * 1000
/** How long invalidation records protect generations in flight: longer ones are not protected. */
const RECORD_TTL = DAY
const SEQ_TTL = 30 * DAY
/** Index members are trimmed this long after their entry expired (clock skew between processes). */
const INDEX_GRACE = 60_000
const SCAN_COUNT = 1000
const DROP_BATCH = 500
/** Entries per accDropMany script (on a single Redis), and such scripts in flight at once. */
const DROP_MANY = 500
const DROP_MANY_CONCURRENCY = 2
/** A tag's keys come back in one reply up to this many, else in ZSCAN pages of about this many. */
const INDEX_PAGE = 2000
/** Per-tag commands go in batches of this many, so a response with 10,000 tags does not queue 20,000 at once. */
const TAG_BATCH = 100
/**
 * A new entry first lives this long at most; its full TTL is set once it is indexed and checked.
 * A set that fails half-way (a timeout after the write) leaves an entry that expires soon, not
 * one that lives its whole TTL outside its tags' indexes.
 */
const PROVISIONAL_TTL = 10_000

type Client = (Redis | Cluster) & Scripted

/**
 * The meta JSON of an entry: everything a hit needs but the body and what a script may change
 * (`f` staleAt, `p` soft). Tags are also in the hash's `g` field, which scripts read.
 */
interface Meta {
  s: number
  h: Record<string, string | string[]>
  t: number
  a: number
  /** Tags. */
  g: string[]
  /** expiresAt. */
  x: number
  v?: string[]
  /** selectedBy; absent in entries without it, and in those written before it existed. */
  r?: Record<string, string>
}

/** Parsed metas kept per store, by key, for the hottest entries (see `#decodedMeta`). */
const DECODED_METAS = 1024

/** A Redis-backed {@link CacheStore}, shared by every process that uses the same Redis and prefix. */
export class RedisStore implements CacheStore {
  readonly #client: Client
  readonly #connection: Connection<Client>
  readonly #prefix: string
  readonly #timeoutMs: number
  readonly #maxEntryBytes: number
  readonly #now: () => number
  readonly #interleave: RedisStoreOptions['interleave']
  #closed = false
  readonly #leases: Leases | undefined
  /** See {@link CacheStore.lease}; absent with `lease: false`. */
  readonly lease?: (key: string, ttlMs: number, ifAbsent?: boolean) => Promise<LeaseClaim>
  readonly #metas = new Map<string, { bytes: Buffer; meta: Meta }>()
  /**
   * With `localCache` only (see {@link CacheStore.peek}): the local copy at once, or `null` when
   * none is held or the invalidation stream is down (then `get` asks Redis).
   */
  readonly peek?: (key: string) => CacheEntry | null
  /**
   * With `localCache` only (see {@link CacheStore.onInvalidation}): told of every purge by any
   * process on this prefix, before that purge returns (the local cache's fences).
   */
  readonly onInvalidation?: (listener: () => void) => () => void

  constructor(options: RedisStoreOptions = {}) {
    if (typeof options !== 'object' || options === null)
      throw new TypeError(`expected options to be an object, got ${inspect(options)}`)
    const {
      url,
      client,
      clientOptions,
      prefix = 'acc:',
      timeoutMs = 100,
      maxEntryBytes = 8 * 1024 * 1024,
      now = Date.now,
      interleave,
      localCache,
      lease = true,
    } = options
    if (url !== undefined && client !== undefined)
      throw new TypeError('expected options.url or options.client, got both')
    if (url !== undefined && (typeof url !== 'string' || !/^(rediss?|unix):/.test(url)))
      throw new TypeError(`expected options.url to be a redis:// URL, got ${inspect(url)}`)
    if (
      clientOptions !== undefined &&
      (typeof clientOptions !== 'object' || clientOptions === null)
    )
      throw new TypeError(
        `expected options.clientOptions to be ioredis options (an object), got ${inspect(clientOptions)}`,
      )
    if (clientOptions !== undefined && client !== undefined)
      throw new TypeError(
        'expected options.clientOptions or options.client, got both (options are for the client the store creates)',
      )
    if (client !== undefined && !(client instanceof Redis || client instanceof Cluster))
      throw new TypeError(
        `expected options.client to be an ioredis Redis or Cluster, got ${inspect(client, { depth: 0 })}`,
      )
    // Not empty: clear() would then match whatever else lives in the database under `{`.
    if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix))
      throw new TypeError(
        `expected options.prefix to be a non-empty string without { or } (such as 'acc:'), got ${inspect(prefix)}`,
      )
    for (const [name, value] of [
      ['timeoutMs', timeoutMs],
      ['maxEntryBytes', maxEntryBytes],
    ] as const) {
      if (!Number.isSafeInteger(value) || value <= 0)
        throw new TypeError(
          `expected options.${name} to be a positive integer, got ${inspect(value)}`,
        )
    }
    if (typeof lease !== 'boolean')
      throw new TypeError(`expected options.lease to be a boolean, got ${inspect(lease)}`)
    if (typeof now !== 'function')
      throw new TypeError(`expected options.now to be a function, got ${inspect(now)}`)
    this.#prefix = prefix
    this.#timeoutMs = timeoutMs
    this.#maxEntryBytes = maxEntryBytes
    this.#now = now
    this.#interleave = interleave
    const local = localCache === undefined ? undefined : localCacheOptions(localCache)
    const target = client ?? createClient(url, clientOptions, timeoutMs)
    // Scripts run by EVALSHA (EVAL once per connection when Redis does not know them yet).
    for (const [name, [numberOfKeys, lua]] of Object.entries(SCRIPTS)) {
      if (typeof (target as unknown as Record<string, unknown>)[name] !== 'function')
        target.defineCommand(name, { numberOfKeys, lua })
    }
    this.#client = target as Client
    this.#connection = new Connection(this.#client, {
      owned: client === undefined,
      timeoutMs,
      now,
      url: url ?? (client === undefined && clientOptions === undefined ? DEFAULT_URL : undefined),
    })
    if (lease) {
      const connection = this.#connection
      const host = {
        client: target,
        prefix,
        timeoutMs,
        where: connection.where,
        call: <T>(command: () => Promise<T>) => connection.call(command),
        script: (name: 'accLease' | 'accRenew' | 'accRelease', ...args: Array<string | number>) =>
          this.#client[name](...args),
      }
      const leases = (this.#leases = new Leases(host))
      this.lease = (key, ttlMs, ifAbsent = false) => leases.claim(key, ttlMs, ifAbsent)
    }
    if (local !== undefined) {
      const cache = attachLocalCache(this, target, { ...local, prefix, now, timeoutMs })
      this.peek = (key) => cache.peek(key)
      this.onInvalidation = (listener) => cache.watch(listener)
    }
  }

  /**
   * Resolves once the connection is up. Not needed before use: until the first connection is
   * made, commands wait for it (each within `timeoutMs`). Rejects after `waitMs` with the server
   * and its last error, for an app that would rather not start without its cache.
   */
  async ready(waitMs = 10_000): Promise<void> {
    return this.#connection.ready(waitMs)
  }

  /**
   * One GET of the entry's frame (see redis-frame.ts); the body is a view of the reply, not a
   * copy. Not an async function: the hit path's promise is the GET's, mapped once (`#decode`).
   */
  get(key: string): Promise<CacheEntry | undefined> {
    return this.#connection.getBuffer(this.#entry(key), (frame) => this.#decode(key, frame))
  }

  #decode(key: string, frame: Buffer | null): CacheEntry | undefined {
    const parts = frame === null ? undefined : frameParts(frame)
    if (parts === undefined) return undefined
    const meta = this.#decodedMeta(key, frame!, parts.metaEnd)
    if (meta === undefined || this.#now() >= meta.x) return undefined
    const entry: CacheEntry = {
      status: meta.s,
      headers: meta.h,
      body: frame!.subarray(parts.bodyStart),
      tags: meta.g,
      storedAt: meta.t,
      initialAge: meta.a,
      staleAt: parts.staleAt,
      expiresAt: meta.x,
    }
    if (parts.soft) entry.softInvalidated = true
    if (meta.v) entry.variesOn = meta.v
    if (meta.r) entry.selectedBy = meta.r
    return entry
  }

  /**
   * The meta of the entry at `key` (`frame[HEAD_BYTES..metaEnd)`), parsed once per stored
   * version: a hot entry's hits compare its bytes in place with the last ones seen (a memcmp, no
   * view made) instead of parsing its JSON again, and share one read-only headers object, so the
   * hit path's prepared header array is built once too.
   */
  #decodedMeta(key: string, frame: Buffer, metaEnd: number): Meta | undefined {
    const known = this.#metas.get(key)
    if (
      known !== undefined &&
      known.bytes.length === metaEnd - HEAD_BYTES &&
      frame.compare(known.bytes, 0, known.bytes.length, HEAD_BYTES, metaEnd) === 0
    )
      return known.meta
    let meta: Meta
    try {
      meta = JSON.parse(frame.toString('utf8', HEAD_BYTES, metaEnd)) as Meta
    } catch {
      return undefined
    }
    // An entry written in an older layout (without tags and expiry in its meta) is a miss.
    if (!Array.isArray(meta.g) || typeof meta.x !== 'number') return undefined
    if (known === undefined && this.#metas.size >= DECODED_METAS)
      this.#metas.delete(this.#metas.keys().next().value!)
    // A copy: the frame holds the body too, which must not be kept.
    this.#metas.set(key, { bytes: Buffer.from(frame.subarray(HEAD_BYTES, metaEnd)), meta })
    return meta
  }

  async checkpoint(): Promise<Checkpoint> {
    return Number(await this.#call(() => this.#client.get(this.#seq)))
  }

  /** Declines (false) rather than rejects when the store is closed on the way: nothing failed. */
  async set(key: string, entry: CacheEntry, since: Checkpoint): Promise<boolean> {
    try {
      return await this.#write(key, entry, since)
    } catch (err) {
      if (this.#closed) return false
      throw err
    }
  }

  async #write(key: string, entry: CacheEntry, since: Checkpoint): Promise<boolean> {
    const ttl = Math.ceil(entry.expiresAt - this.#now())
    if (this.#closed || ttl <= 0 || entry.body.byteLength > this.#maxEntryBytes) return false
    const tags = [...new Set(entry.tags)]
    // Invalidated already: refuse without touching what is stored (a softly invalidated entry
    // there is still servable). This read is an optimisation; the check after writing decides.
    if (
      (await this.#newestInvalidation(key, tags, (tag) => this.#client.get(this.#tagRecord(tag)))) >
      since
    )
      return false
    await this.#interleave?.('checked')
    const meta: Meta = {
      s: entry.status,
      h: entry.headers,
      t: entry.storedAt,
      a: entry.initialAge,
      g: tags,
      x: entry.expiresAt,
    }
    if (entry.variesOn) meta.v = [...entry.variesOn]
    if (entry.selectedBy) meta.r = entry.selectedBy
    // A response stays unreadable until checked (see the frame's head). A Vary record (status 0,
    // no body) is readable at once: it serves nothing by itself (its variants are checked like
    // any response), and rewriting it must not hide the variants it names for a few round trips.
    const record = entry.status === 0 && entry.variesOn !== undefined
    const frame = encodeFrame(
      entry.staleAt,
      entry.softInvalidated === true,
      since,
      JSON.stringify(meta),
      JSON.stringify(tags),
      entry.body,
      record,
    )
    const written = await this.#call(() =>
      this.#client.accSet(
        this.#entry(key),
        this.#keyRecord(key),
        since,
        Math.min(ttl, PROVISIONAL_TTL),
        frame,
      ),
    )
    if (!written) return false
    await this.#interleave?.('written')
    // Only now, with the entry written, index it and read what happened meanwhile.
    const trimBelow = this.#now() - INDEX_GRACE
    const newest = await this.#newestInvalidation(key, tags, (tag) =>
      this.#client.accIndex(
        this.#tagIndex(tag),
        this.#tagRecord(tag),
        key,
        entry.expiresAt,
        trimBelow,
        ttl + INDEX_GRACE,
      ),
    )
    if (newest <= since) {
      await this.#call(() => this.#client.accCommit(this.#entry(key), since, ttl))
      return true
    }
    await this.#call(() => this.#client.accDrop(this.#entry(key), newest, '0', 0))
    return false
  }

  /** The newest invalidation that reaches an entry: of its tags (read by `read`), its key, a clear. */
  async #newestInvalidation(
    key: string,
    tags: readonly string[],
    read: (tag: string) => Promise<unknown>,
  ): Promise<number> {
    const records = await Promise.all([
      this.#call(() => this.#client.get(this.#keyRecord(key))),
      this.#call(() => this.#client.get(this.#floor)),
    ])
    const perTag = await inBatches(tags, (tag) => this.#call(() => read(tag)))
    return Math.max(...[...records, ...perTag].map(Number))
  }

  async delete(key: string): Promise<number> {
    const n = await this.#bump()
    return Number(
      await this.#call(() =>
        this.#client.accDelete(this.#entry(key), this.#keyRecord(key), n, RECORD_TTL),
      ),
    )
  }

  /** Counts exactly the entries removed (or marked), each once. */
  async invalidateTags(tags: readonly string[], options: InvalidateOptions = {}): Promise<number> {
    const n = await this.#bump()
    const trimBelow = this.#now() - INDEX_GRACE
    const indexed = await inBatches([...new Set(tags)], async (tag) => {
      const members = (await this.#call(() =>
        this.#client.accInvalidateTag(
          this.#tagIndex(tag),
          this.#tagRecord(tag),
          n,
          RECORD_TTL,
          trimBelow,
          INDEX_PAGE,
        ),
      )) as string[] | null
      return members ?? this.#scanIndex(this.#tagIndex(tag))
    })
    const keys = [...new Set(indexed.flat())]
    const soft = options.soft === true ? '1' : '0'
    // Each tag as JSON.stringify wrote it into the entry's `g` array (see DROP_LUA).
    const wanted = [...new Set(tags)].map((tag) => JSON.stringify(tag))
    const now = fixed16(this.#now())
    let dropped: unknown[]
    if (this.#client instanceof Cluster) {
      dropped = await inBatches(
        keys,
        (key) => this.#call(() => this.#client.accDrop(this.#entry(key), n, soft, now, ...wanted)),
        DROP_BATCH,
      )
    } else {
      // One script per DROP_MANY keys: a script costs Redis microseconds per entry, a command
      // per entry costs both sides far more (measured: 100,000 entries in 1.5 s one by one).
      const chunks = Array.from({ length: Math.ceil(keys.length / DROP_MANY) }, (_, i) =>
        keys.slice(i * DROP_MANY, (i + 1) * DROP_MANY).map((key) => this.#entry(key)),
      )
      dropped = await inBatches(
        chunks,
        (chunk) =>
          this.#call(() =>
            this.#client.accDropMany(chunk.length, ...chunk, n, soft, now, ...wanted),
          ),
        DROP_MANY_CONCURRENCY,
      )
    }
    return dropped.reduce((sum: number, one) => sum + Number(one), 0)
  }

  /**
   * Every member of a large tag index, a page per command (one reply of 100,000 members took
   * longer than the 100 ms command timeout on a busy machine). ZSCAN returns every member present
   * for the whole scan, which covers each entry indexed before the invalidation was recorded:
   * members only leave by trimming, a minute after their entries expired.
   */
  async #scanIndex(index: string): Promise<string[]> {
    const members: string[] = []
    let cursor = '0'
    do {
      const [next, page] = await this.#call(() =>
        this.#client.zscan(index, cursor, 'COUNT', INDEX_PAGE),
      )
      for (let i = 0; i < page.length; i += 2) members.push(page[i]!)
      cursor = next
    } while (cursor !== '0')
    return members
  }

  /**
   * Deletes this prefix's entries whose key starts with `keyPrefix` (all of them when empty), by
   * SCAN. The pattern is `<prefix>{...`: as no prefix holds a `{`, it matches this prefix's keys
   * and no sibling's (`p:{*` cannot match `p:blog:{k:...}`), and the sequence and floor
   * (`<prefix>#...`) are left alone.
   */
  async clear(keyPrefix = ''): Promise<void> {
    const n = await this.#bump()
    await this.#call(() => this.#client.accRaise(this.#floor, n, RECORD_TTL))
    const match = `${glob(this.#prefix)}{${keyPrefix === '' ? '' : `k:${glob(keyPrefix)}`}*`
    const nodes = this.#client instanceof Cluster ? this.#client.nodes('master') : [this.#client]
    for (const node of nodes) {
      for await (const batch of node.scanStream({ match, count: SCAN_COUNT }) as AsyncIterable<
        string[]
      >) {
        await Promise.all(batch.map((key) => this.#call(() => this.#client.unlink(key))))
      }
    }
  }

  /** Closes the connection the store created (a client passed in stays open). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#metas.clear()
    this.#leases?.close()
    await this.#connection.close()
  }

  #bump(): Promise<number> {
    return this.#call(() => this.#client.accBump(this.#seq, SEQ_TTL)).then(Number)
  }

  #call<T>(command: () => Promise<T>): Promise<T> {
    return this.#connection.call(command)
  }

  get #seq(): string {
    return `${this.#prefix}#seq`
  }
  get #floor(): string {
    return `${this.#prefix}#floor`
  }
  #entry(key: string): string {
    return `${this.#prefix}{k:${key}}v`
  }
  #keyRecord(key: string): string {
    return `${this.#prefix}{k:${key}}k`
  }
  #tagIndex(tag: string): string {
    return `${this.#prefix}{t:${tag}}z`
  }
  #tagRecord(tag: string): string {
    return `${this.#prefix}{t:${tag}}i`
  }
}

const DEFAULT_URL = 'redis://127.0.0.1:6379'

/** The client a store creates: `clientOptions` over defaults that fail open, fast. */
function createClient(
  url: string | undefined,
  clientOptions: RedisOptions | undefined,
  timeoutMs: number,
): Redis {
  const options: RedisOptions = {
    // No queue while disconnected, no retries of a command, a deadline on each, and reconnecting
    // forever in the background so caching resumes by itself. (Commands wait for the first
    // connection in Connection, within the timeout.)
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(1000, timeoutMs * 10),
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    // Sentinel: reconnect to the new master as soon as a sentinel announces it (+switch-master),
    // and on a write refused by a demoted master (READONLY) that the announcement has not reached.
    failoverDetector: true,
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
    ...clientOptions,
  }
  return url === undefined && clientOptions !== undefined
    ? new Redis(options)
    : new Redis(url ?? DEFAULT_URL, options)
}

/** Runs `run` over `items`, `size` at a time; resolves every result, in order. */
async function inBatches<T, R>(
  items: readonly T[],
  run: (item: T) => Promise<R>,
  size = TAG_BATCH,
): Promise<R[]> {
  const results: R[] = []
  for (let i = 0; i < items.length; i += size)
    results.push(...(await Promise.all(items.slice(i, i + size).map(run))))
  return results
}

/** A literal for a SCAN MATCH pattern. */
function glob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}
