/**
 * Looking a request up in the store: its entry at the base key, or at its variant when the base
 * holds a vary record. A store that fails is reported and the request goes on as a miss
 * (`storeDown`): a cache that cannot read is no reason to fail the request.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { CacheEntry, CacheStore } from '../store.js'
import type { ErrorHandler } from './report.js'
import { variantKey } from '../http/vary.js'
import { storeCallsTraced } from './diagnostics.js'

/** What a lookup found: the key looked at, its entry, the vary record on the way; a store down. */
export interface Lookup {
  key: string
  entry?: CacheEntry | undefined
  record?: CacheEntry
  storeDown?: true
}

/** The lookup of one accelerator. */
export function lookupIn(
  store: CacheStore,
  opts: { normalizeVary: boolean },
  report: ErrorHandler,
) {
  /**
   * At once from a store that can answer synchronously (its `peek`), so that a hit makes no
   * promise and waits for no turn; else, or when `peek` cannot tell (`null`), through `get`.
   */
  const peek = store.peek?.bind(store)
  // A variant's entry at once too, unless the store cannot tell: made once, not per hit.
  const peekOrGet = (key: string) => {
    const entry = peek!(key)
    return entry === null ? store.get(key) : entry
  }
  const get = (key: string) => store.get(key)
  return function lookupNow(base: string, headers: IncomingHttpHeaders): Lookup | Promise<Lookup> {
    if (peek === undefined || storeCallsTraced()) return lookup(base, headers)
    try {
      const first = peek(base)
      if (first === null) return lookup(base, headers)
      const found = variantOf(base, first, headers, peekOrGet)
      return found instanceof Promise ? found.catch((err: unknown) => failed(base, err)) : found
    } catch (err) {
      return failed(base, err)
    }
  }

  async function lookup(base: string, headers: IncomingHttpHeaders): Promise<Lookup> {
    try {
      return await variantOf(base, await store.get(base), headers, get)
    } catch (err) {
      return failed(base, err)
    }
  }

  /** The entry at `base`, or, when it is a vary record, the one at the request's variant. */
  function variantOf<R extends CacheEntry | undefined | Promise<CacheEntry | undefined>>(
    base: string,
    first: CacheEntry | undefined,
    headers: IncomingHttpHeaders,
    read: (key: string) => R,
  ): Lookup | Promise<Lookup> {
    if (first?.variesOn === undefined) return { key: base, entry: first }
    const key = variantKey(base, first.variesOn, headers, opts.normalizeVary)
    const entry = read(key)
    if (entry instanceof Promise)
      return entry.then((found) => ({ key, entry: found, record: first }))
    return { key, entry: entry as CacheEntry | undefined, record: first }
  }

  function failed(base: string, err: unknown): Lookup {
    report(err as Error, { op: 'get', key: base })
    return { key: base, storeDown: true }
  }
}
