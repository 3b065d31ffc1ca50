/**
 * Background refreshes of stale entries (stale-while-revalidate, soft invalidation): at most
 * `backgroundConcurrency` at a time, each on an exchange with no client behind it (background.ts).
 */
import type { IncomingMessage } from 'node:http'
import pLimit, { type LimitFunction } from 'p-limit'
import type { AcceleratedResponse } from '../types.js'
import { backgroundExchange, type Exchange } from './background.js'
import type { Flights } from './flights.js'
import type { Miss, Run } from './generate.js'
import type { HandlerRun } from './run-handler.js'
import type { Counts } from './store-write.js'

/** Background refreshes queued per concurrent slot; beyond, dropped (a later request asks anew). */
const QUEUED_REFRESHES_PER_SLOT = 100

type Generate = (
  req: IncomingMessage,
  res: AcceleratedResponse,
  run: Run,
  miss: Miss,
) => Promise<void>

export class Refreshes {
  readonly #limit: LimitFunction
  readonly #exchanges = new Set<Exchange>()

  constructor(
    readonly concurrency: number,
    private readonly flights: Flights,
    private readonly counts: Counts,
    private readonly generate: Generate,
    private readonly runHandler: HandlerRun,
  ) {
    this.#limit = pLimit(concurrency)
  }

  /** One background regeneration of a stale entry; its failures go to onError only. */
  start(from: IncomingMessage, gen: Miss): void {
    if (this.#limit.pendingCount >= this.concurrency * QUEUED_REFRESHES_PER_SLOT) return
    this.counts.refreshes++
    const flight = this.flights.start(gen.key)
    // The cache's own request: the client's headers (for Vary) without its cache directives.
    const { 'cache-control': _cc, pragma: _pragma, ...headers } = from.headers
    // No client to answer: a handler that throws just ends the exchange (reported once).
    void this.#limit(async () => {
      const exchange = backgroundExchange(from, headers)
      const res = exchange.res as AcceleratedResponse
      res.locals = {}
      this.#exchanges.add(exchange)
      try {
        const aborting = () => (exchange.abort(), true)
        const run: Run = (_, demand) =>
          this.runHandler(exchange.req, res, aborting, 'refresh', demand)
        await this.generate(exchange.req, res, run, { ...gen, flight, background: true })
      } finally {
        this.#exchanges.delete(exchange)
      }
    })
  }

  /** Drops the queued refreshes and aborts the running ones (their handlers' writes fail). */
  close(): void {
    this.#limit.clearQueue()
    for (const exchange of this.#exchanges) exchange.abort()
  }
}
