/**
 * node-accelerator/fastify: the accelerator as a Fastify 5 plugin.
 *
 * How it reuses the core: one `onRequest` hook runs the core's middleware mode on Fastify's own
 * `request.raw` / `reply.raw`. Fastify has matched the route by then (find-my-way runs before the
 * hooks, so route `config` is known), but nothing else has run: no body parsing, validation,
 * handler or serialization. Then one of two things happens.
 * - The core answers (a hit, a 304, a waiter served from a coalesced generation, an
 *   only-if-cached 504): it writes `reply.raw` itself and never calls `next`. Once the answer is
 *   finished (or the client is gone) the hook hijacks the reply and calls `done()`, so Fastify's
 *   lifecycle ends there: with the reply hijacked (and ended) Fastify skips everything after
 *   onRequest, and its onResponse hooks and request log still run, from the `finish` listener
 *   Fastify set up before the hooks.
 * - The core calls `next`: the hook calls `done()` and Fastify goes on exactly as without the
 *   plugin (parsing, validation, handler, onSend hooks such as @fastify/compress, serialization).
 *   Fastify ends with `reply.raw.writeHead` / `end` (or a pipe for streams), which the core's tee
 *   already watches: what Fastify sent is what is stored.
 * `reply.hijack()` for every request would skip Fastify on misses too; `app.inject` or
 * `app.routing` from a plain accelerator would route every miss twice. This way hits leave before
 * routing's costs and misses are ordinary Fastify requests.
 *
 * A stale-while-revalidate entry is refreshed by the first request that finds it stale (served
 * fresh from the route) while the others get the stale copy: middleware cannot run the route
 * without a client.
 */
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  RegisterOptions,
} from 'fastify'
import fp from 'fastify-plugin'
import { controlsOf, handedOn, middleware } from '../core/middleware.js'
import type { AccelerateOptions } from '../core/options.js'
import type { AcceleratedResponse, Accelerator } from '../types.js'

/** Tags for a route's responses: a list, one string, or computed from the request. */
export type RouteTags =
  Iterable<string> | string | ((request: FastifyRequest) => Iterable<string> | string)

/** The cache's controls on `app.accelerator`. */
export type FastifyAccelerator = Pick<
  Accelerator,
  'invalidateTags' | 'invalidate' | 'clear' | 'stats' | 'memoize'
>

declare module 'fastify' {
  interface FastifyInstance {
    /** The cache of node-accelerator/fastify: purges and counters. */
    accelerator: FastifyAccelerator
  }
  interface FastifyReply {
    /** Seconds to store this response for (node-accelerator); overrides the route's. */
    cacheFor: number | undefined
    /** Tags to purge this response by (node-accelerator); replace the route's. */
    tags: Iterable<string> | string | undefined
  }
  interface FastifyContextConfig {
    /** Seconds to store this route's responses for (node-accelerator). */
    cacheFor?: number
    /** Tags for this route's responses (node-accelerator). */
    tags?: RouteTags
  }
}

/** A response as the core reads it. */
type Raw = AcceleratedResponse

/** The plugin's options: the accelerator's. */
export type FastifyAcceleratorOptions = AccelerateOptions

/** What the plugin gets: its options, and Fastify's own for `register`. */
type Registered = FastifyAcceleratorOptions & RegisterOptions

async function plugin(app: FastifyInstance, options: FastifyAcceleratorOptions): Promise<void> {
  // Fastify hands its own register options (prefix, logLevel, logSerializers) to the plugin too.
  const { prefix: _p, logLevel: _l, logSerializers: _s, ...cacheOptions } = options as Registered
  const acc = middleware(cacheOptions)
  // close() is the app's (onClose, below).
  const { close: _close, ...controls } = controlsOf(acc)
  app.decorate('accelerator', controls)
  // The core reads res.cacheFor / res.tags: the reply's are the raw response's.
  app.decorateReply('cacheFor', {
    getter(this: FastifyReply) {
      return (this.raw as Raw).cacheFor
    },
    setter(this: FastifyReply, value: number | undefined) {
      ;(this.raw as Raw).cacheFor = value
    },
  })
  app.decorateReply('tags', {
    getter(this: FastifyReply) {
      return (this.raw as Raw).tags
    },
    setter(this: FastifyReply, value: Iterable<string> | string | undefined) {
      ;(this.raw as Raw).tags = value
    },
  })
  app.addHook('onRequest', (request, reply, done) => {
    const raw = reply.raw as Raw
    void handedOn(acc, request.raw, raw).then((miss) => {
      // A miss goes through Fastify; one the core answered ends Fastify's lifecycle here (see
      // the module's header).
      if (miss) routeDefaults(request, raw)
      else reply.hijack()
      done()
    })
  })
  app.addHook('onClose', () => acc.close())
}

/** The route's `config.cacheFor` / `config.tags`, unless the request set its own already. */
function routeDefaults(request: FastifyRequest, raw: Raw): void {
  const config = request.routeOptions.config as { cacheFor?: number; tags?: RouteTags }
  if (config.cacheFor !== undefined) raw.cacheFor ??= config.cacheFor
  if (config.tags === undefined || raw.tags !== undefined) return
  const tags = typeof config.tags === 'function' ? config.tags(request) : config.tags
  // An array of its own: a handler may push to reply.tags without changing the route's list.
  raw.tags = typeof tags === 'string' ? [tags] : [...tags]
}

/**
 * The plugin: `await app.register(accelerator, { store, ...options })`. Hooks apply to the whole
 * app (fastify-plugin): register it before the routes it should cache.
 */
const accelerator: FastifyPluginAsync<FastifyAcceleratorOptions> = fp(plugin, {
  fastify: '5.x',
  name: 'node-accelerator',
})
export default accelerator
