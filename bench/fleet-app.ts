/**
 * One app process of `npm run bench:fleet`: an accelerated server on a RedisStore with a local
 * cache and the lease (FLEET_REDIS_URL, FLEET_PREFIX). Each body names its process and render, so
 * the runner can tell a stale copy from a fresh one. `POST /invalidate?tag=T` purges T here.
 * It prints {"port": N} when listening, and its render count on `GET /renders`.
 */
import http from 'node:http'
import { accelerate } from '../src/index.js'
import { RedisStore } from '../stores/redis.js'
import { localCacheOf } from '../stores/local-cache.js'

const withLocal = process.env.FLEET_LOCAL !== '0'
const store = new RedisStore({
  url: process.env.FLEET_REDIS_URL,
  prefix: process.env.FLEET_PREFIX,
  timeoutMs: 2000,
  ...(withLocal ? { localCache: { maxBytes: 16 << 20 } } : {}),
})
await store.ready()
let renders = 0
const app = accelerate(
  (req, res) => {
    renders++
    res.cacheFor = 600
    res.tags = ['page']
    return `rendered by ${process.pid}, render ${renders}, ${req.url}`
  },
  { store },
)

const server = http.createServer(async (req, res) => {
  if (req.method === 'POST' && req.url === '/invalidate')
    return res.end(String(await app.invalidateTags(['page'])))
  if (req.url === '/renders') return res.end(String(renders))
  app(req, res)
})
// The local cache's stream up first: until then a process keeps no copies (it would measure nothing).
const local = localCacheOf(store)
while (local && !local.live) await new Promise((resolve) => setTimeout(resolve, 5))
server.listen(0, '127.0.0.1', () =>
  process.stdout.write(
    JSON.stringify({ port: (server.address() as { port: number }).port }) + '\n',
  ),
)
process.once('SIGTERM', () => {
  server.closeAllConnections()
  server.close()
  void app
    .close()
    .then(() => store.close())
    .then(() => process.exit(0))
})
