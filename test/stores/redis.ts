// RedisStore against a real Redis: the conformance suite, plus what is Redis's own.
import t from 'tap'
import { Redis } from 'ioredis'
import { RedisStore } from '../../stores/redis.js'
import { encodeFrame } from '../../stores/redis-frame.js'
import { storeConformance, makeEntry } from '../fixtures/store-conformance.js'
import { sharedRedis, startRedis, PATIENT_MS } from '../fixtures/redis-server.js'

const redis = sharedRedis(t)
let run = 0
// A prefix per store: several stores (and REDIS_URL users) never see each other's keys.
const fresh = async () => {
  const store = new RedisStore({
    timeoutMs: PATIENT_MS,
    url: redis.url,
    prefix: `test:${process.pid}:${run++}:`,
  })
  await store.ready()
  return store
}

/** `task` over `items`, 50 at a time: thousands of commands in flight at once make one slow reply. */
async function fifty<T, R>(
  items: readonly T[],
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = []
  for (let i = 0; i < items.length; i += 50)
    results.push(...(await Promise.all(items.slice(i, i + 50).map((item, j) => task(item, i + j)))))
  return results
}

t.test('the store conformance suite', async (t) => storeConformance(t, fresh))

t.test('a hit is one Redis command, whatever the number of tags', async (t) => {
  const server = await startRedis(t)
  const store = new RedisStore({ timeoutMs: PATIENT_MS, url: server.url })
  await store.ready()
  const observer = new Redis(server.url)
  t.teardown(async () => {
    await store.close()
    observer.disconnect()
  })
  const since = await store.checkpoint()
  const tags = Array.from({ length: 50 }, (_, i) => `tag-${i}`)
  t.ok(await store.set('k', makeEntry({ tags }), since))
  await store.get('k') // scripts and connection warmed up
  const processed = async () =>
    Number(/total_commands_processed:(\d+)/.exec(await observer.info('stats'))![1])
  const before = await processed()
  t.ok(await store.get('k'))
  t.equal((await processed()) - before, 2, 'the get, and the INFO that counted it')
})

t.test(
  'no stale resurrection at each point of set(): an invalidation between its steps',
  async (t) => {
    for (const step of ['checked', 'written'] as const) {
      for (const invalidation of ['tag', 'delete', 'clear'] as const) {
        const prefix = `race:${process.pid}:${run++}:`
        const other = new RedisStore({ timeoutMs: PATIENT_MS, url: redis.url, prefix })
        let purge = async () => {}
        const store = new RedisStore({
          timeoutMs: PATIENT_MS,
          url: redis.url,
          prefix,
          interleave: (at) => (at === step ? purge() : undefined),
        })
        await Promise.all([store.ready(), other.ready()])
        const since = await store.checkpoint()
        // Another process invalidates while this one is between the two steps; once that call has
        // returned, nobody may read the entry, though set() has not yet seen the invalidation.
        purge = async () => {
          if (invalidation === 'tag') await other.invalidateTags(['t'])
          else if (invalidation === 'delete') await other.delete('k')
          else await other.clear()
          t.equal(
            await other.get('k'),
            undefined,
            `${invalidation} after ${step}: not served while set() is between its steps`,
          )
        }
        t.equal(
          await store.set('k', makeEntry({ tags: ['t'] }), since),
          false,
          `${invalidation} after ${step}: refused`,
        )
        t.equal(await store.get('k'), undefined, `${invalidation} after ${step}: nothing stored`)
        purge = async () => {}
        t.equal(
          await store.set('k', makeEntry({ tags: ['t'] }), await store.checkpoint()),
          true,
          'a generation that began after it stores',
        )
        await Promise.all([store.close(), other.close()])
      }
    }
  },
)

t.test(
  'while set() checks a response nobody reads it; a Vary record being rewritten stays readable',
  async (t) => {
    const prefix = `pending:${process.pid}:${run++}:`
    const reader = new RedisStore({ timeoutMs: PATIENT_MS, url: redis.url, prefix })
    const seen: Array<string | undefined> = []
    const store = new RedisStore({
      timeoutMs: PATIENT_MS,
      url: redis.url,
      prefix,
      interleave: async (at) => {
        if (at !== 'written') return
        for (const key of ['page', 'record']) {
          const entry = await reader.get(key)
          seen.push(
            entry === undefined ? undefined : (entry.variesOn?.join() ?? entry.body.toString()),
          )
        }
      },
    })
    t.teardown(() => Promise.all([store.close(), reader.close()]))
    const record = (names: string[]) =>
      makeEntry({ status: 0, headers: {}, body: Buffer.alloc(0), tags: [], variesOn: names })
    t.ok(await store.set('record', record(['accept-encoding']), await store.checkpoint()))
    t.ok(await store.set('page', makeEntry({ body: Buffer.from('one') }), await store.checkpoint()))
    // Paused after each write: the record readable at once, the response not until checked.
    t.same(
      seen,
      [undefined, 'accept-encoding', undefined, 'accept-encoding'],
      'a response is unreadable until checked; the record is read throughout',
    )
    t.equal((await reader.get('page'))?.body.toString(), 'one', 'readable once set() returned')
  },
)

t.test('the sequence never goes back, even when Redis restarts empty', async (t) => {
  const server = await startRedis(t)
  const store = new RedisStore({ timeoutMs: PATIENT_MS, url: server.url })
  await store.ready()
  t.teardown(() => store.close())
  const before = await store.checkpoint()
  await store.invalidateTags(['t'])
  const bumped = await store.checkpoint()
  t.ok(bumped > before, 'an invalidation moves it')
  t.ok(bumped >= Date.now() - 60_000, 'it starts from Redis TIME, not from 1')
  await server.kill()
  await server.restart()
  await store.ready()
  await store.invalidateTags(['t'])
  t.ok(
    (await store.checkpoint()) > bumped,
    'after a restart without persistence, still above every earlier value',
  )
})

t.test('every key it writes carries a TTL', async (t) => {
  const server = await startRedis(t)
  const store = new RedisStore({ timeoutMs: PATIENT_MS, url: server.url })
  const observer = new Redis(server.url)
  await store.ready()
  t.teardown(async () => {
    await store.close()
    observer.disconnect()
  })
  await store.set(
    'a',
    makeEntry({ tags: ['t1', 't2'], variesOn: undefined }),
    await store.checkpoint(),
  )
  await store.set('b', makeEntry({ tags: ['t2'] }), await store.checkpoint())
  await store.invalidateTags(['t1'])
  await store.delete('b')
  await store.clear('nothing-matches')
  const keys = await observer.keys('*')
  t.ok(keys.length >= 6, `keys: ${keys.join(' ')}`)
  for (const key of keys) t.ok((await observer.pttl(key)) > 0, `${key} expires`)
})

t.test('tag indexes drop members once their entries have expired', async (t) => {
  let now = Date.now()
  const store = new RedisStore({
    timeoutMs: PATIENT_MS,
    url: redis.url,
    prefix: `trim:${process.pid}:`,
    now: () => now,
  })
  const observer = new Redis(redis.url)
  await store.ready()
  t.teardown(async () => {
    await store.clear()
    await store.close()
    observer.disconnect()
  })
  for (const key of ['a', 'b', 'c'])
    await store.set(
      key,
      makeEntry({ tags: ['t'], expiresAt: now + 5_000 }),
      await store.checkpoint(),
    )
  const index = `trim:${process.pid}:{t:t}z`
  t.equal(await observer.zcard(index), 3)
  now += 5_000 + 61_000 // the entries have expired, and the grace for clock skew has passed
  await store.set('d', makeEntry({ tags: ['t'], expiresAt: now + 5_000 }), await store.checkpoint())
  t.same(await observer.zrange(index, '0', '-1'), ['d'], 'only the live entry is left in the index')
})

t.test(
  'prefixes keep apps apart; clear() deletes its own keys only, with SCAN, never KEYS',
  async (t) => {
    const server = await startRedis(t)
    const blog = new RedisStore({ timeoutMs: PATIENT_MS, url: server.url, prefix: 'blog:' })
    const shop = new RedisStore({ timeoutMs: PATIENT_MS, url: server.url, prefix: 'shop:' })
    const observer = new Redis(server.url)
    await Promise.all([blog.ready(), shop.ready()])
    t.teardown(async () => {
      await Promise.all([blog.close(), shop.close()])
      observer.disconnect()
    })
    await observer.set('unrelated', 'kept')
    await fifty(
      Array.from({ length: 2500 }, (_, i) => `page-${i}`),
      (key) => blog.set(key, makeEntry({ tags: ['all'] }), 0),
    )
    await shop.set('page-1', makeEntry({ tags: ['all'], body: Buffer.from('shop') }), 0)
    t.equal(await blog.invalidateTags(['all']), 2500)
    t.equal(
      (await shop.get('page-1'))?.body.toString(),
      'shop',
      'a purge in one prefix does not reach the other',
    )
    const since = await blog.checkpoint()
    await fifty(
      Array.from({ length: 1200 }, (_, i) => `page-${i}`),
      (key) => blog.set(key, makeEntry({ tags: ['all'] }), since),
    )
    await blog.clear()
    const stats = await observer.info('commandstats')
    t.match(stats, /cmdstat_scan:calls=([2-9]|\d\d)/, 'SCAN, in batches')
    t.notMatch(stats, /cmdstat_keys:/, 'never KEYS')
    t.notMatch(stats, /cmdstat_flush/, 'never FLUSHDB or FLUSHALL')
    t.equal(
      (await observer.keys('blog:*')).filter((key) => !key.startsWith('blog:#')).length,
      0,
      'blog is empty',
    )
    t.equal((await shop.get('page-1'))?.body.toString(), 'shop', 'shop is untouched')
    t.equal(await observer.get('unrelated'), 'kept')
  },
)

t.test(
  'a client passed in stays open after close(); one the store created is closed',
  async (t) => {
    const client = new Redis(redis.url)
    t.teardown(() => client.disconnect())
    const borrowed = new RedisStore({
      timeoutMs: PATIENT_MS,
      client,
      prefix: `own:${process.pid}:`,
    })
    await borrowed.close()
    await borrowed.close()
    t.equal(await client.ping(), 'PONG')
    await t.rejects(borrowed.get('k'), /closed/)
    t.equal(await borrowed.set('k', makeEntry(), 0), false)
    const created = new RedisStore({
      timeoutMs: PATIENT_MS,
      url: redis.url,
      prefix: `own:${process.pid}:`,
    })
    await created.ready()
    await created.ready()
    await created.close()
    await t.rejects(created.ready(), /closed/)
    const unreachable = new RedisStore({ url: 'redis://127.0.0.1:1' })
    await t.rejects(unreachable.ready(50), /not ready within 50 ms/)
    await unreachable.close()
  },
)

t.test('maxEntryBytes: a larger body is declined', async (t) => {
  const store = new RedisStore({
    timeoutMs: PATIENT_MS,
    url: redis.url,
    prefix: `max:${process.pid}:`,
    maxEntryBytes: 10,
  })
  await store.ready()
  t.teardown(() => store.close())
  t.equal(await store.set('big', makeEntry({ body: Buffer.alloc(11) }), 0), false)
  t.equal(await store.set('fits', makeEntry({ body: Buffer.alloc(10) }), 0), true)
  t.equal(await store.get('big'), undefined)
})

t.test('bad options throw a TypeError naming the option', async (t) => {
  const client = new Redis({ lazyConnect: true })
  const cases: Array<[unknown, RegExp]> = [
    [null, /^expected options to be an object, got null$/],
    [{ url: 'http://x' }, /^expected options\.url to be a redis:\/\/ URL, got 'http:\/\/x'$/],
    [{ url: 5 }, /^expected options\.url/],
    [{ url: 'redis://x', client }, /^expected options\.url or options\.client, got both$/],
    [{ client: {} }, /^expected options\.client to be an ioredis Redis or Cluster/],
    [
      { client, prefix: 'a{b}' },
      /^expected options\.prefix to be a non-empty string without \{ or \} \(such as 'acc:'\), got 'a\{b\}'$/,
    ],
    [
      { clientOptions: 'x' },
      /^expected options\.clientOptions to be ioredis options \(an object\), got 'x'$/,
    ],
    [{ clientOptions: null }, /^expected options\.clientOptions to be ioredis options/],
    [
      { clientOptions: {}, client },
      /^expected options\.clientOptions or options\.client, got both/,
    ],
    [{ client, prefix: 3 }, /^expected options\.prefix/],
    [{ client, timeoutMs: 0 }, /^expected options\.timeoutMs to be a positive integer, got 0$/],
    [
      { client, maxEntryBytes: 1.5 },
      /^expected options\.maxEntryBytes to be a positive integer, got 1\.5$/,
    ],
    [{ client, now: 'now' }, /^expected options\.now to be a function, got 'now'$/],
  ]
  for (const [options, message] of cases)
    t.throws(() => new RedisStore(options as never), { name: 'TypeError', message })
  client.disconnect()
})

t.test(
  "expiry follows the app's clock as well as Redis TTLs; the soft flag round-trips",
  async (t) => {
    let now = Date.now()
    const store = new RedisStore({
      timeoutMs: PATIENT_MS,
      url: redis.url,
      prefix: `clock:${process.pid}:`,
      now: () => now,
    })
    await store.ready()
    t.teardown(async () => {
      await store.clear()
      await store.close()
    })
    await store.set('k', makeEntry({ expiresAt: now + 60_000, softInvalidated: true }), 0)
    t.equal((await store.get('k'))?.softInvalidated, true)
    now += 60_000
    t.equal(
      await store.get('k'),
      undefined,
      "past expiresAt by the app's clock, though Redis still holds it",
    )
  },
)

t.test(
  "a stored version's meta is parsed once; unreadable or older metas are misses",
  async (t) => {
    const prefix = `meta:${process.pid}:`
    const store = new RedisStore({ timeoutMs: PATIENT_MS, url: redis.url, prefix })
    await store.ready()
    const raw = new Redis(redis.url)
    t.teardown(async () => {
      await store.clear()
      await store.close()
      raw.disconnect()
    })
    t.ok(
      await store.set(
        'k',
        makeEntry({ headers: { etag: '"1"' }, tags: ['a'] }),
        await store.checkpoint(),
      ),
    )
    const first = await store.get('k')
    const second = await store.get('k')
    t.equal(first!.headers, second!.headers, 'two hits on one version share its parsed headers')
    t.not(first, second, 'each get still answers an entry of its own')
    t.ok(
      await store.set(
        'k',
        makeEntry({ headers: { etag: '"2"' }, tags: ['a'] }),
        await store.checkpoint(),
      ),
    )
    t.equal((await store.get('k'))!.headers.etag, '"2"', 'a new version is parsed anew')
    // More keys than the parsed metas kept (1024): the oldest are parsed again when met again.
    const since = await store.checkpoint()
    const many = Array.from({ length: 1100 }, (_, i) => `many/${i}`)
    await fifty(many, (key, i) => store.set(key, makeEntry({ headers: { etag: `"${i}"` } }), since))
    const etags = async () =>
      (await fifty(many, (key) => store.get(key))).map((entry) => entry?.headers.etag)
    t.strictSame(
      await etags(),
      many.map((_, i) => `"${i}"`),
    )
    t.strictSame(
      await etags(),
      many.map((_, i) => `"${i}"`),
      'and again, after the oldest were let go',
    )
    const entryKey = `${prefix}{k:k}v`
    const frame = (meta: string) =>
      encodeFrame(Date.now() + 60_000, false, 0, meta, '[]', Buffer.from('body'))
    await raw.set(entryKey, frame('{not json'))
    t.equal(await store.get('k'), undefined, 'a meta that is not JSON is a miss')
    await raw.set(entryKey, frame(JSON.stringify({ s: 200, h: {}, t: 0, a: 0 })))
    t.equal(await store.get('k'), undefined, 'a meta without tags or expiry is a miss')
    await raw.set(
      entryKey,
      'not a frame, but long enough to have been one: 0123456789012345678901234567890123456789',
    )
    t.equal(await store.get('k'), undefined, 'what is not a frame is a miss')
    await raw.set(entryKey, frame('{}').subarray(0, 60))
    t.equal(await store.get('k'), undefined, 'a frame cut short is a miss')
  },
)

t.test('a tag over more entries than one reply carries is read in pages', async (t) => {
  // Past 2,000 entries a tag's index is read with ZSCAN: each command stays short, within the
  // 100 ms timeout however large the tag (one reply of 100,000 keys once timed out).
  const store = await fresh()
  t.teardown(async () => {
    await store.clear()
    await store.close()
  })
  const since = await store.checkpoint()
  const keys = Array.from({ length: 4500 }, (_, i) => `big/${i}`)
  t.ok(
    (await fifty(keys, (key) => store.set(key, makeEntry({ tags: ['big', key] }), since))).every(
      Boolean,
    ),
  )
  t.ok(await store.set('small', makeEntry({ tags: ['other'] }), since))
  t.equal(
    await store.invalidateTags(['big']),
    4500,
    'each dropped once, though ZSCAN may return a key twice',
  )
  t.equal((await fifty(keys, (key) => store.get(key))).filter(Boolean).length, 0)
  t.ok(await store.get('small'), 'an entry without the tag stays')
})

t.test('tag invalidation is exact, whatever the tags contain', async (t) => {
  // The drop script tests tags on the stored JSON with a substring search: tags that contain
  // quotes, commas, brackets, backslashes, or each other must not be mistaken for one another.
  const store = await fresh()
  t.teardown(async () => {
    await store.clear()
    await store.close()
  })
  const tagsOf: Record<string, string[]> = {
    quoted: ['a","b'],
    plainB: ['b'],
    plainA: ['a'],
    backslash: ['x\\'],
    plainX: ['x'],
    bracket: ['[b]'],
    longer: ['shared-more', 'pre-shared'],
    exact: ['other', 'shared'],
    unicode: ['тег', 'é'],
  }
  const since = await store.checkpoint()
  for (const [key, tags] of Object.entries(tagsOf))
    t.ok(await store.set(key, makeEntry({ tags }), since), `stored ${key}`)
  const left = async () => {
    const present: string[] = []
    for (const key of Object.keys(tagsOf)) if (await store.get(key)) present.push(key)
    return present
  }
  t.equal(await store.invalidateTags(['b']), 1)
  t.notOk((await left()).includes('plainB'))
  t.equal(await store.invalidateTags(['shared']), 1, 'shared, not shared-more nor pre-shared')
  t.equal(await store.invalidateTags(['x']), 1, 'x, not x\\')
  t.equal(await store.invalidateTags(['a']), 1, 'a, not a","b')
  t.equal(await store.invalidateTags(['é']), 1)
  t.strictSame(await left(), ['quoted', 'backslash', 'bracket', 'longer'])
  t.equal(
    await store.invalidateTags(['a","b', 'x\\', '[b]', 'pre-shared']),
    4,
    'each odd tag reaches its own entry',
  )
  t.strictSame(await left(), [])
})

t.test('without url or client, it connects to redis://127.0.0.1:6379', async (t) => {
  const store = new RedisStore({ timeoutMs: PATIENT_MS, prefix: `default:${process.pid}:` })
  await store.close()
  t.pass('created and closed without waiting for a connection')
})
