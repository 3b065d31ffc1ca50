/**
 * `accelerate.middleware(options)`: the accelerator in middleware mode alone, for Connect/Express
 * stacks (and the framework adapters), with no handler: the rest of the stack is the origin.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { accelerate } from '../accelerate.js'
import type { AccelerateOptions } from './options.js'
import type { Accelerator } from '../types.js'

/** A `(req, res, next)` middleware with the cache's controls attached. */
export type AcceleratorMiddleware = Accelerator['middleware'] & Omit<Accelerator, 'middleware'>

/** Middleware mode never calls a handler; should anything call it, the client gets a 500. */
/* c8 ignore next 4 */
function noHandler(_req: IncomingMessage, res: ServerResponse): void {
  res.statusCode = 500
  res.end()
}

/** Makes a middleware that caches what the rest of the stack writes; the same methods. */
export function middleware(options?: AccelerateOptions): AcceleratorMiddleware {
  const acc = accelerate(noHandler, options)
  return Object.assign(acc.middleware, controlsOf(acc))
}

/** The cache's controls of an accelerator, for what an adapter returns (its own function). */
export function controlsOf(acc: Omit<Accelerator, 'middleware'>) {
  const { invalidateTags, invalidate, clear, stats, close, memoize } = acc
  return { invalidateTags, invalidate, clear, stats, close, memoize }
}

/**
 * Runs the middleware on `req`/`res` for an adapter: resolves true when the core handed the
 * request on (a miss: the framework generates it, through the tee), false once the core answered
 * it itself (a hit, a 304, a request served by another's generation) or its client went away.
 */
export function handedOn(
  acc: AcceleratorMiddleware,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  return new Promise((resolve) => {
    const answered = () => resolve(false)
    res.once('finish', answered)
    res.once('close', answered)
    acc(req, res, () => {
      // The core calls next at most once, with no error, before it writes anything itself.
      res.off('finish', answered)
      res.off('close', answered)
      resolve(true)
    })
  })
}
