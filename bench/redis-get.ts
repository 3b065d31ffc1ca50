/**
 * RedisStore.get against the raw ioredis `getBuffer` it is built on, in one process, without
 * HTTP: what the store itself adds to a Redis hit, as CPU per operation. Steadier than the HTTP
 * rows on a shared machine (no load generator, no server scheduling): each round runs both,
 * alternating, and the ratio is the median of the per-round ratios.
 *
 *   npm run bench:redis-get            (needs redis-server; starts a private one)
 */
import { Redis } from 'ioredis'
import { RedisStore } from '../stores/redis.js'
import { RedisProcess } from './processes.js'

const ROUNDS = 7
const OPS = 20_000
const IN_FLIGHT = 50

/** CPU µs per operation of `op`, `IN_FLIGHT` at a time. */
async function cpuPerOp(op: () => Promise<unknown>): Promise<number> {
  const start = process.cpuUsage()
  for (let i = 0; i < OPS; i += IN_FLIGHT) await Promise.all(Array.from({ length: IN_FLIGHT }, op))
  const used = process.cpuUsage(start)
  return (used.user + used.system) / OPS
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!

const redis = await RedisProcess.start({ note: 'not pinned' })
if (!redis) throw new Error('redis-server is not installed')
const store = new RedisStore({ url: redis.url, prefix: 'get:', timeoutMs: 5000 })
const raw = new Redis(redis.url)
try {
  for (const size of [1024, 16 * 1024]) {
    const body = Buffer.alloc(size, 'x')
    const now = Date.now()
    const headers = {
      etag: '"v1"',
      date: new Date(now).toUTCString(),
      'content-length': String(size),
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'public, max-age=60',
    }
    await store.set(
      'page',
      {
        status: 200,
        headers,
        body,
        tags: ['a', 'b'],
        storedAt: now,
        initialAge: 0,
        staleAt: now + 3_600_000,
        expiresAt: now + 3_600_000,
      },
      await store.checkpoint(),
    )
    // The raw GET reads as many bytes as the store's entry holds.
    const frame = await raw.getBuffer('get:{k:page}v')
    await raw.set('raw', frame!)
    const rawGet = () => raw.getBuffer('raw')
    const storeGet = () => store.get('page')
    await cpuPerOp(rawGet)
    await cpuPerOp(storeGet)
    const rawUs: number[] = []
    const storeUs: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const [first, second] = round % 2 === 0 ? [rawGet, storeGet] : [storeGet, rawGet]
      const a = await cpuPerOp(first)
      const b = await cpuPerOp(second)
      rawUs.push(round % 2 === 0 ? a : b)
      storeUs.push(round % 2 === 0 ? b : a)
    }
    const ratios = rawUs.map((us, i) => us / storeUs[i]!)
    console.log(
      `${size / 1024} KiB: raw getBuffer ${median(rawUs).toFixed(2)} µs/op, RedisStore.get ${median(storeUs).toFixed(2)} µs/op (CPU); raw / store ${median(ratios).toFixed(3)} (range ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})`,
    )
  }
} finally {
  await store.close()
  raw.disconnect()
  redis.child.kill('SIGKILL')
}
