/** Reporting failures that never reach a client: store errors, handler errors, bad tags. */

/**
 * What failed: a store call (`get`, `checkpoint`, `set`; `invalidate`, the drop after an unsafe
 * method), the handler (`handler`; `refresh` when it ran for a background refresh), what the
 * handler set (`cacheFor`, `tags`), the key function (`key`), memoize with a result it cannot
 * store (`value`), a lease across processes (`lease`: taking, releasing it), or a defect of the
 * accelerator itself (`accelerate`).
 */
export type ErrorOp =
  | 'get'
  | 'checkpoint'
  | 'set'
  | 'invalidate'
  | 'handler'
  | 'refresh'
  | 'cacheFor'
  | 'tags'
  | 'key'
  | 'value'
  | 'accelerate'
  | 'lease'

/** What failed, for `onError`. */
export interface ErrorContext {
  /** The operation (see {@link ErrorOp}). */
  op: ErrorOp
  /** The cache key involved, when there is one. */
  key?: string
}

/** Receives every failure the accelerator swallows to keep serving. */
export type ErrorHandler = (err: Error, context: ErrorContext) => void

/**
 * The default `onError`: logs the first error of a burst with `console.error`, then stays quiet
 * for `quietMs`, counting what it did not log, so that a store outage at 10k req/s writes one
 * line every `quietMs` rather than 10k lines a second. An expected outage (an error a store marks
 * `outage: true`, see `src/store.ts`) is one line, its message: its stack says nothing more.
 */
export function logOncePerBurst(
  now: () => number,
  quietMs = 10_000,
  log: (line: string) => void = console.error,
): ErrorHandler {
  let loggedAt = -Infinity
  let unlogged = 0
  return (err, { op, key }) => {
    const at = now()
    if (at - loggedAt < quietMs) {
      unlogged++
      return
    }
    const more =
      unlogged > 0 ? ` (${unlogged} more errors in the previous burst were not logged)` : ''
    log(
      `node-accelerator: ${op} failed${key === undefined ? '' : ` for ${JSON.stringify(key)}`}: ${(err as { outage?: unknown }).outage === true ? err.message : (err.stack ?? err.message)}${more}`,
    )
    loggedAt = at
    unlogged = 0
  }
}

/** Wraps a user's `onError` so that nothing it throws can reach the request path. */
export function safeReporter(onError: ErrorHandler, onCount: () => void): ErrorHandler {
  return (err, context) => {
    onCount()
    try {
      onError(err instanceof Error ? err : new Error(String(err)), context)
    } catch {
      // A failing error handler has nowhere left to report to; serving goes on.
    }
  }
}
