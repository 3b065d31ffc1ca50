/**
 * One server per process: `node servers.js '<ServerSpec JSON>'`, started by the runner (pinned to
 * its own CPU) with an IPC channel. It listens on a free port, says `ready`, and answers the
 * runner's `sample` (CPU time, the accelerator's counters) and `phase` messages (background work
 * such as invalidations runs only while a measurement does). Nothing here runs per request
 * beyond the handler under test.
 */
import http, { type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  accelerate,
  MemoryStore,
  type AcceleratedResponse,
  type Accelerator,
  type CacheEntry,
  type CacheStore,
} from '../src/index.js'
import { drained } from '../src/core/body.js'
import {
  cpuUs,
  pageBody,
  type FromServer,
  type ServerSample,
  type ServerSpec,
  type ToServer,
} from './common.js'

// Express, apicache, ioredis and RedisStore are imported only by the servers that use them: the
// others start faster, and their profiles hold no module loading beyond their own.
const loadExpress = async () => (await import('express')).default
const loadRedis = async () => (await import('ioredis')).Redis
const loadRedisStore = async () => (await import('../stores/redis.js')).RedisStore

/**
 * Failures the accelerator swallowed (a store timing out, ...): counted and reported with each
 * sample instead of logged, so that the runner can call a run with any of them invalid.
 */
const swallowed = { count: 0, last: '' }
/**
 * GC pauses so far, µs. A change that makes V8 keep each request's objects through young-generation
 * collections (its allocation-site pretenuring can; see src/generate.ts's history) doubles a
 * miss's CPU without changing what the code does: this column shows it.
 */
let gcUs = 0
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcUs += entry.duration * 1000
}).observe({ entryTypes: ['gc'] })
const onError = (err: Error) => {
  swallowed.count++
  swallowed.last = err.message
}

/** The TTL of everything the hit scenarios store: far longer than any run. */
const TTL_S = 3600

/** A server under test: its listener, and what it does between and during measurements. */
interface Built {
  listener: RequestListener
  acc?: Accelerator
  /** Starts background work for a measurement (invalidations); `idle` stops it and restores state. */
  measure?(): void
  idle?(): Promise<void>
  invalidations?(): ServerSample['invalidations']
  close?(): Promise<void>
}

/** The page handler every hit scenario caches: opt in, tag, write the bytes in one end(). */
function pageHandler(body: Buffer) {
  return (_req: IncomingMessage, res: AcceleratedResponse) => {
    res.cacheFor = TTL_S
    res.tags = ['page']
    res.setHeader('content-type', 'text/html; charset=utf-8')
    res.end(body)
  }
}

/** Streams `total` bytes in `chunk`-sized writes, with backpressure; `storing` opts in to the cache. */
function streamHandler(total: number, chunkSize: number, storing: boolean) {
  const chunk = pageBody(chunkSize)
  return async (_req: IncomingMessage, res: ServerResponse) => {
    if (storing) {
      ;(res as AcceleratedResponse).cacheFor = TTL_S
      ;(res as AcceleratedResponse).tags = ['stream']
    }
    res.setHeader('content-type', 'application/octet-stream')
    for (let sent = 0; sent < total; sent += chunkSize) {
      if (!res.write(chunk) && !res.destroyed) await drained(res)
    }
    res.end()
  }
}

/**
 * An expensive body: 84 KiB of table rows, each formatted from a little arithmetic (about a
 * millisecond of CPU on this machine), yielded a row group at a time as a template engine would.
 */
async function* render(): AsyncGenerator<string> {
  for (let group = 0; group < 40; group++) {
    let html = ''
    for (let row = 0; row < 25; row++) {
      const n = group * 25 + row
      let x = n
      for (let i = 0; i < 20; i++) x = (x * 1103515245 + 12345) % 2147483648
      html += `<tr><td>${n}</td><td>${(x / 2147483648).toFixed(6)}</td><td>${x.toString(36).padStart(8, '0')}</td><td>row ${n} of the report</td></tr>\n`
    }
    yield html
  }
}
const REPORT_ETAG = '"report-42"'

/** Entries stored directly (the store's own API) for the cold part of invalidation under load. */
function coldEntry(body: Buffer, group: number, now: number): CacheEntry {
  return {
    status: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      date: new Date(now).toUTCString(),
      etag: `"cold-${group}"`,
      'content-length': String(body.length),
    },
    body,
    tags: [`group:${group}`, 'cold'],
    storedAt: now,
    initialAge: 0,
    staleAt: now + TTL_S * 1000,
    expiresAt: now + 2 * TTL_S * 1000,
  }
}

/**
 * `cold` entries in groups of 10 (tag `group:<n>`); while measuring, `rate` invalidateTags calls
 * a second, one group each, catching up when the event loop was late; back at idle, the dropped
 * groups are stored again so every measurement invalidates real entries.
 */
function invalidationLoad(acc: Accelerator, store: CacheStore, cold: number, rate: number) {
  const body = pageBody(1024)
  const groups = Math.ceil(cold / 10)
  let next = 0
  let timer: NodeJS.Timeout | undefined
  let dropped: number[] = []
  const totals = { count: 0, ms: 0, failed: 0 }
  // Groups stored at once: few enough in Redis that no write waits long.
  const perBatch = store instanceof MemoryStore ? 200 : 5
  async function fill(which: readonly number[]) {
    const since = await store.checkpoint()
    const now = Date.now()
    for (let i = 0; i < which.length; i += perBatch) {
      const stored = await Promise.all(
        which
          .slice(i, i + perBatch)
          .flatMap((group) =>
            Array.from({ length: 10 }, (_, j) =>
              store.set(`cold/${group}/${j}`, coldEntry(body, group, now), since),
            ),
          ),
      )
      if (!stored.every(Boolean)) throw new Error('a cold entry was not stored')
    }
  }
  return {
    fill: () => fill(Array.from({ length: groups }, (_, g) => g)),
    measure() {
      const start = performance.now()
      let issued = 0
      timer = setInterval(() => {
        const due = Math.floor(((performance.now() - start) / 1000) * rate)
        for (; issued < due; issued++) {
          const group = next++ % groups
          dropped.push(group)
          const t0 = performance.now()
          acc.invalidateTags([`group:${group}`]).then(
            () => {
              totals.count++
              totals.ms += performance.now() - t0
            },
            () => totals.failed++,
          )
        }
      }, 1000 / rate)
    },
    async idle() {
      clearInterval(timer)
      const refill = [...new Set(dropped)]
      dropped = []
      await fill(refill)
    },
    invalidations: () => ({ ...totals }),
  }
}

async function build(spec: ServerSpec): Promise<Built> {
  const body = pageBody(spec.size)
  switch (spec.app) {
    case 'ceiling':
    case 'ceiling-304': {
      // The best Node does with these bytes: precomputed headers and body, one writeHead, one end.
      const status = spec.app === 'ceiling' ? 200 : 304
      const headers = spec.headers!
      return {
        listener: (_req, res) => (
          res.writeHead(status, headers),
          res.end(status === 200 ? body : undefined)
        ),
      }
    }
    case 'acc-memory':
    case 'acc-redis': {
      let store: CacheStore
      if (spec.app === 'acc-redis') {
        const redisStore = new (await loadRedisStore())({
          url: spec.redisUrl!,
          prefix: spec.prefix!,
          ...(spec.timeoutMs ? { timeoutMs: spec.timeoutMs } : {}),
          ...(spec.localCacheBytes ? { localCache: { maxBytes: spec.localCacheBytes } } : {}),
        })
        await redisStore.ready()
        store = redisStore
      } else {
        store = new MemoryStore({
          maxEntries: (spec.cold ?? 0) + 1000,
          maxBytes: 1024 * 1024 * 1024,
        })
      }
      const acc = accelerate(pageHandler(body), { store, onError })
      const built: Built = { listener: acc, acc, close: () => (acc.close(), store.close()) }
      if (spec.cold) {
        // Stored through a store of the same prefix with a long timeout: setting up is not measured.
        let filler: CacheStore = store
        if (!(store instanceof MemoryStore)) {
          const redisFiller = new (await loadRedisStore())({
            url: spec.redisUrl!,
            prefix: spec.prefix!,
            timeoutMs: 5000,
          })
          await redisFiller.ready()
          filler = redisFiller
        }
        const load = invalidationLoad(acc, filler, spec.cold, spec.invalidateRate ?? 0)
        await load.fill()
        if (spec.invalidateRate)
          Object.assign(built, {
            measure: load.measure,
            idle: load.idle,
            invalidations: load.invalidations,
          })
      }
      return built
    }
    case 'redis-ceiling': {
      // The best Node does with Redis: one GET of the body bytes, then the precomputed headers.
      const redis = new (await loadRedis())(spec.redisUrl!)
      const key = `${spec.prefix}body`
      await redis.set(key, body)
      const headers = spec.headers!
      return {
        listener: (_req, res) => {
          redis.getBuffer(key).then(
            (bytes) => (res.writeHead(200, headers), res.end(bytes)),
            () => (res.writeHead(500), res.end()),
          )
        },
        close: async () => void (await redis.quit()),
      }
    }
    case 'redis-store-get': {
      // The Redis ceiling with RedisStore.get in place of the raw getBuffer: an entry stored as the
      // accelerator stores the page (the same frame layout and size), its body sent with the
      // ceiling's headers. What it adds to the ceiling is the store's share of a hit.
      const store = new (await loadRedisStore())({
        url: spec.redisUrl!,
        prefix: spec.prefix!,
        ...(spec.timeoutMs ? { timeoutMs: spec.timeoutMs } : {}),
      })
      await store.ready()
      const now = Date.now()
      const entry: CacheEntry = {
        status: 200,
        headers: {
          'content-type': 'text/html; charset=utf-8',
          'content-length': String(body.length),
        },
        body,
        tags: ['page'],
        storedAt: now,
        initialAge: 0,
        staleAt: now + TTL_S * 1000,
        expiresAt: now + 2 * TTL_S * 1000,
      }
      // Stored through a store of the same prefix with a long timeout: setting up is not measured.
      const filler = new (await loadRedisStore())({
        url: spec.redisUrl!,
        prefix: spec.prefix!,
        timeoutMs: 5000,
      })
      const stored = await filler.set('page', entry, await filler.checkpoint())
      await filler.close()
      if (!stored) throw new Error('the entry was not stored')
      const headers = spec.headers!
      return {
        listener: (_req, res) => {
          store.get('page').then(
            (hit) =>
              hit
                ? (res.writeHead(200, headers), res.end(hit.body))
                : (res.writeHead(500), res.end()),
            (err: Error) => (onError(err), res.writeHead(500), res.end()),
          )
        },
        close: () => store.close(),
      }
    }
    case 'bare-stream':
      return { listener: streamHandler(spec.size, spec.chunk!, false) }
    case 'acc-stream': {
      // Storing: a key of its own per request, so every request is a miss that stores (and the
      // LRU evicts as it fills). Not storing: one URL, so concurrent misses also coalesce and are
      // released when the first response turns out not storable, as for any uncacheable page;
      // or (`distinct`) a key per request, which leaves only the miss itself.
      let n = 0
      const distinct = spec.storing === true || spec.distinct === true
      const acc = accelerate(
        streamHandler(spec.size, spec.chunk!, spec.storing === true),
        distinct ? { key: () => `stream/${++n}`, onError } : { onError },
      )
      return { listener: acc, acc }
    }
    case 'bare-expensive':
      return {
        listener: async (_req, res) => {
          res.setHeader('etag', REPORT_ETAG)
          res.setHeader('content-type', 'text/html; charset=utf-8')
          for await (const part of render())
            if (!res.write(part) && !res.destroyed) await drained(res)
          res.end()
        },
      }
    case 'acc-lazy': {
      const acc = accelerate(
        (_req, res) => {
          res.setHeader('etag', REPORT_ETAG)
          res.setHeader('content-type', 'text/html; charset=utf-8')
          res.cacheFor = 60
          return render()
        },
        { onError },
      )
      return { listener: acc, acc }
    }
    case 'apicache-memory':
    case 'apicache-redis': {
      const [express, apicache] = [await loadExpress(), (await import('apicache')).default]
      let redis: InstanceType<Awaited<ReturnType<typeof loadRedis>>> | undefined
      if (spec.app === 'apicache-redis') {
        redis = new (await loadRedis())(spec.redisUrl!)
        await new Promise<void>((resolve) => redis!.once('ready', () => resolve()))
        // apicache 1.6 targets node_redis 2/3: it uses Redis only while `client.connected` is
        // true, which ioredis (Redis.status === 'ready') does not define; without this it silently
        // falls back to its memory cache. Its other calls (hgetall(key, cb), hset, expire, del)
        // are ioredis-compatible.
        const client = redis
        Object.defineProperty(client, 'connected', { get: () => client.status === 'ready' })
      }
      const cache = apicache.newInstance(redis ? { redisClient: redis } : {}).middleware('1 hour')
      const app = express()
      app.disable('x-powered-by')
      app.use(cache, (_req, res) => {
        res.setHeader('content-type', 'text/html; charset=utf-8')
        res.end(body)
      })
      return { listener: app, close: async () => void (await redis?.quit()) }
    }
    case 'acc-express': {
      const express = await loadExpress()
      const acc = accelerate(() => {}, { onError })
      const app = express()
      app.disable('x-powered-by')
      app.use(acc.middleware)
      app.use(pageHandler(body) as unknown as Parameters<typeof app.use>[0])
      return { listener: app, acc }
    }
  }
}

function send(message: FromServer): void {
  process.send!(message)
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]!) as ServerSpec
  const built = await build(spec)
  const server = http.createServer(built.listener)
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () =>
    send({ type: 'ready', port: (server.address() as AddressInfo).port }),
  )
  process.on('message', async (message: ToServer) => {
    switch (message.type) {
      case 'sample': {
        const sample: ServerSample = { cpuUs: cpuUs(), gcUs, errors: { ...swallowed } }
        if (built.acc) sample.stats = built.acc.stats() as unknown as Record<string, number>
        const invalidations = built.invalidations?.()
        if (invalidations) sample.invalidations = invalidations
        return send({ type: 'sample', id: message.id, sample })
      }
      case 'phase':
        if (message.phase === 'measure') built.measure?.()
        else await built.idle?.()
        return send({ type: 'phase', id: message.id })
      case 'exit':
        server.close()
        server.closeAllConnections()
        await built.close?.().catch(() => {})
        // process.exit writes a --cpu-prof profile, and ends whatever the server still holds.
        process.exit(0)
    }
  })
  // The runner gone (killed, crashed): never outlive it.
  process.on('disconnect', () => process.exit(0))
}

main().catch((err: Error) => {
  send({ type: 'error', message: err.message })
  process.exit(1)
})
