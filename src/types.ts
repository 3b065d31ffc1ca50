/** The public types of the accelerator. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { InvalidateOptions } from './store.js'
import type { Body } from './core/body.js'
import type { AppMemoizeOptions, Memoized } from './memoize/memoize.js'
import type { InvalidateUrlOptions } from './core/invalidation.js'

/** The response a handler gets: Node's, plus what it may tell the cache. */
export type AcceleratedResponse = ServerResponse & {
  /** Seconds to store this response for (overrides its headers for the cache, not for clients). */
  cacheFor?: number
  /** Tags that `invalidateTags` drops this response by: an array, a Set, or one string. */
  tags?: Iterable<string> | string
  /** Per-response locals (created when the framework did not): `cacheFor` and `tags` work here too. */
  locals: Record<string, any>
}

/** A request handler; it may write `res` itself, return a {@link Body}, or both (headers, then a body). */
export type Handler = (
  req: IncomingMessage,
  res: AcceleratedResponse,
) => void | Body | ServerResponse | Promise<void | Body | ServerResponse>

/** Counters since the accelerator was created, plus the store's size when it knows it. */
export interface Stats {
  /** Requests answered from the cache (304s answered from the cache included). */
  hits: number
  /** Lookups that found nothing fresh, so the handler ran. */
  misses: number
  /** Stale entries served (stale-while-revalidate, soft invalidation, stale-if-error). */
  staleHits: number
  /** `304 Not Modified` answers, from the cache or before a lazy body was generated. */
  notModified: number
  /** Responses stored. */
  stores: number
  /** Body bytes stored, summed over every store. */
  bytesStored: number
  /** Requests passed straight through: other methods, `unless`, after `close()`. */
  bypasses: number
  /** Failures reported to `onError`. */
  errors: number
  /** Requests that waited for another request's generation of the same key (coalescing). */
  coalesced: number
  /** Stale entries the handler confirmed with a 304: refreshed without regenerating the body. */
  revalidations: number
  /** Background refreshes started (stale-while-revalidate, soft invalidation). */
  refreshes: number
  /** Entries held by the store, when it knows. */
  entries?: number
  /** Bytes held by the store, when it knows. */
  bytes?: number
}

/** The listener returned by {@link accelerate}, with the cache's controls attached. */
export interface Accelerator {
  (req: IncomingMessage, res: ServerResponse): void
  /** The same accelerator as Connect/Express middleware, caching what the rest of the stack writes. */
  middleware: (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void
  /**
   * Drops (or with `soft`, marks stale) every entry carrying any of `tags` (an array, a Set, any
   * iterable of strings, or one string); resolves how many.
   */
  invalidateTags(tags: Iterable<string> | string, options?: InvalidateOptions): Promise<number>
  /**
   * Drops what a URL names, every variant included; resolves how many entries. An absolute URL:
   * that URL (its host wins over `host`). A path with `host`: that URL. A path alone: that path
   * and query under every host it is stored under. Keyed as written, never resolved.
   */
  invalidate(url: string, options?: InvalidateUrlOptions): Promise<number>
  /** Drops every entry of this accelerator's namespace. */
  clear(): Promise<void>
  stats(): Stats
  /** Waits for pending stores, then closes the store if the accelerator created it. */
  close(): Promise<void>
  /** {@link memoize} on this accelerator's store, namespace, clock and onError. */
  memoize<A extends unknown[], R>(
    fn: (...args: A) => R | Promise<R>,
    options?: AppMemoizeOptions<A>,
  ): Memoized<A, Awaited<R>>
}
