// Sibling prefixes on one Redis: `p:` and `p:blog:` (one a prefix of the other), or `p[1]:`
// and `p1:` (glob characters), never touch each other's keys: clear(), clear(keyPrefix) and
// invalidations of one leave the other's entries, invalidation records and sequence exactly as
// they were, so its no-stale-resurrection guarantee holds too. An empty prefix is refused.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisStore } from '../../stores/redis.js'
import { makeEntry } from '../fixtures/store-conformance.js'
import { startRedis, PATIENT_MS } from '../fixtures/redis-server.js'

/** Every key of `prefix`'s store, by SCAN of its exact layout, with its value's type. */
async function keysOf(observer: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = []
  for await (const batch of observer.scanStream({ count: 1000 }) as AsyncIterable<string[]>) {
    for (const key of batch)
      if (key.startsWith(`${prefix}{`) || key.startsWith(`${prefix}#`)) keys.push(key)
  }
  return keys.sort()
}

/** Fills `store` with tagged entries, and invalidation records of a tag and a key. */
async function fill(store: RedisStore, body: string): Promise<void> {
  const since = await store.checkpoint()
  for (const key of ['a', 'b/1', 'b/2'])
    await store.set(key, makeEntry({ tags: ['t', `key:${key}`], body: Buffer.from(body) }), since)
  await store.invalidateTags(['gone'])
  await store.delete('nothing')
}

/** The siblings `outer` and `inner` on one fresh Redis, filled, and an observer client. */
async function siblings(t: Test, outer: string, inner: string) {
  const server = await startRedis(t)
  const stores = [outer, inner].map(
    (prefix) => new RedisStore({ url: server.url, prefix, timeoutMs: PATIENT_MS }),
  )
  const observer = new Redis(server.url)
  t.teardown(async () => {
    await Promise.all(stores.map((store) => store.close()))
    observer.disconnect()
  })
  await fill(stores[0]!, outer)
  await fill(stores[1]!, inner)
  return { stores: stores as [RedisStore, RedisStore], observer }
}

for (const [outer, inner] of [
  ['p:', 'p:blog:'],
  ['p[1]:', 'p1:'],
  ['p*', 'p:'],
] as const) {
  t.test(
    `${outer} and ${inner}: clear() of either leaves the other's keys as they were`,
    async (t) => {
      for (const [cleared, kept] of [
        [0, 1],
        [1, 0],
      ] as const) {
        const { stores, observer } = await siblings(t, outer, inner)
        const [clearedPrefix, keptPrefix] = cleared === 0 ? [outer, inner] : [inner, outer]
        const before = await keysOf(observer, keptPrefix)
        const values = await Promise.all(before.map((key) => observer.dump(key)))
        t.ok(
          before.length >= 8,
          `${keptPrefix} has entries, indexes, records and its sequence (${before.length} keys)`,
        )
        await stores[cleared].clear('b/')
        t.equal(
          await stores[cleared].get('b/1'),
          undefined,
          `clear('b/') of ${clearedPrefix} drops its own`,
        )
        t.ok(await stores[cleared].get('a'), 'and only under that key prefix')
        await stores[cleared].clear()
        t.equal(
          await stores[cleared].get('a'),
          undefined,
          `clear() of ${clearedPrefix} drops its own`,
        )
        const after = await keysOf(observer, keptPrefix)
        t.same(after, before, `${keptPrefix}: the same keys`)
        t.same(
          await Promise.all(after.map((key) => observer.dump(key))),
          values,
          `${keptPrefix}: the same values`,
        )
        t.equal(
          (await stores[kept].get('a'))?.body.toString(),
          keptPrefix,
          `${keptPrefix} still hits`,
        )
      }
    },
  )
}

t.test("a sibling's clear() does not lift this store's invalidation records", async (t) => {
  const {
    stores: [outer, inner],
  } = await siblings(t, 'p:', 'p:blog:')
  const started = await inner.checkpoint()
  await inner.invalidateTags(['t'])
  await outer.clear()
  t.equal(
    await inner.set('late', makeEntry({ tags: ['t'] }), started),
    false,
    'a generation begun before the purge is still refused',
  )
})

t.test('an empty prefix is refused (clear() would match any key under `{`)', async (t) => {
  t.throws(
    () => new RedisStore({ prefix: '' }),
    new TypeError(
      "expected options.prefix to be a non-empty string without { or } (such as 'acc:'), got ''",
    ),
  )
  t.throws(() => new RedisStore({ prefix: 'a{b}:' }), TypeError)
})
