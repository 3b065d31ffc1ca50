/**
 * Scenario 6a, in a process of its own: the time `invalidateTags` takes to drop one tag held by
 * `entries` entries, on MemoryStore or RedisStore (default options), through the accelerator's
 * own `invalidateTags`. Entries are stored with the store's `set` (1 KiB bodies, the headers a
 * real entry carries, tags `shared` and `item:<i>`), then the tag `shared` is dropped; repeated
 * `repeats` times on a fresh store. Prints one JSON line.
 *
 *   node --expose-gc invalidation.js '{"store":"memory","entries":100000,"repeats":3}'
 */
import { Redis } from 'ioredis'
import { accelerate, MemoryStore, type CacheEntry, type CacheStore } from '../src/index.js'
import { RedisStore } from '../stores/redis.js'
import { pageBody } from './common.js'

export interface InvalidationSpec {
  store: 'memory' | 'redis'
  entries: number
  repeats: number
  redisUrl?: string
  /** RedisStore's timeoutMs (its default, 100, when absent). */
  timeoutMs?: number
}

export interface InvalidationResult {
  store: 'memory' | 'redis'
  entries: number
  timeoutMs?: number
  /** invalidateTags time of each repeat, ms. */
  ms: number[]
  /** What each call resolved: the entries it dropped (should be `entries`). */
  dropped: number[]
  /** Time to store the entries, ms (first repeat). */
  fillMs: number
  /** Entries left at the end of each repeat that still answer a get (should be 0). */
  left: number[]
  error?: string
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})

function entry(body: Buffer, i: number, now: number): CacheEntry {
  return {
    status: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      date: new Date(now).toUTCString(),
      etag: `"e-${i}"`,
      'content-length': String(body.length),
    },
    body,
    tags: ['shared', `item:${i}`],
    storedAt: now,
    initialAge: 0,
    staleAt: now + 3_600_000,
    expiresAt: now + 7_200_000,
  }
}

async function fill(store: CacheStore, entries: number, body: Buffer): Promise<void> {
  const since = await store.checkpoint()
  const now = Date.now()
  // Concurrent batches, as an app filling a Redis cache from many requests would write.
  const batch = store instanceof RedisStore ? 100 : 10_000
  for (let i = 0; i < entries; i += batch) {
    const stored = await Promise.all(
      Array.from({ length: Math.min(batch, entries - i) }, (_, j) =>
        store.set(`item/${i + j}`, entry(body, i + j, now), since),
      ),
    )
    if (!stored.every(Boolean)) throw new Error(`store.set refused entries ${i}..${i + batch}`)
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]!) as InvalidationSpec
  const result: InvalidationResult = {
    store: spec.store,
    entries: spec.entries,
    ms: [],
    dropped: [],
    fillMs: 0,
    left: [],
  }
  if (spec.timeoutMs !== undefined) result.timeoutMs = spec.timeoutMs
  const body = pageBody(1024)
  const admin = spec.store === 'redis' ? new Redis(spec.redisUrl!) : undefined
  for (let r = 0; r < spec.repeats && result.error === undefined; r++) {
    const store =
      spec.store === 'memory'
        ? new MemoryStore({ maxEntries: spec.entries + 10, maxBytes: 4 * 1024 ** 3 })
        : new RedisStore({
            url: spec.redisUrl!,
            prefix: `inv${r}:`,
            ...(spec.timeoutMs ? { timeoutMs: spec.timeoutMs } : {}),
          })
    const acc = accelerate(() => {}, { store })
    let step = 'fill'
    // Stored through a store of the same prefix with a long timeout: setting up is not what is measured.
    const filler =
      store instanceof RedisStore
        ? new RedisStore({ url: spec.redisUrl!, prefix: `inv${r}:`, timeoutMs: 5000 })
        : store
    try {
      if (store instanceof RedisStore) await store.ready()
      if (filler instanceof RedisStore) await filler.ready()
      const t0 = performance.now()
      await fill(filler, spec.entries, body)
      if (r === 0) result.fillMs = performance.now() - t0
      gc()
      step = 'invalidateTags'
      const start = performance.now()
      const dropped = await acc.invalidateTags(['shared'])
      result.ms.push(performance.now() - start)
      result.dropped.push(dropped)
      step = 'check'
      let left = 0
      for (const i of [0, 1, spec.entries >> 1, spec.entries - 1])
        if (await store.get(`item/${i}`)) left++
      result.left.push(left)
    } catch (err) {
      result.error = `${step}: ${(err as Error).message}`
    }
    await acc.close()
    await store.close()
    if (filler !== store) await filler.close()
    await admin?.flushall()
  }
  await admin?.quit()
  console.log(JSON.stringify(result))
  process.exit(0)
}

await main()
