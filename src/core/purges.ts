/** Invalidations the accelerator runs: sealed against generations in flight, failures reported. */
import type { CacheStore } from '../store.js'
import type { ErrorHandler } from './report.js'
import type { Flights } from './flights.js'
import { variantsTag } from './variants.js'

export class Purges {
  constructor(
    private readonly store: CacheStore,
    private readonly flights: Flights,
    private readonly report: ErrorHandler,
  ) {}

  /**
   * An invalidation: once it is done, no generation that began before it serves anyone more
   * (those started while it ran included, which may have read the data before it changed).
   */
  sealing<T>(invalidation: Promise<T>): Promise<T> {
    return invalidation.finally(() => this.flights.seal())
  }

  /** Drops a resource: the entry at its base key (a response, or a vary record), every variant. */
  async dropResource(base: string): Promise<number> {
    const removed = await this.store.delete(base)
    const variants = await this.store.invalidateTags([variantsTag(base)])
    return variants > 0 ? variants : removed
  }

  /**
   * RFC 9111 §4.4: what an unsafe method changed (the target URL, and the same-origin URLs of its
   * Location and Content-Location, keyed as the store keyed them: see changedKeys, which nothing
   * from the request or the response can make throw). Failures are reported, never thrown.
   */
  dropAll(keys: readonly string[]): Promise<unknown> {
    const failed = (key: string) => (err: Error) => this.report(err, { op: 'invalidate', key })
    return Promise.all(keys.map((key) => this.dropResource(key).catch(failed(key))))
  }
}
