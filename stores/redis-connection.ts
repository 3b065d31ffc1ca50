/**
 * RedisStore's link to Redis: when a command may be sent, how long it may take, and what a
 * failure is called.
 *
 * - **The first connection is waited for.** Until the client has been ready once, a command
 *   waits for it (within the store's timeout, which then covers the wait and the command), so
 *   the first requests after start are cached like the rest. A failed attempt ends the wait at
 *   once: a refused port costs no request the timeout.
 * - **A lost connection fails fast.** Once the client has been ready and is not any more,
 *   commands fail at once (ioredis reconnects in the background), and so they do for a second
 *   after a timeout: a paused Redis costs one request the timeout, not every request.
 * - **One timer for the hits.** ioredis's `commandTimeout` arms and clears a timer per command,
 *   about half a microsecond of a hit's CPU (measured: `npm run bench:redis-get`). The hit
 *   path's GETs keep the same deadline in one queue, oldest first, under one timer set for the
 *   oldest one's deadline ({@link Connection.getBuffer}); every other command keeps ioredis's.
 * - **Errors say where and what.** Every rejection is a {@link RedisStoreError} naming the
 *   server (`RedisStore redis://127.0.0.1:6390: connection refused (ECONNREFUSED)`), marked as
 *   an outage when it is one, so that the default `onError` logs it as one line.
 */
import { Cluster, Command, Redis } from 'ioredis'

/** After a command times out, commands fail at once for this long. */
export const BREAK_MS = 1000

/** A RedisStore failure, named after the server it concerns. */
export class RedisStoreError extends Error {
  override name = 'RedisStoreError'
  /**
   * True when Redis is unreachable, slow or not connected yet: an expected outage that the
   * store rides out by failing open. The default `onError` logs such errors without a stack.
   */
  readonly outage: boolean
  constructor(where: string, what: string, options: { outage: boolean; cause?: unknown }) {
    super(
      `RedisStore ${where}: ${what}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    )
    this.outage = options.outage
  }
}

/** Readable names of the socket errors a Redis outage shows as. */
const SOCKET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found (DNS lookup failed)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed while writing',
  ENOENT: 'no such socket file',
  // TLS: what to do is to give the CA (clientOptions.tls.ca) or fix the certificate.
  DEPTH_ZERO_SELF_SIGNED_CERT: "TLS: the server's certificate is self-signed",
  SELF_SIGNED_CERT_IN_CHAIN:
    "TLS: the server's certificate chain ends in an untrusted self-signed CA",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "TLS: the server's certificate is signed by an unknown CA",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "TLS: the server's certificate is signed by an unknown CA",
  ERR_TLS_CERT_ALTNAME_INVALID: "TLS: the server's certificate is for another host",
  CERT_HAS_EXPIRED: "TLS: the server's certificate has expired",
}

/** What went wrong, in words, for an error ioredis gave. */
export function describeFailure(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code
  if (code !== undefined && code in SOCKET_ERRORS) return `${SOCKET_ERRORS[code]} (${code})`
  if (err.name === 'ReplyError') return `Redis answered: ${err.message}`
  return err.message
}

/** Where a client points, for error messages: its URL without credentials, or its servers. */
export function describeTarget(client: Redis | Cluster, url: string | undefined): string {
  if (url !== undefined) return url.replace(/\/\/[^@/]*@/, '//')
  if (client instanceof Cluster) {
    const nodes =
      (
        client as unknown as {
          startupNodes?: Array<{ host?: string; port?: number } | string | number>
        }
      ).startupNodes ?? []
    return `cluster ${nodes.map((node) => (typeof node === 'object' ? `${node.host ?? '127.0.0.1'}:${node.port ?? 6379}` : String(node))).join(',')}`
  }
  const { host, port, path, tls, sentinels, name } = client.options
  if (sentinels)
    return `sentinel ${String(name)} via ${sentinels.map((s) => `${s.host ?? '127.0.0.1'}:${s.port ?? 26379}`).join(',')}`
  if (path) return `unix:${path}`
  return `${tls ? 'rediss' : 'redis'}://${host ?? '127.0.0.1'}:${port ?? 6379}`
}

/** The link to one client. `call` is the only way the store sends a command. */
export class Connection<C extends Redis | Cluster> {
  readonly client: C
  readonly where: string
  readonly #owned: boolean
  readonly #timeoutMs: number
  readonly #now: () => number
  /** Whether the client has ever been ready: until then commands wait for it. */
  #everReady: boolean
  /** The last connection error since the client was last ready. */
  #lastError: Error | undefined
  /** Settles when the client is first ready (or its first attempt fails). */
  readonly #firstReady: Promise<void>
  #settleFirst: ((err?: Error) => void) | undefined
  #unavailableUntil = 0
  #closed = false
  /** The hit path's GETs in flight and their deadlines (see {@link Deadlines}). */
  readonly #deadlines: Deadlines

  constructor(
    client: C,
    options: { owned: boolean; timeoutMs: number; now: () => number; url?: string | undefined },
  ) {
    this.client = client
    this.where = describeTarget(client, options.url)
    this.#owned = options.owned
    this.#timeoutMs = options.timeoutMs
    this.#now = options.now
    this.#deadlines = new Deadlines()
    this.#everReady = client.status === 'ready'
    // Connection errors repeat on every reconnect attempt: they are kept, for the message of
    // the next failing command, never logged from here (that command's caller reports it).
    // One listener of each kind per store, removed by close(); a client shared by many stores is
    // allowed as many (without the EventEmitter leak warning past ten).
    if (client.getMaxListeners() !== 0) client.setMaxListeners(client.getMaxListeners() + 1)
    client.on('error', this.#onError)
    client.on('ready', this.#onReady)
    this.#firstReady = this.#everReady
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          this.#settleFirst = (err) => (err === undefined ? resolve() : reject(err))
        })
    this.#firstReady.catch(() => {})
    // A lazyConnect client would wait for a first command that is itself waiting.
    if (client.status === 'wait') client.connect().catch(() => {})
  }

  readonly #onError = (err: Error): void => {
    this.#lastError = err
    this.#settleFirst?.(err)
    this.#settleFirst = undefined
  }

  readonly #onReady = (): void => {
    this.#everReady = true
    this.#lastError = undefined
    this.#settleFirst?.()
    this.#settleFirst = undefined
  }

  /**
   * Runs one command within the deadline. A created client enforces it itself (commandTimeout);
   * one passed in may not, so it is raced here.
   */
  call<T>(command: () => Promise<T>): Promise<T> {
    // The hit path: ready, no break, a client that keeps the deadline itself. One promise
    // layer over the command's (an async wrapper here cost a hit two more).
    if (this.#fast) return command().catch(this.#rethrow)
    return this.#guardedCall(command)
  }

  /** The store's own client, ready, not in a break: commands go straight to it (the hit path). */
  get #fast(): boolean {
    return (
      this.#owned && this.#unavailableUntil === 0 && !this.#closed && this.client.status === 'ready'
    )
  }

  /**
   * The hit path: one GET of `key` with a Buffer reply, mapped by `decode`, within the deadline.
   * On the store's own client, ready and not in a break, it is sent as `getBuffer` sends it (the
   * same Command, reply encoding and key prefix) with one promise layer over ioredis's, its
   * deadline kept by {@link Deadlines} instead of a timer of its own; otherwise it goes as any
   * other command. (So `clientOptions.enableAutoPipelining`, which measured no faster here, and
   * `showFriendlyErrorStack` do not apply to the hit's GET.)
   */
  getBuffer<T>(key: string, decode: (reply: Buffer | null) => T): Promise<T> {
    if (!this.#fast) return this.#guardedCall(() => this.client.getBuffer(key)).then(decode)
    const client = this.client as Redis
    const command = new DeadlineGet(key, client.options.keyPrefix, this.#deadlines)
    return (client.sendCommand(command) as Promise<Buffer | null>).then(decode, this.#rethrow)
  }

  async #guardedCall<T>(command: () => Promise<T>): Promise<T> {
    const waited = await this.#mayRun()
    if (waited > 0) return this.#run(command, Math.max(1, this.#timeoutMs - waited), true)
    return this.#run(command, this.#timeoutMs, !this.#owned)
  }

  readonly #rethrow = (err: Error): never => {
    throw this.#failure(err)
  }

  async #run<T>(command: () => Promise<T>, ms: number, race: boolean): Promise<T> {
    try {
      return await (race ? deadline(command(), ms) : command())
    } catch (err) {
      throw this.#failure(err as Error)
    }
  }

  /**
   * Throws when no command should be sent now; resolves how long it waited for the first
   * connection (0: none was waited for).
   */
  async #mayRun(): Promise<number> {
    if (this.#closed)
      throw new RedisStoreError(this.where, 'closed (close() was called)', { outage: false })
    const breakLeft = Math.ceil(this.#unavailableUntil - this.#now())
    // (More than the break left: the clock was set back; the break is over.)
    if (breakLeft > 0 && breakLeft <= BREAK_MS)
      throw new RedisStoreError(this.where, `not asking for ${breakLeft} ms after a timeout`, {
        outage: true,
      })
    this.#unavailableUntil = 0
    if (this.client.status === 'ready') return 0
    if (this.#everReady || this.#lastError !== undefined) throw this.#notConnected()
    const started = performance.now()
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new RedisStoreError(this.where, `not connected yet (waited ${this.#timeoutMs} ms)`, {
              outage: true,
            }),
          ),
        this.#timeoutMs,
      )
    })
    try {
      await Promise.race([this.#firstReady, late])
    } catch (err) {
      throw err instanceof RedisStoreError ? err : this.#notConnected()
    } finally {
      clearTimeout(timer)
    }
    return Math.max(1, performance.now() - started)
  }

  /** The error for a command not sent because the client is not connected. */
  #notConnected(): RedisStoreError {
    const last = this.#lastError
    const what =
      last === undefined ? `not connected (${this.client.status})` : describeFailure(last)
    return new RedisStoreError(
      this.where,
      `${what}; reconnecting in the background, requests go uncached meanwhile`,
      { outage: true, cause: last },
    )
  }

  /** A command's failure, in words; a timeout also opens the one-second break. */
  #failure(err: Error): RedisStoreError {
    if (err.message === 'Command timed out') {
      this.#unavailableUntil = this.#now() + BREAK_MS
      return new RedisStoreError(
        this.where,
        `command timed out after ${this.#timeoutMs} ms; not asking again for ${BREAK_MS} ms`,
        { outage: true, cause: err },
      )
    }
    // The connection dropped between the status check and the write.
    if (/Stream isn't writeable|Connection is closed/.test(err.message)) return this.#notConnected()
    return new RedisStoreError(this.where, describeFailure(err), {
      outage: err.name !== 'ReplyError',
      cause: err,
    })
  }

  /**
   * Resolves once the client is ready; rejects after `waitMs` saying with what it last failed.
   */
  async ready(waitMs: number): Promise<void> {
    if (this.#closed)
      throw new RedisStoreError(this.where, 'closed (close() was called)', { outage: false })
    if (this.client.status === 'ready') return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const last =
          this.#lastError === undefined
            ? 'no answer yet'
            : `last error: ${describeFailure(this.#lastError)}`
        done(
          new RedisStoreError(this.where, `not ready within ${waitMs} ms (${last})`, {
            outage: true,
            cause: this.#lastError,
          }),
        )
      }, waitMs)
      const onReady = () => done()
      const done = (err?: Error) => {
        clearTimeout(timer)
        this.client.off('ready', onReady)
        if (err) reject(err)
        else resolve()
      }
      this.client.once('ready', onReady)
    })
  }

  /** Stops sending commands; quits the client when it was created by the store. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // What is in flight is settled by QUIT or by the disconnect below, not by a timer.
    this.#deadlines.clear()
    if (!this.#owned) {
      // A client passed in lives on: take back what was added to it. (The store's own client
      // keeps its error listener while it quits: ioredis would log an unheard error.)
      this.client.off('error', this.#onError)
      this.client.off('ready', this.#onReady)
      if (this.client.getMaxListeners() > 1)
        this.client.setMaxListeners(this.client.getMaxListeners() - 1)
      return
    }
    await this.client.quit().catch(() => {})
    // Also what QUIT leaves open: a Sentinel client's failover detector's sentinel connections.
    this.client.disconnect()
  }
}

/**
 * A GET whose deadline is kept by a {@link Deadlines} queue: ioredis calls `setTimeout` on each
 * command it sends when the client has a `commandTimeout` (the store's own client always has),
 * and this one takes its place in the queue instead of arming a timer.
 */
class DeadlineGet extends Command {
  readonly #deadlines: Deadlines
  constructor(key: string, keyPrefix: string | undefined, deadlines: Deadlines) {
    super('get', [key], { replyEncoding: null, keyPrefix })
    this.#deadlines = deadlines
  }
  override setTimeout(ms: number): void {
    this.#deadlines.add(this, ms)
  }
}

/**
 * Commands in flight, oldest first, and when each is due (performance.now() ms): one timer,
 * set for the oldest one's deadline, rejects those past theirs with ioredis's own timeout error
 * (so the store reacts as to any timeout). Settled commands are dropped as the queue is walked:
 * it keeps no reply alive longer than the next command sent.
 */
export class Deadlines {
  readonly #commands: Array<Command | undefined> = []
  readonly #due: number[] = []
  #head = 0
  #timer: NodeJS.Timeout | undefined
  /** Milliseconds on a monotonic clock (injected by tests). */
  readonly #now: () => number

  constructor(now: () => number = () => performance.now()) {
    this.#now = now
  }

  add(command: Command, ms: number): void {
    const commands = this.#commands
    let head = this.#head
    while (head < commands.length && commands[head]!.isSettled) commands[head++] = undefined
    if (head === commands.length) {
      commands.length = 0
      this.#due.length = 0
      head = 0
    } else if (head >= 1024) {
      commands.splice(0, head)
      this.#due.splice(0, head)
      head = 0
    }
    this.#head = head
    commands.push(command)
    this.#due.push(this.#now() + ms)
    // Commands share one timeout, so a later one is never due before the oldest.
    this.#timer ??= setTimeout(this.#expire, ms)
  }

  readonly #expire = (): void => {
    this.#timer = undefined
    const now = this.#now()
    const commands = this.#commands
    let head = this.#head
    for (; head < commands.length; head++) {
      const command = commands[head]!
      if (!command.isSettled) {
        if (this.#due[head]! > now) break
        command.reject(new Error('Command timed out'))
      }
      commands[head] = undefined
    }
    this.#head = head
    if (head < commands.length)
      this.#timer = setTimeout(this.#expire, Math.max(1, Math.ceil(this.#due[head]! - now)))
  }

  /** Forgets every command and stops the timer. */
  clear(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#commands.length = 0
    this.#due.length = 0
    this.#head = 0
  }
}

/** Rejects with ioredis's own timeout message when `promise` takes longer than `ms`. */
export function deadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error('Command timed out')), ms)),
  )
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}
