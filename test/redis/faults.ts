// Fail open, fast: with Redis paused, killed, restarted or never reachable, every request is
// answered (as a miss) while the outage lasts, errors go to onError only, and caching resumes
// by itself when Redis is back. "While the outage lasts" is the proof that nobody waited for
// Redis: every reply arrives before the test resumes or restarts the server. How long each took
// is printed, never asserted: on 2 busy cores scheduling alone can exceed any fixed bound.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { accelerate } from '../../src/index.js'
import { RedisStore } from '../../stores/redis.js'
import { startRedis, freePort } from '../fixtures/redis-server.js'
import { counted, eventually, listen, request, type Reply } from '../fixtures/http.js'

const TIMEOUT_MS = 100
const HANDLER_MS = 20

async function app(t: Test, store: RedisStore) {
  const errors: string[] = []
  const origin = counted(async (_req, res) => {
    await new Promise((resolve) => setTimeout(resolve, HANDLER_MS))
    res.cacheFor = 60
    return `render ${origin.calls}`
  })
  const accelerator = accelerate(origin, {
    store,
    onError: (err, { op }) => errors.push(`${op}: ${err.message}`),
  })
  const url = await listen(t, accelerator)
  t.teardown(() => store.close())
  return { url, origin, errors }
}

/** Sends `n` requests one after another; asserts each is answered by the handler. */
async function allAnswered(t: Test, url: string, n: number, label: string): Promise<Reply[]> {
  const replies: Reply[] = []
  let slowest = 0
  for (let i = 0; i < n; i++) {
    const started = performance.now()
    const reply = await request(url)
    slowest = Math.max(slowest, performance.now() - started)
    replies.push(reply)
  }
  t.ok(
    replies.every((reply) => reply.status === 200 && reply.text.startsWith('render')),
    `${label}: all ${n} answered`,
  )
  t.comment(
    `${label}: the slowest took ${Math.round(slowest)} ms (store timeout ${TIMEOUT_MS} ms, handler ${HANDLER_MS} ms)`,
  )
  return replies
}

/** Requests until one is a hit again. */
async function cachingResumes(t: Test, url: string): Promise<void> {
  await eventually(
    async () => /hit/.test(String((await request(url)).headers['cache-status'])),
    'a hit after the outage',
  )
  t.pass('caching resumed by itself')
}

t.test('Redis paused (SIGSTOP): misses within the timeout, then caching resumes', async (t) => {
  const server = await startRedis(t)
  const store = new RedisStore({ url: server.url, timeoutMs: TIMEOUT_MS })
  await store.ready()
  const { url, errors } = await app(t, store)
  // On a loaded machine one of the first commands may outlast the 100 ms timeout: a miss, not a
  // failure of what this test is about.
  await eventually(
    async () => /hit/.test(String((await request(url + '/')).headers['cache-status'])),
    'a hit',
  )
  t.pass('cached before the outage')
  server.pause()
  const replies = await allAnswered(t, url + '/', 15, 'paused')
  t.ok(
    replies.every((reply) => /fwd=miss/.test(String(reply.headers['cache-status']))),
    'as misses',
  )
  // Which command meets the pause first (the lookup, or the previous request's store write)
  // depends on scheduling; that one times out and the rest are not sent.
  t.match(
    errors.join('\n'),
    new RegExp(`(get|set): RedisStore ${server.url}: command timed out after ${TIMEOUT_MS} ms`),
    'the timeout was reported, naming the server',
  )
  server.resume()
  await cachingResumes(t, url + '/')
})

t.test('Redis killed, then restarted: misses at once, then caching resumes', async (t) => {
  const server = await startRedis(t)
  const store = new RedisStore({ url: server.url, timeoutMs: TIMEOUT_MS })
  await store.ready()
  const { url, errors } = await app(t, store)
  await request(url + '/')
  await server.kill()
  await allAnswered(t, url + '/', 15, 'killed')
  t.ok(errors.length > 0, 'failures reported to onError')
  await server.restart()
  await cachingResumes(t, url + '/')
})

t.test('Redis never reachable: every request answered, the store keeps trying', async (t) => {
  const port = await freePort()
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, timeoutMs: TIMEOUT_MS })
  const { url, origin } = await app(t, store)
  await allAnswered(t, url + '/', 10, 'unreachable')
  t.equal(origin.calls, 10)
})

t.test("a client passed in without timeouts still gets the store's deadline", async (t) => {
  const server = await startRedis(t)
  const client = new Redis(server.url) // ioredis defaults: offline queue on, no command timeout
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client, timeoutMs: TIMEOUT_MS })
  await store.ready()
  const { url } = await app(t, store)
  await request(url + '/')
  server.pause()
  await allAnswered(t, url + '/', 10, 'paused behind a borrowed client')
  server.resume()
  await cachingResumes(t, url + '/')
})
