// A RedisStore used the moment it is made (no `await store.ready()`), as a freshly started
// instance, a serverless function or a purge script uses it: the first requests wait for the
// first connection (within timeoutMs) and are cached like the rest; an unreachable Redis
// fails at once, with an error that says where and what, and never reaches the client.
import t, { type Test } from 'tap'
import { accelerate } from '../../src/index.js'
import { RedisStore } from '../../stores/redis.js'
import { freePort, sharedRedis, startRedis, PATIENT_MS } from '../fixtures/redis-server.js'
import { counted, gate, listen, request } from '../fixtures/http.js'

const redis = sharedRedis(t)
let run = 0

/** An accelerated origin on `store`, errors collected; the store is closed at teardown. */
async function app(t: Test, store: RedisStore, handler: () => Promise<void> | void = () => {}) {
  const errors: Error[] = []
  const origin = counted(async (_req, res) => {
    await handler()
    res.cacheFor = 60
    res.tags = ['page']
    return `render ${origin.calls}`
  })
  const accelerator = accelerate(origin, { store, onError: (err) => errors.push(err) })
  t.teardown(() => store.close())
  return { url: await listen(t, accelerator), origin, errors, accelerator }
}

t.test('the first two requests after construction: a miss, then a hit', async (t) => {
  const store = new RedisStore({
    url: redis.url,
    prefix: `cold:${process.pid}:${run++}:`,
    timeoutMs: PATIENT_MS,
  })
  const { url, origin, errors } = await app(t, store)
  const first = await request(url + '/')
  const second = await request(url + '/')
  t.match(first.headers['cache-status'], /fwd=miss; stored/, 'the first is stored')
  t.match(second.headers['cache-status'], /; hit/, 'the second is a hit')
  t.equal(origin.calls, 1)
  t.same(errors, [], 'nothing failed')
})

t.test('ten concurrent first requests run the handler once', async (t) => {
  const store = new RedisStore({
    url: redis.url,
    prefix: `cold:${process.pid}:${run++}:`,
    timeoutMs: PATIENT_MS,
  })
  const rendering = gate()
  const { url, origin, errors } = await app(t, store, () => rendering.promise)
  const replies = Promise.all(Array.from({ length: 10 }, () => request(url + '/')))
  // Held until the requests had every chance to join the one generation.
  setImmediate(() => rendering.open())
  t.same(
    (await replies).map((reply) => reply.text),
    Array(10).fill('render 1'),
    'all ten served the one render',
  )
  t.equal(origin.calls, 1, 'coalesced')
  t.same(errors, [])
})

t.test('invalidateTags right after construction resolves', async (t) => {
  const store = new RedisStore({
    url: redis.url,
    prefix: `cold:${process.pid}:${run++}:`,
    timeoutMs: PATIENT_MS,
  })
  const { accelerator } = await app(t, store)
  t.equal(await accelerator.invalidateTags(['page']), 0)
  const script = new RedisStore({
    url: redis.url,
    prefix: `cold:${process.pid}:${run++}:`,
    timeoutMs: PATIENT_MS,
  })
  t.teardown(() => script.close())
  t.equal(await script.invalidateTags(['page']), 0, "a purge script's store")
})

t.test('a refused port fails at once, says so, and never reaches the client', async (t) => {
  const port = await freePort()
  // A long timeout: had the store waited for the connection, the error would say so.
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, timeoutMs: PATIENT_MS })
  const { url, origin, errors } = await app(t, store)
  const replies = [await request(url + '/'), await request(url + '/')]
  t.same(
    replies.map((reply) => [reply.status, reply.text]),
    [
      [200, 'render 1'],
      [200, 'render 2'],
    ],
    'served by the handler',
  )
  t.equal(origin.calls, 2)
  t.ok(errors.length > 0, 'reported to onError')
  for (const err of errors)
    t.match(
      err.message,
      new RegExp(
        `^RedisStore redis://127\\.0\\.0\\.1:${port}: connection refused \\(ECONNREFUSED\\)`,
      ),
      'names the server and the cause',
    )
  await t.rejects(store.ready(50), {
    message: new RegExp(
      `^RedisStore redis://127\\.0\\.0\\.1:${port}: not ready within 50 ms \\(last error: connection refused \\(ECONNREFUSED\\)\\)`,
    ),
  })
})

t.test(
  'a server that accepts but does not answer yet: each command waits timeoutMs, then says so',
  async (t) => {
    const server = await startRedis(t)
    server.pause()
    const store = new RedisStore({ url: server.url, timeoutMs: 100 })
    t.teardown(() => store.close())
    await t.rejects(store.checkpoint(), {
      message: `RedisStore ${server.url}: not connected yet (waited 100 ms)`,
      outage: true,
    })
    server.resume()
    await store.ready()
    t.type(await store.checkpoint(), 'number', 'answers once connected')
  },
)
