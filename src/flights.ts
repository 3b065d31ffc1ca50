/**
 * Coalescing: one generation per key at a time. Requests that find a generation under way wait
 * for its outcome instead of running the handler again, for at most a bounded time.
 */
import type { CacheEntry } from './store.js'

/** What a generation produced for the requests waiting on it. */
export interface Outcome {
  /** The entry to serve them: stored, or (stale-if-error) the stale one. */
  entry: CacheEntry
  /** The key it is stored under; a waiter of another variant must not be served it. */
  key: string
  /** Why it is served, for Cache-Status (`stale-if-error`). */
  detail?: string
}

/**
 * One generation in progress for a key. Most generations have no waiter, so the promise and the
 * timer bounding the wait are only made when a request first waits (a timer per miss cost about
 * a microsecond, measured in bench/); the bound still counts from the generation's start.
 */
export class Flight {
  readonly #waitUntil: number
  #settled = false
  #outcome: Outcome | undefined
  #waiting: Promise<Outcome | undefined> | undefined
  #resolve: ((outcome: Outcome | undefined) => void) | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(waitMs: number) {
    // Nobody waits longer than waitMs; the generation itself goes on and may still store.
    this.#waitUntil = performance.now() + waitMs
    if (waitMs <= 0) this.settle(undefined)
  }

  /**
   * Resolves what waiters are to be served: an outcome, or undefined when they must run the
   * handler themselves (the response is not storable, failed, or took too long). Only the
   * first call counts.
   */
  settle(outcome: Outcome | undefined): void {
    if (this.#settled) return
    this.#settled = true
    this.#outcome = outcome
    clearTimeout(this.#timer)
    this.#resolve?.(outcome)
  }

  /** The outcome, when there is one, or undefined at the latest after the wait bound. */
  wait(): Promise<Outcome | undefined> {
    if (this.#waiting) return this.#waiting
    const left = this.#waitUntil - performance.now()
    if (!this.#settled && left <= 0) this.settle(undefined)
    if (this.#settled) return (this.#waiting = Promise.resolve(this.#outcome))
    this.#waiting = new Promise((resolve) => (this.#resolve = resolve))
    this.#timer = setTimeout(() => this.settle(undefined), left).unref()
    return this.#waiting
  }
}

/** The generations in progress, by key. */
export class Flights {
  readonly #flights = new Map<string, Flight>()

  /** @param waitMs how long a request waits for another's generation; 0 never waits. */
  constructor(private readonly waitMs: number) {}

  get(key: string): Flight | undefined {
    return this.#flights.get(key)
  }

  /**
   * Registers a generation for `key`; `land()` removes it once the generation is over (it
   * settles the flight too, if nothing did). A key has at most one flight: so at most one
   * background refresh per key.
   */
  start(key: string): { flight: Flight; land: () => void } {
    const flight = new Flight(this.waitMs)
    this.#flights.set(key, flight)
    return {
      flight,
      land: () => {
        flight.settle(undefined)
        if (this.#flights.get(key) === flight) this.#flights.delete(key)
      },
    }
  }

  /** Releases every waiter and forgets every flight (on close: no timer outlives it). */
  clear(): void {
    for (const flight of this.#flights.values()) flight.settle(undefined)
    this.#flights.clear()
  }
}
