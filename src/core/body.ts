/** Writing a body the handler returned instead of writing `res` itself. */
import type { ServerResponse } from 'node:http'

/** What a handler may return as the response body. */
export type Body =
  string | Uint8Array | Iterable<string | Uint8Array> | AsyncIterable<string | Uint8Array>

/** True for values the accelerator writes as a body. */
export function isBody(value: unknown): value is Body {
  if (typeof value === 'string' || value instanceof Uint8Array) return true
  return (
    typeof value === 'object' &&
    value !== null &&
    (Symbol.asyncIterator in value || Symbol.iterator in value)
  )
}

/** What the cache asks of a returned body. */
export interface Demand {
  /** The client's copy is current and nobody else needs the body: answer 304, start nothing. */
  notModified(): boolean
  /** Others read the body (coalescing): keep pulling it when this client goes away. */
  shared(): boolean
}

/**
 * Writes `body` to `res` and ends it. Iterables are pulled one chunk at a time, and the next
 * chunk is not asked for while `write()` says the client is behind (until `'drain'`). When the
 * client goes away, or `notModified()` says the client's copy is current before the first chunk,
 * the iterator is closed with `return()`: a generator that has not started never runs.
 */
export async function writeBody(res: ServerResponse, body: Body, demand: Demand): Promise<void> {
  if (typeof body === 'string' || body instanceof Uint8Array) {
    res.end(body)
    return
  }
  const iterator: Iterator<unknown> | AsyncIterator<unknown> =
    Symbol.asyncIterator in body ? body[Symbol.asyncIterator]() : body[Symbol.iterator]()
  let exhausted = false
  const wanted = () => !isGone(res) || demand.shared()
  try {
    // A lazy body: answer 304 from the headers the handler set, before generating anything.
    if (!res.headersSent && demand.notModified()) {
      res.end()
      return
    }
    while (wanted()) {
      const next = await iterator.next()
      if (next.done) {
        exhausted = true
        break
      }
      if (!res.write(next.value as string | Uint8Array)) await drained(res)
    }
  } finally {
    if (!exhausted) await iterator.return?.()
  }
  if (wanted()) res.end()
}

/**
 * Whether the response's connection is gone. HTTP/2's compatibility response has no `destroyed`:
 * its stream has (Node 20 lib/internal/http2/compat.js).
 */
export function isGone(res: ServerResponse): boolean {
  return res.destroyed ?? (res as { stream?: { destroyed: boolean } }).stream?.destroyed === true
}

/** Resolves on `'drain'`, or at once when the response is gone (no drain would ever come). */
export function drained(res: ServerResponse): Promise<void> {
  if (isGone(res)) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}
