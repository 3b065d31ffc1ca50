// The accelerator end to end on a RedisStore: hits, variants, soft purge with a background
// refresh, revalidation and coalescing behave as on the memory store.
import t, { type Test } from 'tap'
import { gzipSync } from 'node:zlib'
import { accelerate } from '../../src/index.js'
import { RedisStore } from '../../stores/redis.js'
import { sharedRedis, PATIENT_MS } from '../fixtures/redis-server.js'
import { counted, eventually, gate, listen, manualClock, request } from '../fixtures/http.js'

const server = sharedRedis(t)
let run = 0
async function store(t: Test) {
  const redis = new RedisStore({
    timeoutMs: PATIENT_MS,
    url: server.url,
    prefix: `e2e:${process.pid}:${run++}:`,
  })
  await redis.ready()
  t.teardown(async () => {
    await redis.clear()
    await redis.close()
  })
  return redis
}

t.test('hits, variants and invalidate(url) on Redis', async (t) => {
  const origin = counted((req, res) => {
    res.cacheFor = 60
    res.setHeader('vary', 'accept-encoding')
    if (req.headers['accept-encoding'] === 'gzip') {
      res.setHeader('content-encoding', 'gzip')
      return gzipSync('hello')
    }
    return 'hello'
  })
  const app = accelerate(origin, { store: await store(t) })
  const base = await listen(t, app)
  for (const headers of [{}, { 'accept-encoding': 'gzip' }, {}, { 'accept-encoding': 'gzip' }])
    await request(base + '/v', { headers })
  t.equal(origin.calls, 2, 'two variants, two renders, two hits')
  const zipped = await request(base + '/v', { headers: { 'accept-encoding': 'gzip' } })
  t.equal(zipped.headers['content-encoding'], 'gzip')
  t.ok(zipped.body.equals(gzipSync('hello')), 'bytes as stored')
  t.equal(await app.invalidate(base + '/v'), 2)
  await request(base + '/v')
  t.equal(origin.calls, 3)
})

t.test('soft purge on Redis: served stale once, refreshed in the background', async (t) => {
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    res.tags = ['news']
    return `edition ${origin.calls}`
  })
  const app = accelerate(origin, { store: await store(t) })
  const base = await listen(t, app)
  await request(base + '/')
  // The response is stored just after it finished: a couple of Redis round trips later.
  await eventually(() => app.stats().stores === 1, 'stored')
  t.equal(await app.invalidateTags(['news'], { soft: true }), 1)
  const stale = await request(base + '/')
  t.equal(stale.text, 'edition 1')
  t.match(stale.headers['cache-status'], /detail=stale-while-revalidate/)
  await eventually(() => app.stats().stores === 2, 'refreshed')
  t.equal((await request(base + '/')).text, 'edition 2')
})

t.test('revalidation on Redis: a 304 renews the entry without a new body', async (t) => {
  const clock = manualClock(Date.now())
  let generated = 0
  const origin = counted((_req, res) => {
    res.cacheFor = 10
    res.setHeader('etag', '"same"')
    return (function* () {
      generated++
      yield 'body'
    })()
  })
  const app = accelerate(origin, { store: await store(t), now: clock.now })
  const base = await listen(t, app)
  await request(base + '/')
  await eventually(() => app.stats().stores === 1, 'stored')
  clock.advance(11_000)
  const reply = await request(base + '/')
  t.equal(reply.text, 'body')
  t.match(reply.headers['cache-status'], /fwd=stale; fwd-status=304; stored/)
  t.equal(generated, 1)
})

t.test('coalescing on Redis: 20 concurrent misses, one render', async (t) => {
  const release = gate()
  const origin = counted(async (_req, res) => {
    res.cacheFor = 60
    await release.promise
    return 'once'
  })
  const app = accelerate(origin, { store: await store(t) })
  const base = await listen(t, app)
  const replies = Array.from({ length: 20 }, () => request(base + '/c'))
  await eventually(() => app.stats().coalesced === 19, 'all waiting')
  release.open()
  t.ok((await Promise.all(replies)).every((reply) => reply.text === 'once'))
  t.equal(origin.calls, 1)
})
