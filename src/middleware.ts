/**
 * `accelerate.middleware(options)`: the accelerator in middleware mode alone, for Connect/Express
 * stacks (and the framework adapters), with no handler: the rest of the stack is the origin.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { accelerate } from './accelerate.js'
import type { AccelerateOptions } from './options.js'
import type { Accelerator } from './types.js'

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
