/**
 * The server of the soak runs (bench/soak.ts), in a process of its own (several of them on one
 * Redis for the RedisStore runs): an accelerated app on a MemoryStore or a RedisStore (with or
 * without `localCache`), whose pages take `handlerMs` to render, are tagged by group and stored
 * for 10 s. Routes under /__ are the runner's: they bypass the cache.
 *   POST /__version?group=G&v=N  pages of group G render version N from now on (never lowered)
 *   POST /__invalidate?tag=T     app.invalidateTags([T]); answers the count, or -1 when it rejected
 *   GET  /__stats                app.stats(), process.memoryUsage(), errors reported to onError,
 *                                the local cache's state and how many reads it answered
 *   POST /__gc                   a full garbage collection (the process runs with --expose-gc)
 * A page's body starts with the line `<group> <version>`, the group's version when its render
 * began (as a page reads its data from a database), then `x` up to `bodyBytes`: the runner bumps
 * the version in every process before it purges the group's tag, and so knows a stale page when
 * it sees one. Each response says where its store read found the entry (`x-soak-read`, below).
 * It sends its port to the runner over IPC once it listens.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { accelerate, MemoryStore, type CacheStore } from '../src/index.js'
import { RedisStore } from '../stores/redis.js'
import { localCacheOf } from '../stores/local-cache.js'

export interface SoakServerSpec {
  store: 'memory' | 'redis'
  redisUrl?: string
  /** RedisStore's timeoutMs. @default 100 */
  timeoutMs?: number
  /** MemoryStore budget, bytes. */
  maxBytes?: number
  /** RedisStore's `localCache` option (absent: no local cache). */
  localCache?: { maxBytes: number }
  handlerMs: number
  bodyBytes: number
}

export interface SoakServerStats {
  stats: Record<string, number>
  memory: NodeJS.MemoryUsage
  reported: Record<string, number>
  /** The local cache, when the store has one: copies held, whether it is live, reads it answered. */
  local?: { entries: number; bytes: number; live: boolean; hits: number }
}

const spec = JSON.parse(process.argv[2] ?? '{}') as SoakServerSpec
const reported: Record<string, number> = {}
const versions = new Map<number, number>()
let store: CacheStore
let localHits = 0
/** The response of the request a store read is for (to mark where its entry came from). */
const responses = new AsyncLocalStorage<http.ServerResponse>()
if (spec.store === 'redis') {
  const redis = new RedisStore({
    url: spec.redisUrl,
    timeoutMs: spec.timeoutMs ?? 100,
    localCache: spec.localCache,
  })
  await redis.ready()
  store = redis
} else store = new MemoryStore({ maxBytes: spec.maxBytes ?? 64 * 1024 * 1024 })
const local = localCacheOf(store)
{
  // Marks each response with where its store read found the entry (`x-soak-read`): `local` (a
  // local copy held when the read started, served unless it expired: rare with pages stored for
  // 10 s and purged ten times a second), `store` (the store proper), `none`: a hit whose read
  // found none was shared from a generation in flight in this process (a miss has no mark).
  const get = store.get.bind(store)
  store.get = (key) => {
    const held = local?.has(key) === true
    if (held) localHits++
    const res = responses.getStore()
    return get(key).then((entry) => {
      if (res !== undefined && !res.headersSent)
        res.setHeader('x-soak-read', held ? 'local' : entry ? 'store' : 'none')
      return entry
    })
  }
}

const app = accelerate(
  async (req, res) => {
    const n = Number(/\d+/.exec(req.url ?? '')?.[0] ?? 0)
    const group = n % 10
    const head = `${group} ${versions.get(group) ?? 0}\n`
    await new Promise((resolve) => setTimeout(resolve, spec.handlerMs))
    // Set by this request's store read: not a header of the page (it would be stored with it).
    res.removeHeader('x-soak-read')
    res.cacheFor = 10
    res.tags = [`group:${group}`]
    res.setHeader('content-type', 'text/plain')
    const body = Buffer.alloc(Math.max(spec.bodyBytes, head.length), 'x')
    body.write(head)
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
  if (req.url!.startsWith('/__version') && req.method === 'POST') {
    const params = new URL(req.url!, 'http://x').searchParams
    const [group, version] = [Number(params.get('group')), Number(params.get('v'))]
    versions.set(group, Math.max(versions.get(group) ?? 0, version))
    return res.end(String(versions.get(group)))
  }
  if (req.url!.startsWith('/__invalidate') && req.method === 'POST') {
    const tag = new URL(req.url!, 'http://x').searchParams.get('tag') ?? ''
    const count = await app.invalidateTags([tag]).catch(() => -1)
    return res.end(String(count))
  }
  if (req.url === '/__stats') {
    const stats: SoakServerStats = {
      stats: app.stats() as unknown as Record<string, number>,
      memory: process.memoryUsage(),
      reported,
      ...(local && { local: { ...local.size(), live: local.live, hits: localHits } }),
    }
    res.setHeader('content-type', 'application/json')
    return res.end(JSON.stringify(stats))
  }
  if (req.url === '/__gc' && req.method === 'POST') {
    ;(globalThis as { gc?: () => void }).gc?.()
    return res.end('collected')
  }
  responses.run(res, () => app(req, res))
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () =>
  process.send?.({ port: (server.address() as AddressInfo).port }),
)
process.on('disconnect', () => process.exit(0))
