// What a production Redis asks of the store, each as docs/stores.md documents it: TLS (rediss://),
// an ACL user allowed exactly the store's commands, and a TTL on every key the store writes
// (so that maxmemory-policy volatile-lru can always evict, and does).
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { accelerate } from '../../src/index.js'
import { RedisStore } from '../../stores/redis.js'
import { makeEntry, storeConformance } from '../fixtures/store-conformance.js'
import { startRedis, startTlsRedis, PATIENT_MS } from '../fixtures/redis-server.js'
import { counted, listen, request } from '../fixtures/http.js'

/** The ACL rule of docs/stores.md's "ACL" section, word for word. */
export const STORE_ACL =
  '~acc:* resetchannels -@all +info +get +set +del +unlink +incr +time +getrange +setrange +pexpire +pttl +zadd +zcard +zrange +zremrangebyscore +scan +zscan +evalsha +eval'

/** A cached origin on `store`: the first request a stored miss, the second a hit. */
async function missThenHit(t: Test, store: RedisStore): Promise<Error[]> {
  const errors: Error[] = []
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    return 'page'
  })
  t.teardown(() => store.close())
  const url = await listen(t, accelerate(origin, { store, onError: (err) => errors.push(err) }))
  const replies = [await request(url + '/'), await request(url + '/')]
  t.same(
    replies.map((reply) => reply.text),
    ['page', 'page'],
  )
  return errors.length > 0
    ? errors
    : (t.match(replies[1]!.headers['cache-status'], /; hit/, 'a hit'), errors)
}

t.test(
  "TLS: rediss:// with the server's CA caches; without it, requests are served and the error says why",
  async (t) => {
    const server = await startTlsRedis(t)
    t.same(
      await missThenHit(
        t,
        new RedisStore({
          url: server.tlsUrl,
          clientOptions: { tls: { ca: server.ca } },
          timeoutMs: PATIENT_MS,
        }),
      ),
      [],
      'no errors',
    )
    const errors = await missThenHit(
      t,
      new RedisStore({ url: server.tlsUrl, timeoutMs: PATIENT_MS }),
    )
    t.match(
      errors[0]?.message,
      new RegExp(
        `^RedisStore ${server.tlsUrl}: TLS: the server's certificate is self-signed \\(DEPTH_ZERO_SELF_SIGNED_CERT\\)`,
      ),
    )
  },
)

t.test(
  'ACL: a user allowed exactly the documented commands runs the whole conformance suite',
  async (t) => {
    const server = await startRedis(t)
    const admin = new Redis(server.url)
    t.teardown(() => admin.disconnect())
    await admin.call(
      'ACL',
      'SETUSER',
      'cache',
      'on',
      '>s3cret',
      'resetkeys',
      ...STORE_ACL.split(' '),
    )
    let run = 0
    await t.test('conformance', async (t) =>
      storeConformance(
        t,
        async () =>
          new RedisStore({
            url: `redis://cache:s3cret@127.0.0.1:${server.port}`,
            prefix: `acc:${run++}:`,
            timeoutMs: PATIENT_MS,
          }),
      ),
    )
    const outside = new RedisStore({
      url: `redis://cache:s3cret@127.0.0.1:${server.port}`,
      prefix: 'other:',
      timeoutMs: PATIENT_MS,
    })
    t.teardown(() => outside.close())
    await t.rejects(
      outside.get('k'),
      /^RedisStore redis:\/\/127\.0\.0\.1:\d+: Redis answered: NOPERM/,
      'keys outside ~acc:* are refused, and the error says so (without the password)',
    )
  },
)

t.test('every key the store writes has a TTL', async (t) => {
  const server = await startRedis(t)
  const store = new RedisStore({ url: server.url, timeoutMs: PATIENT_MS })
  const observer = new Redis(server.url)
  t.teardown(async () => {
    await store.close()
    observer.disconnect()
  })
  const since = await store.checkpoint()
  for (let i = 0; i < 20; i++)
    await store.set(`k${i}`, makeEntry({ tags: ['all', `t${i % 3}`] }), since)
  await store.set(
    'vary',
    makeEntry({ variesOn: ['accept'], status: 0, body: Buffer.alloc(0) }),
    since,
  )
  await store.invalidateTags(['t0'], { soft: true })
  await store.invalidateTags(['t1'])
  await store.delete('k2')
  await store.clear('k1')
  const keys = await observer.keys('*')
  t.ok(keys.length > 10, `${keys.length} keys: entries, indexes, records, the sequence, the floor`)
  const ttls = await Promise.all(keys.map(async (key) => [key, await observer.pttl(key)] as const))
  t.same(
    ttls.filter(([, ttl]) => ttl < 0),
    [],
    'none without a TTL (PTTL -1)',
  )
})

t.test(
  "maxmemory-policy volatile-lru: a full Redis evicts the store's keys, and sets keep working",
  async (t) => {
    const server = await startRedis(t, ['--maxmemory', '4mb', '--maxmemory-policy', 'volatile-lru'])
    const store = new RedisStore({ url: server.url, timeoutMs: PATIENT_MS })
    const observer = new Redis(server.url)
    t.teardown(async () => {
      await store.close()
      observer.disconnect()
    })
    const body = Buffer.alloc(16 * 1024, 'x')
    let stored = 0
    for (let i = 0; i < 600; i++)
      if (
        await store.set(`page/${i}`, makeEntry({ tags: ['all'], body }), await store.checkpoint())
      )
        stored++
    t.equal(stored, 600, '600 entries of 16 KiB into 4 MB, every set accepted (no OOM error)')
    t.ok(
      Number(/evicted_keys:(\d+)/.exec(await observer.info('stats'))![1]) > 0,
      'older entries were evicted',
    )
    t.equal((await store.get('page/599'))?.body.byteLength, body.byteLength, 'the newest is a hit')
  },
)
