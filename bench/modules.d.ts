/**
 * The little of autocannon's and apicache's untyped APIs the bench uses (neither ships types and
 * no @types package is installed).
 */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  namespace autocannon {
    /** One connection; `pipelinedRequests.addBody` accumulates each response body into a string. */
    interface Client extends EventEmitter {
      pipelinedRequests: { addBody(data: Buffer): void }
    }
    interface Options {
      url: string
      connections?: number
      duration?: number
      amount?: number
      timeout?: number
      pipelining?: number
      method?: string
      headers?: Record<string, string>
      /** Called with each connection's client before it sends anything. */
      setupClient?: (client: Client) => void
    }
    interface Result {
      duration: number
      errors: number
      timeouts: number
      non2xx: number
      resets: number
      statusCodeStats: Record<string, { count: number }>
      requests: { total: number; average: number }
      latency: { p50: number; p99: number }
    }
    interface Instance extends EventEmitter {
      stop(): void
    }
  }
  function autocannon(
    options: autocannon.Options,
    callback: (err: Error | null, result: autocannon.Result) => void,
  ): autocannon.Instance
  export default autocannon
}

declare module 'apicache' {
  import type { IncomingMessage, ServerResponse } from 'node:http'

  namespace apicache {
    type Middleware = (
      req: IncomingMessage,
      res: ServerResponse,
      next: (err?: unknown) => void,
    ) => void
    interface Options {
      /** A node_redis-style client: `connected`, `hgetall(key, cb)`, `hset`, `expire`, `del`. */
      redisClient?: unknown
      defaultDuration?: string | number
      statusCodes?: { include?: number[]; exclude?: number[] }
      debug?: boolean
    }
    interface Instance {
      middleware(duration?: string | number, toggle?: unknown, options?: Options): Middleware
      options(options: Options): Instance
      newInstance(options?: Options): Instance
      clear(target?: string): unknown
    }
  }
  const apicache: apicache.Instance
  export default apicache
}
