// What RedisStore's errors say: the server (never its password), what happened, what the store
// does next; and the default onError turns an outage into one line per burst, without a stack.
import t from 'tap'
import { Cluster, Redis } from 'ioredis'
import { accelerate } from '../../src/index.js'
import { RedisStore, RedisStoreError } from '../../stores/redis.js'
import { describeFailure, describeTarget } from '../../stores/redis-connection.js'
import { makeEntry } from '../fixtures/store-conformance.js'
import { freePort, startRedis, PATIENT_MS } from '../fixtures/redis-server.js'
import { listen, manualClock, request } from '../fixtures/http.js'

t.test('a timeout, then the break after it, each named', async (t) => {
  const server = await startRedis(t)
  const clock = manualClock()
  const store = new RedisStore({ url: server.url, timeoutMs: 100, now: clock.now })
  t.teardown(() => store.close())
  await store.ready()
  server.pause()
  await t.rejects(store.get('k'), {
    message: `RedisStore ${server.url}: command timed out after 100 ms; not asking again for 1000 ms`,
    outage: true,
    name: 'RedisStoreError',
  })
  clock.advance(200)
  await t.rejects(store.get('k'), {
    message: `RedisStore ${server.url}: not asking for 800 ms after a timeout`,
    outage: true,
  })
  server.resume()
  await t.rejects(
    store.get('k'),
    /not asking for 800 ms/,
    'still in the break, whatever Redis does meanwhile',
  )
  clock.advance(800)
  t.equal(await store.get('k'), undefined, 'asked again once the break is over')
  clock.advance(-60_000)
  t.equal(await store.get('k'), undefined, 'a clock set back does not hold the store in a break')
})

t.test('a lost connection: commands fail at once, saying why', async (t) => {
  const server = await startRedis(t)
  const store = new RedisStore({ url: server.url, timeoutMs: 10_000 })
  t.teardown(() => store.close())
  await store.ready()
  await server.kill()
  const err = await store.get('k').catch((err: RedisStoreError) => err)
  t.ok(err instanceof RedisStoreError)
  t.match(
    (err as Error).message,
    new RegExp(
      `^RedisStore ${server.url}: (connection refused \\(ECONNREFUSED\\)|not connected \\(\\w+\\)|connection reset \\(ECONNRESET\\)); reconnecting in the background, requests go uncached meanwhile$`,
    ),
  )
})

t.test('a closed store says so, and is not an outage', async (t) => {
  const store = new RedisStore({ url: `redis://127.0.0.1:${await freePort()}` })
  await store.close()
  await t.rejects(store.get('k'), { message: /: closed \(close\(\) was called\)$/, outage: false })
})

t.test('the default onError: one line per burst, the message alone', async (t) => {
  const logged = t.capture(console, 'error')
  const port = await freePort()
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}` })
  t.teardown(() => store.close())
  const url = await listen(
    t,
    accelerate(
      (_req, res) => {
        res.cacheFor = 60
        return 'ok'
      },
      { store },
    ),
  )
  for (let i = 0; i < 5; i++) t.equal((await request(url + '/')).text, 'ok')
  const lines = logged().map(({ args }) => String(args[0]))
  t.equal(lines.length, 1, 'one line for the whole burst')
  t.match(
    lines[0],
    new RegExp(
      `^node-accelerator: get failed for "[^"]+": RedisStore redis://127\\.0\\.0\\.1:${port}: connection refused \\(ECONNREFUSED\\); reconnecting in the background, requests go uncached meanwhile$`,
    ),
  )
})

t.test('where: a URL without its credentials, or the servers a client was given', async (t) => {
  const clients = [
    new Redis({ host: '10.0.0.1', port: 6380, lazyConnect: true }),
    new Redis({ host: '10.0.0.1', port: 6380, tls: {}, lazyConnect: true }),
    new Redis({ path: '/run/redis.sock', lazyConnect: true }),
    new Redis({
      sentinels: [{ host: '10.0.0.2', port: 26379 }, {}],
      name: 'cache',
      lazyConnect: true,
    }),
    new Redis({ lazyConnect: true }),
    new Cluster([{ host: '10.0.0.3', port: 7000 }, { port: 7001 }, 7002, '10.0.0.4:7003'], {
      lazyConnect: true,
    }),
  ]
  t.teardown(() => clients.forEach((client) => client.disconnect()))
  t.same(
    clients.map((client) => describeTarget(client, undefined)),
    [
      'redis://10.0.0.1:6380',
      'rediss://10.0.0.1:6380',
      'unix:/run/redis.sock',
      'sentinel cache via 10.0.0.2:26379,127.0.0.1:26379',
      'redis://localhost:6379',
      'cluster 10.0.0.3:7000,127.0.0.1:7001,7002,10.0.0.4:7003',
    ],
  )
  t.equal(
    describeTarget(clients[0]!, 'rediss://app:s3cret@cache.example:6380/2'),
    'rediss://cache.example:6380/2',
    'no credentials in messages',
  )
})

t.test('what: socket codes in words, replies as Redis gave them', async (t) => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
    code: 'ECONNREFUSED',
  })
  t.equal(describeFailure(refused), 'connection refused (ECONNREFUSED)')
  const reply = Object.assign(
    new Error("NOPERM this user has no permissions to run the 'hmget' command"),
    { name: 'ReplyError' },
  )
  t.equal(
    describeFailure(reply),
    "Redis answered: NOPERM this user has no permissions to run the 'hmget' command",
  )
  t.equal(describeFailure(Object.assign(new Error('odd'), { code: 'EODD' })), 'odd')
})

t.test(
  'a set cut short by close() declines instead of failing (an app shutting down logs nothing)',
  async (t) => {
    const server = await startRedis(t)
    let store!: RedisStore
    store = new RedisStore({ url: server.url, timeoutMs: 10_000, interleave: () => store.close() })
    t.equal(await store.set('k', makeEntry(), await store.checkpoint()), false)
  },
)

t.test(
  'stores sharing one client: no leak warning, and close() takes back their listeners',
  async (t) => {
    const server = await startRedis(t)
    const client = new Redis(server.url)
    t.teardown(() => client.disconnect())
    const warnings: string[] = []
    const onWarning = (warning: Error) => warnings.push(warning.name)
    process.on('warning', onWarning)
    t.teardown(() => void process.off('warning', onWarning))
    const before = [
      client.listenerCount('error'),
      client.listenerCount('ready'),
      client.getMaxListeners(),
    ]
    const stores = Array.from(
      { length: 12 },
      (_, i) => new RedisStore({ client, prefix: `s${i}:`, timeoutMs: PATIENT_MS }),
    )
    t.same(
      await Promise.all(stores.map((store) => store.get('k'))),
      Array(12).fill(undefined),
      'each works',
    )
    await Promise.all(stores.map((store) => store.close()))
    await new Promise((resolve) => setImmediate(resolve))
    t.same(warnings, [], 'no MaxListenersExceededWarning')
    t.same(
      [client.listenerCount('error'), client.listenerCount('ready'), client.getMaxListeners()],
      before,
    )
  },
)
