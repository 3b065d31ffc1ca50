/**
 * What the demo's dashboard shows live: one row per request the cache answered (its Cache-Status,
 * whether the handler ran, the whole response's time), one per purge and per background refresh,
 * and each process's `app.stats()`, streamed to every open dashboard as Server-Sent Events.
 *
 * Where it comes from: the accelerator's `node:diagnostics_channel` channels (docs/operations.md, "Metrics and
 * tracing"), the same ones a tracer would use: `node-accelerator:response` says what the cache
 * did for a request, `node-accelerator:generate` when the handler really ran for it. Nothing in
 * the handler reports on itself, so a hit cannot pretend.
 *
 * On Redis, each process publishes its rows and counters on a Redis channel and every process
 * relays all of them to its own dashboards: one page shows both processes, each row naming the
 * process that answered.
 */
import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Redis } from 'ioredis'
import { CHANNELS } from '../src/index.js'
import type { Accelerator, GenerateContext, Outcome, ResponseMessage, Stats } from '../src/index.js'

/** One line of the dashboard's log. */
export interface Row {
  /** `request`: a response the cache answered; `purge`; `refresh`: a background regeneration. */
  kind: 'request' | 'purge' | 'refresh'
  /** Unique per process: the page finds its own load by it (Server-Timing `req`). */
  id: number
  /** The process that answered: ":3000 (pid 123)". */
  proc: string
  /** `GET /posts/1`, or for a purge what was called: `invalidateTags(['posts'])`. */
  what: string
  status?: number
  /** The Cache-Status header as sent. */
  cacheStatus?: string
  outcome?: Outcome
  handlerRan: boolean
  /** From the request's arrival to the last byte handed to the socket, in ms (whole response). */
  ms: number
  /** Which process rendered the body (a hit elsewhere names the process that stored it). */
  renderedBy?: string
  /** For a purge: how many entries it dropped or marked stale. */
  entries?: number
}

/** The events a dashboard receives. */
export type Event =
  | { type: 'row'; row: Row }
  | { type: 'stats'; proc: string; stats: Stats }
  | { type: 'hello'; proc: string }

/** A request on its way: what the channels told about it so far. */
interface Pending {
  row: Row
  started: number
}

const BACKLOG = 40

export class Activity {
  readonly proc: string
  readonly #app: Accelerator
  readonly #pending = new WeakMap<IncomingMessage, Pending>()
  readonly #backgroundStarts = new WeakMap<GenerateContext, number>()
  readonly #clients = new Set<ServerResponse>()
  readonly #rows: Row[] = []
  readonly #stats = new Map<string, Stats>()
  #seq = 0
  readonly #redis: { pub: Redis; sub: Redis; channel: string } | undefined
  readonly #unsubscribe: () => void
  /** Says that relaying through Redis failed (the event is dropped; the demo goes on serving). */
  readonly #relayFailed: (err: Error) => void

  constructor(
    app: Accelerator,
    proc: string,
    redisUrl: string | undefined,
    log: (line: string) => void,
  ) {
    this.#app = app
    this.proc = proc
    const onResponse = (message: unknown) => this.#onResponse(message as ResponseMessage)
    const generate = tracingChannel<unknown, GenerateContext>(CHANNELS.generate)
    // Two of the five events: Node subscribes to those given (the types ask for all five).
    const handlers = {
      start: (ctx: GenerateContext) => this.#onGenerate(ctx),
      asyncEnd: (ctx: GenerateContext) => this.#onGenerated(ctx),
    } as never
    subscribe(CHANNELS.response, onResponse)
    generate.subscribe(handlers)
    this.#unsubscribe = () => {
      unsubscribe(CHANNELS.response, onResponse)
      generate.unsubscribe(handlers)
    }
    this.#relayFailed = (err) =>
      log(
        `demo: relaying the dashboard's events through Redis failed (${err.message}); the cache fails open, the page misses them until Redis is back`,
      )
    if (redisUrl) {
      // While Redis is away, a publish fails at the first reconnection attempt, not after 20.
      const pub = new Redis(redisUrl, { maxRetriesPerRequest: 0 })
      this.#redis = { pub, sub: new Redis(redisUrl), channel: 'demo:activity' }
      this.#redis.sub.on('message', (_channel: string, json: string) =>
        this.#deliver(JSON.parse(json) as Event),
      )
      for (const client of [pub, this.#redis.sub]) client.on('error', this.#relayFailed)
    }
  }

  /** Subscribes to the other processes' events (Redis), and says hello so they send counters. */
  async start(): Promise<void> {
    if (this.#redis) {
      await this.#redis.sub.subscribe(this.#redis.channel)
      this.#emit({ type: 'hello', proc: this.proc })
    }
    this.#emit({ type: 'stats', proc: this.proc, stats: this.#app.stats() })
  }

  /**
   * Watches one request through the cache. Hooks `writeHead` before the accelerator does, so it
   * runs last, once the cache has decided and stored what it keeps: what it adds reaches the
   * browser only. The dashboard's own load reads it back from the Navigation Timing entry's
   * `serverTiming`, since a page cannot read its own response headers.
   */
  track(req: IncomingMessage, res: ServerResponse, browserNoStore: boolean): void {
    const row: Row = {
      kind: 'request',
      id: ++this.#seq,
      proc: this.proc,
      what: `${req.method} ${req.url}`,
      handlerRan: false,
      ms: 0,
    }
    const pending: Pending = { row, started: performance.now() }
    this.#pending.set(req, pending)
    const writeHead = res.writeHead
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      // The cache published its outcome (and the handler's start) before the headers go out.
      res.setHeader('server-timing', [
        `cache;desc="${row.outcome}"`,
        `handler;desc="${row.handlerRan ? 'ran' : 'skipped'}"`,
        `req;desc="${row.proc}#${row.id}"`,
      ])
      // The browser must ask every time, so that each reload shows this cache at work.
      if (browserNoStore) res.setHeader('cache-control', 'no-store')
      const sent = writeHead.apply(this, args as never)
      row.status = res.statusCode
      row.cacheStatus = String(res.getHeader('cache-status'))
      const by = res.getHeader('x-rendered-by')
      if (by !== undefined) row.renderedBy = String(by)
      return sent
    } as ServerResponse['writeHead']
    // The last byte handed to the socket ('close' may come a few turns of the event loop later).
    // A request whose client went away before that is not logged.
    res.once('finish', () => {
      row.ms = Math.round(performance.now() - pending.started)
      this.#record(row)
    })
  }

  /** Logs a purge the dashboard (or curl) asked for. */
  purged(what: string, entries: number): void {
    this.#record({
      kind: 'purge',
      id: ++this.#seq,
      proc: this.proc,
      what,
      handlerRan: false,
      ms: 0,
      entries,
    })
  }

  /** Serves the event stream: what happened so far, then each event as it happens. */
  stream(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
    const rows = this.#rows.map((row): Event => ({ type: 'row', row }))
    const stats = [...this.#stats].map(([proc, s]): Event => ({ type: 'stats', proc, stats: s }))
    res.write(
      `event: init\ndata: ${JSON.stringify({ me: this.proc, events: [...stats, ...rows] })}\n\n`,
    )
    this.#clients.add(res)
    res.once('close', () => this.#clients.delete(res))
  }

  /** The counters of every process heard from, by process. */
  stats(): Record<string, Stats> {
    return Object.fromEntries(this.#stats)
  }

  /** Call once the server and the accelerator are closed: nothing is left to report. */
  close(): void {
    this.#unsubscribe()
    // Not quit(): with Redis away it would wait for a reconnection.
    this.#redis?.pub.disconnect()
    this.#redis?.sub.disconnect()
  }

  #onResponse(message: ResponseMessage): void {
    if (message.accelerator !== this.#app) return
    const pending = this.#pending.get(message.req)
    if (pending) pending.row.outcome = message.outcome
  }

  #onGenerate(ctx: GenerateContext): void {
    if (ctx.accelerator !== this.#app) return
    if (ctx.background) this.#backgroundStarts.set(ctx, performance.now())
    else {
      const pending = this.#pending.get(ctx.req)
      if (pending) pending.row.handlerRan = true
    }
  }

  /**
   * A generation is over, its response stored or known not to be: after its request's row went
   * out (a store write ends after the response), so the counters moved again. A background
   * refresh (a stale entry served, soft purge) has no response: it gets its own row.
   */
  #onGenerated(ctx: GenerateContext): void {
    if (ctx.accelerator !== this.#app) return
    const started = this.#backgroundStarts.get(ctx)
    if (started === undefined)
      return this.#emit({ type: 'stats', proc: this.proc, stats: this.#app.stats() })
    const ms = Math.round(performance.now() - started)
    const what = `${ctx.req.method} ${ctx.req.url}`
    this.#record({
      kind: 'refresh',
      id: ++this.#seq,
      proc: this.proc,
      what,
      handlerRan: true,
      ms,
      renderedBy: this.proc,
    })
  }

  #record(row: Row): void {
    this.#emit({ type: 'row', row })
    this.#emit({ type: 'stats', proc: this.proc, stats: this.#app.stats() })
  }

  /** To every process's dashboards: through Redis when there, else straight to this one's. */
  #emit(event: Event): void {
    if (this.#redis)
      this.#redis.pub.publish(this.#redis.channel, JSON.stringify(event)).catch(this.#relayFailed)
    else this.#deliver(event)
  }

  #deliver(event: Event): void {
    // Another process started: send it our counters, which it has not seen yet.
    if (event.type === 'hello') {
      if (event.proc !== this.proc)
        this.#emit({ type: 'stats', proc: this.proc, stats: this.#app.stats() })
      return
    }
    if (event.type === 'row') {
      this.#rows.push(event.row)
      if (this.#rows.length > BACKLOG) this.#rows.shift()
    } else this.#stats.set(event.proc, event.stats)
    const data = `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`
    for (const client of this.#clients) client.write(data)
  }
}
