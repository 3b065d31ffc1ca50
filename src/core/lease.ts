/**
 * One generation per key across processes, on a store that leases (CacheStore.lease: RedisStore).
 *
 * Local coalescing first: only the request about to lead a generation in this process asks for
 * the lease (one lease per process-level flight, never per waiter). Held: it generates, and the
 * lease goes when the generation lands (Flights.land), after its entry is stored or known not
 * to be. Busy: it waits for the holder's release (its local waiters wait on its flight), then
 * looks the key up again: a fresh entry is a hit from the store, served to it and its waiters;
 * else it tries again, within `coalesceTimeoutMs` in all. A holder whose response could not be
 * shared releases the waiters alone: each generates its own, as in-process coalescing does.
 *
 * Fail open, as with every store call: a claim that fails or times out is reported and the
 * request generates at once; a wait never outlasts the request's bound.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { CacheEntry, CacheStore, LeaseClaim } from '../store.js'
import type { Flights } from './flights.js'
import type { Miss } from './generate.js'
import type { ErrorContext } from './report.js'
import type { Lookup } from './lookup.js'

/** The shortest lease; else half the wait bound, so a dead holder's lease expires within it. */
const MIN_LEASE_MS = 200

/** How long a lease lives past its last renewal (the store renews it every third of that). */
export function leaseMs(coalesceTimeoutMs: number): number {
  return Math.max(MIN_LEASE_MS, Math.ceil(coalesceTimeoutMs / 2))
}

interface Parts {
  store: CacheStore
  flights: Flights
  /** `coalesceTimeoutMs`: the most a request waits, in this process or for another. */
  opts: { coalesceTimeoutMs: number; now: () => number }
  report: (err: Error, context: ErrorContext) => void
  lookup(base: string, headers: IncomingHttpHeaders): Lookup | Promise<Lookup>
  /** Serves a hit (accelerate's serveEntry). */
  hit(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    entry: CacheEntry,
    now: number,
    params: string,
  ): void
}

/**
 * The function a request calls when about to lead the generation of `miss.flight`: resolves
 * true when it served a hit stored meanwhile by another process (its flight landed), false when
 * it is to generate (holding the lease, or not: no lease, a failure, the bound passed).
 * `since`: when the request began waiting (performance.now()). Undefined for a store that does
 * not lease.
 */
export function leader(parts: Parts) {
  const { store, flights, report, opts } = parts
  // A store without leases: no lead at all, so that its misses wait for no extra turn.
  const lease = store.lease?.bind(store)
  if (lease === undefined) return undefined
  const waitMs = opts.coalesceTimeoutMs
  const ttlMs = leaseMs(waitMs)
  return async function lead(req: IncomingMessage, res: ServerResponse, miss: Miss, since: number) {
    const flight = miss.flight!
    // A hedge runs because a generation is slow: it must not wait on one again.
    if (miss.storeDown || flight.previous || miss.cc.has('no-store')) return false
    // Revalidating a stale entry: one is stored; asking whether one is would only cost a lookup.
    let ifAbsent = miss.stale === undefined
    for (;;) {
      let claim: LeaseClaim
      if (waitMs - (performance.now() - since) <= 0) return false
      try {
        claim = await lease(miss.key, ttlMs, ifAbsent)
      } catch (err) {
        report(err as Error, { op: 'lease', key: miss.key })
        return false
      }
      if (claim.kind === 'held') {
        const release = claim.release
        const failed = (err: Error) => report(err, { op: 'lease', key: miss.key })
        flights.hold(flight, (alone) => void release(alone).catch(failed))
        return false
      }
      if (claim.kind === 'busy') {
        const wake = await claim.wait(waitMs - (performance.now() - since))
        if (wake !== 'released' && wake !== 'expired') return false
      }
      const found = await parts.lookup(miss.base, req.headers)
      if (found.storeDown) return false
      const { key, entry } = found
      const now = opts.now()
      if (entry !== undefined && now < entry.staleAt) {
        // A hit from the store, for this request and the ones waiting on its flight.
        flight.serve(entry, key)
        flights.land(flight, [miss.key])
        parts.hit(req, res, key, entry, now, 'hit')
        return true
      }
      // Looked up just now: the next claim takes the lease unless another process holds it.
      ifAbsent = false
    }
  }
}
