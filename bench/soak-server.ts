/**
 * The server of the soak runs (bench/soak.ts), in a process of its own: an accelerated app on a
 * MemoryStore or a RedisStore, whose pages take `handlerMs` to render, are tagged by group and
 * stored for 10 s. Routes under /__ are the runner's: they bypass the cache.
 *   POST /__invalidate?tag=T   app.invalidateTags([T])
 *   GET  /__stats              app.stats(), process.memoryUsage(), errors reported to onError
 *   POST /__gc                 a full garbage collection (the process runs with --expose-gc)
 * It sends its port to the runner over IPC once it listens.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { accelerate, MemoryStore, type CacheStore } from '../src/index.js'
import { RedisStore } from '../stores/redis.js'

export interface SoakServerSpec {
  store: 'memory' | 'redis'
  redisUrl?: string
  /** MemoryStore budget, bytes. */
  maxBytes?: number
  handlerMs: number
  bodyBytes: number
}

const spec = JSON.parse(process.argv[2] ?? '{}') as SoakServerSpec
const body = Buffer.alloc(spec.bodyBytes, 'x')
const reported: Record<string, number> = {}
let store: CacheStore
if (spec.store === 'redis') {
  const redis = new RedisStore({ url: spec.redisUrl, timeoutMs: 100 })
  await redis.ready()
  store = redis
} else store = new MemoryStore({ maxBytes: spec.maxBytes ?? 64 * 1024 * 1024 })

const app = accelerate(
  async (req, res) => {
    await new Promise((resolve) => setTimeout(resolve, spec.handlerMs))
    const n = Number(/\d+/.exec(req.url ?? '')?.[0] ?? 0)
    res.cacheFor = 10
    res.tags = [`group:${n % 10}`]
    res.setHeader('content-type', 'text/plain')
    return body
  },
  {
    store,
    unless: (req) => req.url!.startsWith('/__'),
    // Counted, not logged: an outage would otherwise flood the runner's terminal.
    onError: (_err, { op }) => void (reported[op] = (reported[op] ?? 0) + 1),
  },
)

const server = http.createServer(async (req, res) => {
  if (req.url!.startsWith('/__invalidate') && req.method === 'POST') {
    const tag = new URL(req.url!, 'http://x').searchParams.get('tag') ?? ''
    const count = await app.invalidateTags([tag]).catch(() => -1)
    return res.end(String(count))
  }
  if (req.url === '/__stats') {
    res.setHeader('content-type', 'application/json')
    return res.end(JSON.stringify({ stats: app.stats(), memory: process.memoryUsage(), reported }))
  }
  if (req.url === '/__gc' && req.method === 'POST') {
    ;(globalThis as { gc?: () => void }).gc?.()
    return res.end('collected')
  }
  app(req, res)
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () =>
  process.send?.({ port: (server.address() as AddressInfo).port }),
)
process.on('disconnect', () => process.exit(0))
