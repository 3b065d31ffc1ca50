/** node-accelerator: an HTTP response cache inside your Node.js process. */
export { accelerate } from './accelerate.js'
export {
  memoize,
  type MemoizeOptions,
  type AppMemoizeOptions,
  type Memoized,
} from './memoize/memoize.js'
export type { AcceleratedResponse, Accelerator, Handler, Stats } from './types.js'
export type { AccelerateOptions } from './core/options.js'
export type { Body } from './core/body.js'
export type { CacheEntry, CacheStore, Checkpoint, InvalidateOptions, StoreSize } from './store.js'
export type { ErrorContext, ErrorHandler, ErrorOp } from './core/report.js'
export type { InvalidateUrlOptions } from './core/invalidation.js'
export type { KeyRequest, KeyFunction } from './core/key.js'
// Tracing: the diagnostics channels' names and what they carry (docs/operations.md, "Metrics and tracing").
export { CHANNELS } from './core/diagnostics.js'
export type {
  EvictMessage,
  GenerateContext,
  InvalidateContext,
  Outcome,
  ResponseMessage,
  StoreContext,
} from './core/diagnostics.js'
// Cache policies per route, conditional handlers, and key helpers (docs/policies.md).
export {
  cachePolicy,
  noCache,
  noStore,
  type CachePolicy,
  type CachePolicyOptions,
  type PolicyTags,
} from './policies/cache-policy.js'
export { withEtag, type EtagValue } from './policies/with-etag.js'
export * as keys from './policies/keys.js'
export { MemoryStore, type MemoryStoreOptions } from '../stores/memory.js'
export { NullStore } from '../stores/null.js'
// The default key, for key functions that build on it.
export { defaultKey } from './core/key.js'
// The caching reverse proxy's pieces are under node-accelerator/proxy, the HTTP rules under
// node-accelerator/http: the root exports what applications call.
