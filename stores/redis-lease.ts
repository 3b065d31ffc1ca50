/**
 * RedisStore's leases: one generation per key across processes (see CacheStore.lease).
 *
 * - **Claim.** One script (accLease) on the lease key `<prefix>{k:<key>}l`, in the entry's hash
 *   slot: with `ifAbsent`, answers `stored` when the entry's key exists (an entry stored between
 *   the caller's lookup and now: no generation needed); else `SET <lease> <token> NX PX <ttl>`;
 *   else the lease's PTTL, for a waiter to wake by itself when a holder vanished (`kill -9`).
 * - **Held.** Renewed every third of its TTL (compare-and-PEXPIRE), so it expires with its holder.
 *   Released by a compare-and-delete that also PUBLISHes the key on `<prefix>#lease` (`1<key>`,
 *   or `0<key>` when the response could not be shared: each waiter then generates its own),
 *   only when a claim found it busy (which marks it, `<prefix>{k:<key>}w`, for the lease's life):
 *   a miss nobody waited on costs other processes nothing.
 * - **Busy.** The waiter listens before it asks (a release between its claim and its wait is not
 *   missed), on one subscriber connection per store, and wakes on the message, at the lease's
 *   expiry, or at the caller's bound, whichever comes first: never by polling.
 *
 * The subscriber is the store client's duplicate; while it is not subscribed, a claim fails (the
 * caller generates at once, as with any store failure) instead of waiting for a message that
 * cannot arrive.
 */
import { randomBytes } from 'node:crypto'
import { Cluster, type Redis } from 'ioredis'
import type { LeaseClaim, LeaseWake } from '../src/store.js'
import { deadline, RedisStoreError } from './redis-connection.js'

/** What the lease module needs of the store. */
export interface LeaseHost {
  client: Redis | Cluster
  prefix: string
  timeoutMs: number
  where: string
  /** Runs one command within the store's deadline (its Connection). */
  call<T>(command: () => Promise<T>): Promise<T>
  script(
    name: 'accLease' | 'accRenew' | 'accRelease',
    ...args: Array<string | number>
  ): Promise<unknown>
}

/** For failures that need no handling here (see where it is used). */
const ignore = (): void => {}

/** One waiter on one key: settled once, by a message, its timer, or close. */
class Listener {
  #heard: LeaseWake | undefined
  #resolve: ((wake: LeaseWake) => void) | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(private readonly leave: (listener: Listener) => void) {}

  /** Called once: it leaves the listeners on its first wake (message, timer, claim, close). */
  hear(wake: LeaseWake): void {
    this.#heard = wake
    clearTimeout(this.#timer)
    this.leave(this)
    this.#resolve?.(wake)
  }

  /** Resolves what woke it, within `ms` (or `fallback` when the timer does). */
  until(ms: number, fallback: LeaseWake): Promise<LeaseWake> {
    if (this.#heard !== undefined) return Promise.resolve(this.#heard)
    return new Promise((resolve) => {
      this.#resolve = resolve
      this.#timer = setTimeout(() => this.hear(fallback), Math.max(0, ms))
    })
  }
}

export class Leases {
  #subscriber: Redis | Cluster | undefined
  #wentLive!: () => void
  readonly #channel: string
  readonly #listeners = new Map<string, Set<Listener>>()
  readonly #renewals = new Set<NodeJS.Timeout>()
  /** Subscribed now: only then may a claim wait for a message. */
  #live = false
  readonly #firstLive: Promise<void>
  #closed = false
  readonly #token = randomBytes(9).toString('base64url') + ':'
  #claims = 0

  constructor(private readonly host: LeaseHost) {
    this.#channel = `${host.prefix}#lease`
    this.#firstLive = new Promise<void>((resolve) => (this.#wentLive = resolve))
  }

  /**
   * The subscriber, connected on the first claim: a store used without the accelerator (or
   * never missing) opens no connection more than its client.
   */
  #connect(): Redis | Cluster {
    const own = { autoResubscribe: false, enableOfflineQueue: false, lazyConnect: false }
    const { client } = this.host
    const subscriber = client instanceof Cluster ? client.duplicate([], own) : client.duplicate(own)
    // Its errors show as the store's own (a claim fails while it is down); ioredis would log them.
    subscriber.on('error', ignore)
    subscriber.on('close', () => (this.#live = false))
    subscriber.on('ready', () => {
      // A failed SUBSCRIBE is a connection failing: its 'close' follows, then a new 'ready'.
      subscriber.subscribe(this.#channel).then(() => {
        this.#live = true
        this.#wentLive()
      }, ignore)
    })
    subscriber.on('message', (_channel: string, message: string) => {
      const listeners = this.#listeners.get(message.slice(1))
      if (listeners === undefined) return
      const wake = message[0] === '0' ? 'alone' : 'released'
      for (const listener of [...listeners]) listener.hear(wake)
    })
    return subscriber
  }

  async claim(key: string, ttlMs: number, ifAbsent: boolean): Promise<LeaseClaim> {
    const { host } = this
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)
      throw new TypeError(`expected lease ttlMs to be a positive integer, got ${ttlMs}`)
    // (A closed store connects nothing more.)
    if (this.#closed)
      throw new RedisStoreError(host.where, 'closed (close() was called)', { outage: false })
    if (!this.#live) await this.#subscribed()
    // Listening before asking: a release between the claim and the wait is heard.
    const listener = this.#listen(key)
    // Unique to this claim: the process's random part and a counter (one random draw per store).
    const token = `${this.#token}${++this.#claims}`
    const lease = `${host.prefix}{k:${key}}l`
    const waiters = `${host.prefix}{k:${key}}w`
    let answer: number
    try {
      answer = Number(
        await host.call(() =>
          host.script(
            'accLease',
            lease,
            `${host.prefix}{k:${key}}v`,
            waiters,
            token,
            ttlMs,
            ifAbsent ? '1' : '0',
          ),
        ),
      )
    } catch (err) {
      listener.hear('closed')
      throw err
    }
    if (answer === -2 || answer === -1) listener.hear('closed')
    if (answer === -2) return { kind: 'stored' }
    if (answer >= 0)
      return {
        kind: 'busy',
        wait: (ms) =>
          listener.until(Math.min(ms, answer + 1), answer + 1 <= ms ? 'expired' : 'timeout'),
      }
    const renewal = setInterval(
      () => {
        // A renewal that fails leaves the lease to expire: others then generate, as they would
        // had this process died. Nothing to tell the client.
        host.call(() => host.script('accRenew', lease, waiters, token, ttlMs)).catch(ignore)
      },
      Math.max(1, Math.floor(ttlMs / 3)),
    ).unref()
    this.#renewals.add(renewal)
    let released = false
    return {
      kind: 'held',
      release: async (alone = false) => {
        if (released) return
        released = true
        clearInterval(renewal)
        this.#renewals.delete(renewal)
        if (this.#closed) return
        await host.call(() =>
          host.script('accRelease', lease, waiters, this.#channel, token, `${alone ? 0 : 1}${key}`),
        )
      },
    }
  }

  /** Connects the subscriber, waits (within the timeout) for its first subscription, else throws. */
  async #subscribed(): Promise<void> {
    this.#subscriber ??= this.#connect()
    // Not live within the timeout: the check below says so.
    await deadline(this.#firstLive, this.host.timeoutMs).catch(() => {})
    if (!this.#live)
      throw new RedisStoreError(
        this.host.where,
        'lease notifications are not subscribed (their connection is down); generating without waiting for other processes',
        { outage: true },
      )
  }

  #listen(key: string): Listener {
    let set = this.#listeners.get(key)
    if (set === undefined) this.#listeners.set(key, (set = new Set()))
    const listener: Listener = new Listener((done) => {
      set.delete(done)
      if (set.size === 0) this.#listeners.delete(key)
    })
    set.add(listener)
    return listener
  }

  /** Called once, by the store's close(). */
  close(): void {
    this.#closed = true
    this.#live = false
    for (const timer of this.#renewals) clearInterval(timer)
    this.#renewals.clear()
    for (const set of [...this.#listeners.values()])
      for (const listener of [...set]) listener.hear('closed')
    this.#subscriber?.disconnect()
  }
}
