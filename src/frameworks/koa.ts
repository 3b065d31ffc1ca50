/**
 * node-accelerator/koa: the accelerator as Koa middleware, `app.use(accelerator(options))`.
 *
 * How it reuses the core: the middleware runs the core's middleware mode on `ctx.req` / `ctx.res`,
 * with `ctx.state` as the response's locals, so `ctx.state.cacheFor` and `ctx.state.tags` are
 * what the core reads. When the core answers (a hit, a 304, a waiter served from a coalesced
 * generation), it writes `ctx.res` itself; once that is finished (or the client is gone) the
 * middleware returns with `ctx.respond = false`, Koa's own way to say the response was written
 * outside it, and the downstream middleware never runs. When the core calls `next`, the
 * downstream middleware runs, and Koa's response (string, Buffer, stream or JSON body, written to
 * `ctx.res` after the middleware) goes through the core's tee. A stale-while-revalidate entry is
 * refreshed by the first request that finds it stale while the others get the stale copy.
 */
import type { Context, Middleware, Next } from 'koa'
import { controlsOf, handedOn, middleware } from '../core/middleware.js'
import type { AccelerateOptions } from '../core/options.js'
import type { AcceleratedResponse, Accelerator } from '../types.js'

/** The Koa middleware, with the cache's controls attached. */
export type KoaAccelerator = Middleware & Omit<Accelerator, 'middleware'>

/** Makes the middleware: register it before the routes whose responses it should cache. */
export default function accelerator(options?: AccelerateOptions): KoaAccelerator {
  const acc = middleware(options)
  const run = async (ctx: Context, next: Next) => {
    const res = ctx.res as AcceleratedResponse
    // The core reads res.locals.cacheFor / res.locals.tags: they are ctx.state's.
    res.locals = ctx.state
    if (!(await handedOn(acc, ctx.req, res))) {
      // Answered by the core: Koa writes nothing more.
      ctx.respond = false
      return
    }
    await next()
  }
  return Object.assign(run, controlsOf(acc))
}
