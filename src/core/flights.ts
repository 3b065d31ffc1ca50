/**
 * Coalescing: the generations in progress, by key. A request that finds one it may join waits on
 * it (see generation.ts) instead of running the handler again; one that finds none, or one past
 * its wait bound, starts the next, registered here at once so that the requests after it wait.
 */
import { Generation } from './generation.js'

/**
 * How long a key whose response could not be shared goes uncoalesced (Varnish's hit-for-miss,
 * whose default `beresp.uncacheable` TTL is the same 120 s), unless a shareable one comes first.
 */
export const PASS_MS = 120_000
/** Keys remembered so; past that, the oldest marked is forgotten (it coalesces again). */
export const PASS_KEYS = 10_000

export class Flights {
  readonly #generations = new Map<string, Generation>()
  /** Hit-for-miss: keys whose last response could not be shared, and until when (see passes). */
  readonly #passing = new Map<string, number>()
  /** What gives up a generation's lease across processes (lease.ts) once it lands. */
  readonly #leases = new Map<Generation, (alone: boolean) => void>()

  /**
   * @param waitMs how long a request waits for another's status and headers; 0 never waits
   * @param now the accelerator's clock
   */
  constructor(
    private readonly waitMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * Whether a request for `key` runs on its own, without waiting on or leading a generation:
   * the key's last response could not be shared (Set-Cookie, private, not opted in, ...), so
   * waiting for the next one would only queue each request behind another's handler run. The
   * first response that can be shared again ends it (see {@link shareable}).
   */
  passes(key: string): boolean {
    const until = this.#passing.get(key)
    if (until === undefined) return false
    if (this.now() < until) return true
    this.#passing.delete(key)
    return false
  }

  /** The response generated for `key` could not be shared: the next requests run on their own. */
  unshareable(key: string): void {
    this.#passing.delete(key)
    this.#passing.set(key, this.now() + PASS_MS)
    if (this.#passing.size > PASS_KEYS) this.#passing.delete(this.#passing.keys().next().value!)
  }

  /** The response generated for `key` can be shared: requests for it coalesce again. */
  shareable(key: string): void {
    this.#passing.delete(key)
  }

  /** The generation registered for `key`, joinable or not (a background refresh, say). */
  get(key: string): Generation | undefined {
    return this.#generations.get(key)
  }

  /** The generation a request for `key` arriving now waits on, if any. */
  joinable(key: string): Generation | undefined {
    const generation = this.#generations.get(key)
    return this.waitMs > 0 && generation?.joinable ? generation : undefined
  }

  /**
   * Registers a new generation for `key`. Started past the wait bound of a slow one, it hedges
   * it: it has no bound of its own, and its waiters take whichever of the two serves first.
   */
  start(key: string): Generation {
    const current = this.#generations.get(key)
    const slow = this.waitMs > 0 && current?.slow ? current : undefined
    const generation = new Generation(key, slow ? Infinity : this.waitMs, slow)
    this.#generations.set(key, generation)
    return generation
  }

  /** Registers it under the key of the variant it produces too, unless one runs there. */
  alias(key: string, generation: Generation): void {
    if (!this.#generations.has(key)) this.#generations.set(key, generation)
  }

  /** Its lease across processes, given up when it lands (alone: its response was not shareable). */
  hold(generation: Generation, release: (alone: boolean) => void): void {
    this.#leases.set(generation, release)
  }

  /**
   * Forgets it (its entry is stored, or will not be): its waiters go on to the next one, and so
   * do other processes' (its lease is released; alone when the key now passes: hit-for-miss).
   */
  land(generation: Generation, keys: readonly string[]): void {
    generation.end()
    const release = this.#leases.get(generation)
    if (release !== undefined) {
      this.#leases.delete(generation)
      release(this.passes(generation.key))
    }
    for (const key of keys)
      if (this.#generations.get(key) === generation) this.#generations.delete(key)
  }

  /** An invalidation: requests from now on start new generations (no stale resurrection). */
  seal(): void {
    for (const generation of this.#generations.values()) generation.seal()
  }

  /** Releases every waiter and forgets every generation (on close: no timer outlives it). */
  clear(): void {
    for (const generation of this.#generations.values()) generation.end()
    this.#generations.clear()
    this.#passing.clear()
    for (const release of this.#leases.values()) release(false)
    this.#leases.clear()
  }
}
