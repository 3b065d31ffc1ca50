/**
 * RedisStore's local cache (`new RedisStore({ url, localCache: { maxBytes } })`): the entries a
 * process read from Redis, kept in its own memory, and dropped as soon as Redis says they
 * changed, by Redis's server-assisted client-side caching (`CLIENT TRACKING`), not a bus of
 * our own.
 *
 * **The invalidation stream.** One extra connection per store (a duplicate of the store's
 * client; on a Redis Cluster, one per master, a duplicate of that master's connection) runs
 * `CLIENT ID`, `CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX <prefix>{k:` and
 * `SUBSCRIBE __redis__:invalidate <prefix>#fence <prefix>#fenced` (RESP2, see `#open`). From
 * then on Redis sends it the name of every key under the prefix's entries that changes on that
 * server, whoever changes it and however: an overwrite, a commit, a soft purge (SETRANGE), a
 * delete or UNLINK, an expiry or eviction, a FLUSHALL (a null message: everything goes).
 * Broadcast mode, because tracking follows the connection that read a key, and reads go over
 * the store's own connection, which stays untouched; the stream's connection tracks for itself,
 * so tracking lives and dies with the stream. The price: every process hears of every entry
 * written under the prefix, read or not.
 *
 * **Fills.** A miss marks its key in flight, then reads Redis as the store always does. The
 * entry read is kept only if, when its reply is back, every stream has been up since before the
 * read was sent and no invalidation of that key arrived meanwhile: the reply and the
 * invalidation travel on two connections, so a change made just after the read may be heard
 * before the read's reply (the classic client-side caching race).
 *
 * **Loss.** When a stream's connection closes (or before it is first up), every local copy is
 * dropped and reads go to Redis, unkept, until every stream is back and tracking is on again. A
 * stream that does not answer a PING within the store's timeout (a heartbeat every second) is
 * taken for lost (and reconnected). On a Cluster, a node added to or removed from the client's
 * pool, or a change of the masters, drops every copy too, and a stream is opened on each new
 * master.
 *
 * **The fence.** `invalidateTags`, `delete` and `clear` resolve only once every local cache of
 * the prefix, in every process, has applied them: after its Redis commands, the store publishes
 * a nonce on `<prefix>#fence` on each stream's server (PUBLISH answers how many subscribers got
 * it there: one per live stream), and waits, within the store's timeout, until that many have
 * answered on `<prefix>#fenced`. Each cache answers a fence when its stream on that server reads
 * it (not before: the fence comes after that server's invalidations on the same connection).
 *
 * **The guarantee.** Let P be any process whose stream was subscribed when the fence of a call
 * `invalidateTags(T)`, `delete(k)` or `clear(p)` was published. Once that call has returned to
 * its caller, in whatever process, without its fence running out of time, P serves no local
 * copy (by `get` or `peek`) of an entry that the call removed or marked stale. Proof:
 * (1) the call's commands changed the keys before the fence was sent (they are awaited first);
 * Redis queues the BCAST invalidation messages for a change before it next reads from any
 * client (`trackingBroadcastInvalidationMessages` in `beforeSleep`), so before it executes the
 * PUBLISH, whose message is queued after them on P's stream; one connection's messages arrive in
 * order. (2) P handles a connection's messages in order, each synchronously in the socket's data
 * callback; an invalidation drops the copy and marks the key's reads in flight so that they keep
 * nothing. (3) P answers the fence only while handling it, so after (2); the call resolves only
 * once every subscriber counted by PUBLISH answered, so P had dropped the copy before. (4) A
 * read P sends afterwards reaches Redis after the change; one in flight keeps nothing (2); one
 * whose stream was lost meanwhile keeps nothing (Fills, Loss). A process whose stream was not
 * subscribed at the PUBLISH holds no copy (Loss) and keeps only reads sent once it is.
 * Exceptions: a process that does not answer within the timeout (stalled, partitioned) does not
 * hold the call longer: it may serve the copy until it reads its stream, which its heartbeat
 * requires within the timeout after it runs again. An overwrite by `set` is not fenced: another
 * process serves the version it replaced at most until its stream has answered a command sent
 * after the `set` returned (see `sync()`: one round trip).
 */
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { inspect } from 'node:util'
import { Cluster, Redis } from 'ioredis'
import type { LRUMapWithDelete as LRUMapWithDeleteClass } from 'mnemonist'
// See memory.ts: require just the LRU (mnemonist's per-module exports are CommonJS only).
const LRUMapWithDelete = createRequire(import.meta.url)(
  'mnemonist/lru-map-with-delete.js',
) as typeof LRUMapWithDeleteClass
import type { CacheEntry } from '../src/store.js'
import { entryBytes, leastRecentKey } from './memory.js'
import { deadline } from './redis-connection.js'

/** The `localCache` option of RedisStore. */
export interface LocalCacheOptions {
  /** The most bytes the local copies may take, as MemoryStore counts them; least recently used go first. */
  maxBytes: number
  /** The most local copies, a count (the LRU allocates for this many up front). @default 10000 */
  maxEntries?: number
}

const CHANNEL = '__redis__:invalidate'
/**
 * How often an idle stream is asked to answer (a PING, within the store's timeout): a
 * connection that died without closing (a host gone, a partition) hears nothing and says
 * nothing, and would otherwise leave copies served for as long as TCP takes to notice.
 */
export const HEARTBEAT_MS = 1000

/** The store methods the local cache wraps (see {@link attachLocalCache}). */
interface Wrapped {
  get(key: string): Promise<CacheEntry | undefined>
  set(key: string, entry: CacheEntry, since: number): Promise<boolean>
  delete(key: string): Promise<number>
  invalidateTags(tags: readonly string[], options?: { soft?: boolean }): Promise<number>
  clear(keyPrefix?: string): Promise<void>
  close(): Promise<void>
}

interface Held {
  readonly entry: CacheEntry
  readonly bytes: number
}

/** Reads of one key in flight; `invalidated` once an invalidation of the key arrived meanwhile. */
interface Flight {
  count: number
  invalidated: boolean
}

const caches = new WeakMap<object, LocalCache>()

/** The local cache of a store, for tests and diagnostics; undefined without `localCache`. */
export function localCacheOf(store: object): LocalCache | undefined {
  return caches.get(store)
}

/**
 * Checks the `localCache` option before the store creates anything; returns it with defaults.
 * `client`: the client passed to the store, if any.
 */
export function localCacheOptions(value: unknown): Required<LocalCacheOptions> {
  if (typeof value !== 'object' || value === null)
    throw new TypeError(`expected options.localCache to be { maxBytes }, got ${inspect(value)}`)
  const { maxBytes, maxEntries = 10_000 } = value as LocalCacheOptions
  for (const [name, n] of [
    ['maxBytes', maxBytes],
    ['maxEntries', maxEntries],
  ] as const) {
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new TypeError(
        `expected options.localCache.${name} to be a positive integer, got ${inspect(n)}`,
      )
  }
  return { maxBytes, maxEntries }
}

/**
 * Gives `store` a local cache: its get, set, delete, invalidateTags, clear and close become
 * own properties that consult and maintain it around the prototype's methods (so RedisStore's
 * code stays as it is). `client` is the store's client; the stream is a duplicate of it.
 */
export function attachLocalCache(
  store: Wrapped,
  client: Redis | Cluster,
  options: Required<LocalCacheOptions> & { prefix: string; now: () => number; timeoutMs: number },
): LocalCache {
  const local = new LocalCache(client, options)
  caches.set(store, local)
  const get = store.get.bind(store)
  const set = store.set.bind(store)
  const remove = store.delete.bind(store)
  const invalidateTags = store.invalidateTags.bind(store)
  const clear = store.clear.bind(store)
  const close = store.close.bind(store)
  store.get = (key) => local.get(key, get)
  // An overwrite, a delete, a clear: this process knows the keys, and drops its copies itself
  // (also when the call failed half-way: what Redis did is unknown). A delete, a clear and a tag
  // invalidation then wait for every other process to have applied it (a fence, see the top);
  // an overwrite does not (other processes may serve the version it replaced for a round trip).
  store.set = (key, entry, since) => set(key, entry, since).finally(() => local.drop(key))
  store.delete = (key) =>
    remove(key).finally(() => {
      local.drop(key)
      return local.fence()
    })
  store.clear = (keyPrefix = '') =>
    clear(keyPrefix).finally(() => {
      local.dropPrefix(keyPrefix)
      return local.fence()
    })
  // Tags: the keys are known to Redis only; its messages for them come before the fence's.
  store.invalidateTags = (tags, options) =>
    invalidateTags(tags, options).finally(() => local.fence())
  store.close = () => close().finally(() => local.close())
  return local
}

/** Local copies of one store's entries, kept exact by an invalidation stream (see the top). */
export class LocalCache {
  /**
   * The streams, by the server they hear: one (`''`) on a single Redis or Sentinel, one per
   * master (`host:port`) on a Cluster.
   */
  readonly #streams = new Map<string, Stream>()
  /** The store's client, whose reads fill the copies. */
  readonly #client: Redis | Cluster
  readonly #heartbeat: NodeJS.Timeout
  /** Redis key names of entries are `<entryPrefix><key>}v` (redis.ts's key layout). */
  readonly #entryPrefix: string
  /** Fences (see `fence`) go out on the first channel, and are answered on the second. */
  readonly #fenceChannel: string
  readonly #ackChannel: string
  /** Names this cache in its answers to fences. */
  readonly #id = randomUUID()
  /** Told of every fence this cache answers: a purge by some process (see `watch`). */
  readonly #watchers = new Set<() => void>()
  readonly #fences = new Map<
    string,
    { expected: number; answered: Set<string>; done: () => void }
  >()
  readonly #maxBytes: number
  readonly #now: () => number
  readonly #timeoutMs: number
  readonly #lru: LRUMapWithDeleteClass<string, Held>
  #bytes = 0
  readonly #flights = new Map<string, Flight>()
  /** Bumped when a stream is lost, or the Cluster's nodes change, or Redis is flushed: reads sent before then keep nothing. */
  #epoch = 0
  #closed = false

  constructor(
    client: Redis | Cluster,
    options: Required<LocalCacheOptions> & { prefix: string; now: () => number; timeoutMs: number },
  ) {
    this.#entryPrefix = `${options.prefix}{k:`
    this.#fenceChannel = `${options.prefix}#fence`
    this.#ackChannel = `${options.prefix}#fenced`
    this.#maxBytes = options.maxBytes
    this.#now = options.now
    this.#timeoutMs = options.timeoutMs
    this.#lru = new LRUMapWithDelete(options.maxEntries)
    this.#client = client
    if (client instanceof Cluster) {
      // Every master's invalidations come from that master: a stream on each. Any change of
      // the nodes drops every copy, and copies are kept again once each master's stream is up.
      for (const event of ['ready', 'refresh', '+node', '-node']) client.on(event, this.#onTopology)
      this.#onTopology()
    } else this.#open('', client)
    this.#heartbeat = setInterval(() => void this.sync(), HEARTBEAT_MS).unref()
  }

  /** Opens the stream that hears `server` (a duplicate of its client). */
  #open(key: string, server: Redis): void {
    // Subscriptions and commands are never replayed by ioredis: each connection is set up
    // afresh on 'ready' (tracking first, which a subscribed RESP2 connection cannot send).
    // RESP2: under RESP3 Redis sends `invalidate` pushes, which ioredis 6 drops (its
    // DataHandler.returnPush passes on pub/sub pushes only); under RESP2 they are messages.
    const redis = server.duplicate({
      protocol: 2,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      enableOfflineQueue: false,
      lazyConnect: false,
      // A Cluster's node connections may be told not to reconnect (they are recreated); a stream
      // reconnects until it is closed or its node leaves.
      ...(key === '' ? {} : { retryStrategy: reconnectDelay }),
    })
    const stream: Stream = { key, redis, publisher: server, live: false, session: 0 }
    this.#streams.set(key, stream)
    redis.on('error', ignore) // a lost stream is handled on 'close'; the store reports Redis's errors
    redis.on('ready', () => this.#onReady(stream))
    redis.on('close', () => this.#onClose(stream))
    redis.on('messageBuffer', (channel: Buffer, message: Buffer | Buffer[] | null) =>
      this.#onMessage(stream, channel, message),
    )
  }

  /**
   * The Cluster's nodes may have changed (a node added or removed, a failover, a new slot map):
   * a stream for each master, and every copy dropped when the masters changed or a node came or
   * went. Copies are kept again once each master's stream is up (see `live`).
   */
  readonly #onTopology = (node?: unknown): void => {
    const masters = new Map(
      (this.#client as Cluster)
        .nodes('master')
        .map((redis) => [`${redis.options.host}:${redis.options.port}`, redis]),
    )
    let changed = node !== undefined // '+node' and '-node' name the node; 'ready' and 'refresh' do not
    for (const [key, stream] of this.#streams) {
      if (masters.has(key)) continue
      changed = true
      this.#streams.delete(key)
      stream.live = false
      stream.redis.disconnect()
    }
    for (const [key, redis] of masters) {
      if (this.#streams.has(key)) continue
      changed = true
      this.#open(key, redis)
    }
    if (changed) this.#lost()
  }

  /**
   * Whether local copies are kept and served now: every stream (one per master on a Cluster)
   * has tracking on and is subscribed.
   */
  get live(): boolean {
    if (this.#streams.size === 0) return false
    for (const stream of this.#streams.values()) if (!stream.live) return false
    return true
  }

  /** How many copies, and the bytes they count. */
  size(): { entries: number; bytes: number } {
    return { entries: this.#lru.size, bytes: this.#bytes }
  }

  /** Whether a copy of `key` is held (without touching its recency). */
  has(key: string): boolean {
    return this.#lru.has(key)
  }

  /**
   * The store's `peek` (see CacheStore.peek): the local copy, at once, when one is held and not
   * past its `expiresAt`; else `null` (ask `get`, which reads Redis). Never `undefined`: only
   * Redis knows that nothing is stored. A copy is held only while the stream is live (losing it
   * drops them all, see `#lost`) and only until a message about its key has been read, the same
   * test `get` makes, at the same moment: a peek made after an invalidation was applied (after
   * the purge returned in this process, after `sync()` in another) cannot see the old copy.
   */
  peek(key: string): CacheEntry | null {
    const held = this.#lru.get(key)
    if (held === undefined) return null
    if (this.#now() < held.entry.expiresAt) return held.entry
    this.drop(key)
    return null
  }

  /** The local copy, else `read(key)` from Redis, kept when nothing changed it meanwhile. */
  get(
    key: string,
    read: (key: string) => Promise<CacheEntry | undefined>,
  ): Promise<CacheEntry | undefined> {
    const held = this.peek(key)
    if (held !== null) return Promise.resolve(held)
    if (!this.live) return read(key)
    return this.#fill(key, read)
  }

  async #fill(
    key: string,
    read: (key: string) => Promise<CacheEntry | undefined>,
  ): Promise<CacheEntry | undefined> {
    const epoch = this.#epoch
    let flight = this.#flights.get(key)
    // A flight already invalidated stays so for the reads in it; a new read starts a clean one.
    if (flight === undefined || flight.invalidated)
      this.#flights.set(key, (flight = { count: 0, invalidated: false }))
    flight.count++
    let entry: CacheEntry | undefined
    try {
      entry = await read(key)
    } finally {
      if (--flight.count === 0 && this.#flights.get(key) === flight) this.#flights.delete(key)
    }
    if (
      entry !== undefined &&
      !flight.invalidated &&
      epoch === this.#epoch &&
      this.live &&
      this.#sameServer()
    )
      this.#keep(key, entry)
    return entry
  }

  /**
   * Whether the read and the stream reach the same server. Under Sentinel the store's client and
   * the stream each move to a new master on their own: a copy read from one server and tracked
   * on another would hear of no change.
   */
  #sameServer(): boolean {
    // On a Cluster, every master has its stream (checked by `live`), whichever one was read.
    if (this.#client instanceof Cluster) return true
    const [read, heard] = [this.#client.stream, this.#streams.get('')!.redis.stream]
    return read.remoteAddress === heard.remoteAddress && read.remotePort === heard.remotePort
  }

  #keep(key: string, entry: CacheEntry): void {
    // The body is a view of the reply, which may be a slice of a larger socket buffer: a copy of
    // its own (allocUnsafeSlow: Buffer.from would copy into the shared pool).
    const body = Buffer.allocUnsafeSlow(entry.body.byteLength)
    entry.body.copy(body)
    const copy: CacheEntry = { ...entry, body }
    const bytes = entryBytes(key, copy)
    this.drop(key)
    if (bytes > this.#maxBytes) return
    while (this.#bytes + bytes > this.#maxBytes) this.drop(leastRecentKey(this.#lru))
    const evicted = this.#lru.setpop(key, { entry: copy, bytes })
    if (evicted !== null) this.#bytes -= evicted.value.bytes
    this.#bytes += bytes
  }

  /** Drops the copy of `key`, and keeps reads of it in flight from keeping what they read. */
  drop(key: string): void {
    const held = this.#lru.peek(key)
    if (held !== undefined) {
      this.#lru.delete(key)
      this.#bytes -= held.bytes
    }
    const flight = this.#flights.get(key)
    if (flight !== undefined) flight.invalidated = true
  }

  /** Drops the copies whose key starts with `keyPrefix` (all of them when empty). */
  dropPrefix(keyPrefix: string): void {
    if (keyPrefix === '') return this.#dropAll()
    for (const key of [...this.#lru.keys(), ...this.#flights.keys()])
      if (key.startsWith(keyPrefix)) this.drop(key)
  }

  #dropAll(): void {
    this.#epoch++
    this.#lru.clear()
    this.#bytes = 0
  }

  /**
   * Resolves once every invalidation Redis sent the streams before now has been applied: a PING
   * on each stream, answered after them. A stream that does not answer within the timeout is
   * taken for lost: copies dropped, and a new connection.
   */
  async sync(): Promise<void> {
    await Promise.all([...this.#streams.values()].map((stream) => this.#ping(stream)))
  }

  async #ping(stream: Stream): Promise<void> {
    if (!stream.live) return
    const session = stream.session
    try {
      await deadline(stream.redis.ping(), this.#timeoutMs)
    } catch {
      if (session === stream.session && !this.#closed) {
        stream.live = false
        this.#lost()
        stream.redis.disconnect(true)
      }
    }
  }

  #onReady(stream: Stream): void {
    const session = ++stream.session
    this.#enable(stream, session).catch(() => {
      // Refused (an old Redis, an ACL without CLIENT): stay bypassed on this connection; a
      // reconnect tries again.
    })
  }

  async #enable(stream: Stream, session: number): Promise<void> {
    const id = await stream.redis.client('ID')
    await stream.redis.call(
      'CLIENT',
      'TRACKING',
      'ON',
      'REDIRECT',
      String(id),
      'BCAST',
      'PREFIX',
      this.#entryPrefix,
    )
    await stream.redis.subscribe(CHANNEL, this.#fenceChannel, this.#ackChannel)
    if (session === stream.session && !this.#closed) stream.live = true
  }

  #onClose(stream: Stream): void {
    stream.session++
    stream.live = false
    this.#lost()
  }

  /** A stream lost (or the nodes changed): every copy goes, and reads in flight keep nothing. */
  #lost(): void {
    this.#dropAll()
  }

  readonly #onMessage = (
    stream: Stream,
    channel: Buffer,
    message: Buffer | Buffer[] | null,
  ): void => {
    if (Array.isArray(message)) {
      // CHANNEL's keys all start with the tracked prefix (BCAST PREFIX).
      const from = this.#entryPrefix.length
      for (const raw of message) {
        const name = raw.toString()
        // `...}k` names are delete records, not entries.
        if (name.endsWith('}v')) this.drop(name.slice(from, -2))
      }
      return
    }
    // Null on CHANNEL: the database was flushed (FLUSHALL, FLUSHDB), every key is gone.
    if (message === null) return this.#dropAll()
    const text = message.toString()
    if (channel.toString() === this.#fenceChannel) {
      // `<nonce> <stream key>`: answered only from the stream it was published to, once every
      // message that server sent before it has been applied (they came first on this connection).
      if (text.slice(text.indexOf(' ') + 1) !== stream.key) return
      for (const watcher of this.#watchers) watcher()
      this.#client.publish(this.#ackChannel, `${text} ${this.#id}`).catch(ignore)
      return
    }
    // An answer to a fence: `<nonce> <stream key> <id of the answering cache>`.
    const at = text.lastIndexOf(' ')
    const fence = this.#fences.get(text.slice(0, at))
    if (fence === undefined) return
    fence.answered.add(text.slice(at + 1))
    settle(fence)
  }

  /**
   * Calls `listener` for each fence this cache answers, before answering it: some process
   * invalidated entries and waits for this one (RedisStore's `onInvalidation`, which the
   * accelerator uses to seal its generations in flight). Returns what removes it.
   */
  watch(listener: () => void): () => void {
    this.#watchers.add(listener)
    return () => void this.#watchers.delete(listener)
  }

  /**
   * Resolves once every local cache of this prefix, in every process, whose stream was
   * subscribed when it was asked has applied the invalidations Redis sent before now (or after
   * the store's timeout, see the top): a fence published on each stream's server, which each
   * stream hears after that server's invalidations, and which each answers. Never rejects.
   */
  async fence(): Promise<void> {
    await Promise.all([...this.#streams.values()].map((stream) => this.#fenceOn(stream)))
  }

  async #fenceOn(stream: Stream): Promise<void> {
    if (!stream.live) return
    const token = `${randomUUID()} ${stream.key}`
    let done!: () => void
    const answered = new Promise<void>((resolve) => (done = resolve))
    // Registered before publishing: answers may come before PUBLISH's reply (another connection).
    const fence = { expected: Infinity, answered: new Set<string>(), done }
    this.#fences.set(token, fence)
    try {
      // PUBLISH answers how many subscribers got the message on that server: one per stream.
      fence.expected = await deadline(
        stream.publisher.publish(this.#fenceChannel, token),
        this.#timeoutMs,
      )
      settle(fence)
      await deadline(answered, this.#timeoutMs)
    } catch {
      // A process that did not answer within the timeout: see the guarantee at the top.
    } finally {
      this.#fences.delete(token)
    }
  }

  /** Fences published and waiting for answers (for tests and diagnostics). */
  get fencing(): number {
    let waiting = 0
    for (const fence of this.#fences.values()) if (fence.expected !== Infinity) waiting++
    return waiting
  }

  /** The streams' connections (for tests: a stream that stops reading stands for a stalled process). */
  get connections(): Redis[] {
    return [...this.#streams.values()].map((stream) => stream.redis)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#heartbeat)
    if (this.#client instanceof Cluster)
      for (const event of ['ready', 'refresh', '+node', '-node'])
        this.#client.off(event, this.#onTopology)
    for (const stream of this.#streams.values()) {
      stream.live = false
      stream.redis.disconnect()
    }
    this.#lost()
  }
}

/** A fence answered by every subscriber its PUBLISH reached is done. */
function settle(fence: { expected: number; answered: Set<string>; done: () => void }): void {
  if (fence.answered.size >= fence.expected) fence.done()
}

function ignore(): void {}

/** One connection hearing one server's invalidations. */
interface Stream {
  /** `''` on a single Redis, `host:port` of its master on a Cluster. */
  readonly key: string
  readonly redis: Redis
  /** Where fences for this stream are published: the store's client, or the master's connection. */
  readonly publisher: Redis
  /** Tracking on and subscribed, on this connection. */
  live: boolean
  /** Bumped on each connection and loss: a setup for an older one does nothing. */
  session: number
}

/** How long a Cluster master's stream waits before reconnecting (as the store's own client). */
function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), 2000)
}
