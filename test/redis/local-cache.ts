// RedisStore's local cache: hits from the process's own memory, each copy dropped when Redis
// says (CLIENT TRACKING) that its entry changed, in every process sharing the Redis; the stream
// lost, nothing local is served until it is back. Two stores on one private redis-server play
// two processes (a third test file process is forked for one subtest).
import t, { type Test } from 'tap'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { RedisStore } from '../../stores/redis.js'
import { PATIENT_MS, startRedis, type RedisServer } from '../fixtures/redis-server.js'
import { makeEntry, storeConformance } from '../fixtures/store-conformance.js'
import { eventually } from '../fixtures/http.js'
import {
  bodyOf,
  local,
  localStore as localStoreOn,
  put,
  type LocalStoreOptions,
} from '../fixtures/local-cache.js'
import type { CacheEntry } from '../../src/store.js'

let server!: RedisServer
let raw!: Redis
t.before(async () => {
  server = await startRedis(t)
  raw = new Redis(server.url)
  t.teardown(() => raw.quit())
})

let prefixes = 0
/** A store with a local cache on `prefix` (see the fixture), on this file's server by default. */
const localStore = (t: Test, prefix: string, options: Partial<LocalStoreOptions> = {}) =>
  localStoreOn(t, { url: server.url, prefix, ...options })

/** Two "processes": stores with local caches on one Redis and one prefix of their own. */
async function pair(t: Test): Promise<[RedisStore, RedisStore]> {
  const prefix = `lc${++prefixes}:`
  return [await localStore(t, prefix), await localStore(t, prefix)]
}

const body = bodyOf

/**
 * Reads `key` in `store` until it holds a local copy; resolves the entry. (A read just after a
 * write may keep nothing: the write's own invalidation messages can arrive while it is in flight.)
 */
async function held(t: Test, store: RedisStore, key: string, text: string): Promise<CacheEntry> {
  // (A store with a short timeout may time out on a loaded machine: that read is tried again.)
  await eventually(
    async () => body(await store.get(key).catch(() => undefined)) === text && local(store).has(key),
    `${key} read and kept`,
  )
  t.ok(local(store).has(key), `read ${text} and kept a local copy`)
  const hit = await store.get(key)
  t.equal(hit, await store.get(key), 'hits return the local copy itself')
  return hit!
}

// Everything a store promises in one process (no stale resurrection included) holds with copies.
t.test('the store conformance suite, with a local cache', async (t) =>
  storeConformance(t, async () => {
    const store = new RedisStore({
      url: server.url,
      prefix: `lc${++prefixes}:`,
      timeoutMs: PATIENT_MS,
      localCache: { maxBytes: 1 << 20 },
    })
    await eventually(() => local(store).live, 'the invalidation stream is up')
    return store
  }),
)

t.test('a hit is served from memory: with Redis paused, the copy still answers', async (t) => {
  const [a] = await pair(t)
  await put(a, 'page', 'v1')
  await held(t, a, 'page', 'v1')
  server.pause()
  try {
    t.equal(body(await a.get('page')), 'v1')
  } finally {
    server.resume()
  }
  t.same(local(a).size().entries, 1)
})

// Each way an entry can change in Redis, made by process B: A's copy is gone once A's stream
// has answered one command sent after the change returned (sync), and A reads what is there.
const changes: Array<
  [string, (b: RedisStore, prefix: string) => Promise<unknown>, string | undefined]
> = [
  ['an overwrite', (b) => put(b, 'page', 'v2'), 'v2'],
  ['a delete', (b) => b.delete('page'), undefined],
  ['an invalidation of its tag', (b) => b.invalidateTags(['t']), undefined],
  ['a soft purge of its tag', (b) => b.invalidateTags(['t'], { soft: true }), 'v1'],
  ['a clear()', (b) => b.clear(), undefined],
  ['a clear() of its key prefix', (b) => b.clear('pa'), undefined],
  // (Made by neither process: B syncs too before its copy is checked.)
  [
    'an expiry in Redis',
    async (_, prefix) => {
      await raw.pexpire(`${prefix}{k:page}v`, 1)
      await eventually(async () => (await raw.exists(`${prefix}{k:page}v`)) === 0, 'expired')
    },
    undefined,
  ],
  ['a FLUSHALL', () => raw.flushall(), undefined],
]
for (const [what, change, after] of changes) {
  t.test(`${what} in another process removes the local copy`, async (t) => {
    const [a, b] = await pair(t)
    await put(a, 'page', 'v1')
    await held(t, a, 'page', 'v1')
    await held(t, b, 'page', 'v1')
    await change(b, `lc${prefixes}:`)
    await local(a).sync()
    if (what === 'an expiry in Redis' || what === 'a FLUSHALL') await local(b).sync()
    t.notOk(local(a).has('page'), 'A dropped its copy')
    const now = await a.get('page')
    t.equal(body(now), after)
    if (what.startsWith('a soft'))
      t.equal(now?.softInvalidated, true, 'A reads the softly invalidated entry')
    // And in B, the process that made the change, without waiting for anything.
    t.notOk(local(b).has('page'), 'B dropped its own copy when the change returned')
  })
}

t.test('in the process that made a change, no copy is served once the call returned', async (t) => {
  for (const [what, change, after] of changes.slice(0, 6)) {
    const [a] = await pair(t)
    await put(a, 'page', 'v1')
    await held(t, a, 'page', 'v1')
    await change(a, `lc${prefixes}:`)
    t.equal(body(await a.get('page')), after, what)
  }
})

t.test('a read whose reply comes after the invalidation of its key keeps nothing', async (t) => {
  const [a, b] = await pair(t)
  await put(a, 'page', 'v1')
  // A reads v1 from Redis; before its reply is handled, B overwrites the entry and A's stream
  // delivers the invalidation (the reply and the message travel on two connections).
  const plain = new RedisStore({ url: server.url, prefix: `lc${prefixes}:`, timeoutMs: PATIENT_MS })
  t.teardown(() => plain.close())
  const read = await local(a).get('page', async (key) => {
    const entry = await plain.get(key)
    await put(b, 'page', 'v2')
    await local(a).sync()
    return entry
  })
  t.equal(body(read), 'v1', 'the read returns what it read')
  t.notOk(local(a).has('page'), 'but keeps no copy of it')
  t.equal(body(await a.get('page')), 'v2')
  t.ok(local(a).has('page'), 'the next read is kept')
})

t.test('a read in flight when the stream is lost keeps nothing', async (t) => {
  const [a] = await pair(t)
  await put(a, 'page', 'v1')
  const read = await local(a).get('page', async (key) => {
    const entry = await RedisStore.prototype.get.call(a, key)
    await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await eventually(() => !local(a).live, 'the stream is lost')
    // Back before the reply is handled: the read was sent while messages were being missed.
    await eventually(() => local(a).live, 'the stream is back')
    return entry
  })
  t.equal(body(read), 'v1')
  t.notOk(local(a).has('page'))
})

t.test('the stream lost: copies dropped, reads bypass them, and tracking resumes', async (t) => {
  const [a, b] = await pair(t)
  await put(a, 'page', 'v1')
  await held(t, a, 'page', 'v1')
  // Only the stream's connection is killed: Redis and the data connections stay up, so writes
  // go on while A hears nothing of them.
  await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  await eventually(() => !local(a).live, 'A sees its stream lost')
  t.same(local(a).size(), { entries: 0, bytes: 0 }, 'every copy dropped')
  await put(b, 'page', 'v2')
  // A's stream may be back already (ioredis reconnects at once); either way A reads v2.
  t.equal(body(await a.get('page')), 'v2')
  await eventually(() => local(a).live, 'the stream is back')
  await held(t, a, 'page', 'v2')
  await put(b, 'page', 'v3')
  await local(a).sync()
  t.notOk(local(a).has('page'), 'tracking is on again on the new connection')
  t.equal(body(await a.get('page')), 'v3')
})

t.test(
  'Redis killed and restarted: nothing local is served meanwhile, then copies come back',
  async (t) => {
    const [a] = await pair(t)
    await put(a, 'page', 'v1')
    await held(t, a, 'page', 'v1')
    await server.kill()
    await eventually(() => !local(a).live, 'the stream is lost')
    t.equal(local(a).size().entries, 0)
    await t.rejects(a.get('page'), /RedisStore/, 'a read goes to Redis (and fails), not to a copy')
    // invalidateTags while the stream is down: nothing to wait for.
    await t.rejects(a.invalidateTags(['t']))
    await server.restart()
    await eventually(() => local(a).live, 'the stream is back')
    // The stream's connection may be back before the store's own (each reconnects on its own
    // schedule): until then a write fails, saying so.
    const stored = async () => {
      const since = await a.checkpoint()
      return (await a.set('page', makeEntry({ body: Buffer.from('v2') }), since)) === true
    }
    await eventually(() => stored().catch(() => false), 'stored again')
    await held(t, a, 'page', 'v2')
  },
)

t.test('a stream that does not answer in time is taken for lost', async (t) => {
  const prefix = `lc${++prefixes}:`
  const a = await localStore(t, prefix, { timeoutMs: 200 })
  await put(await localStore(t, prefix), 'page', 'v1') // written by a patient store
  await held(t, a, 'page', 'v1')
  // A server that stops answering keeps its connections open: nothing closes; the heartbeat's
  // PING, unanswered within the timeout, is what finds out.
  server.pause()
  try {
    await eventually(() => !local(a).live, 'the heartbeat finds the stream silent')
    t.equal(local(a).size().entries, 0, 'copies dropped')
    let asked = false
    await local(a).get('page', async () => {
      asked = true
      return undefined
    })
    t.ok(asked, 'with the stream lost, a read goes to Redis, not to a copy')
  } finally {
    server.resume()
  }
  await eventually(() => local(a).live, 'the stream is back')
  await held(t, a, 'page', 'v1')
})

t.test('local copies stay within maxBytes and maxEntries, least recently used first', async (t) => {
  const prefix = `lc${++prefixes}:`
  const kib = 'x'.repeat(1024)
  const a = await localStore(t, prefix, { maxBytes: 5000 })
  for (const key of ['k1', 'k2', 'k3', 'k4']) await put(a, key, kib)
  for (const key of ['k1', 'k2', 'k3']) await a.get(key)
  t.ok(local(a).size().bytes <= 5000, `${local(a).size().bytes} bytes`)
  await a.get('k1') // k1 is now the most recent
  await a.get('k4')
  t.ok(local(a).has('k1') && local(a).has('k4'), 'the most recent are kept')
  t.ok(local(a).size().bytes <= 5000)
  await put(a, 'big', 'y'.repeat(6000))
  t.equal(body(await a.get('big'))?.length, 6000, 'an entry larger than maxBytes is served')
  t.notOk(local(a).has('big'), 'but not kept')
  const few = await localStore(t, prefix, { maxEntries: 2 })
  for (const key of ['k1', 'k2', 'k3']) await few.get(key)
  t.same(
    ['k1', 'k2', 'k3'].map((key) => local(few).has(key as string)),
    [false, true, true],
  )
  t.ok(local(few).size().bytes < 3 * 2000)
})

t.test('a copy past its expiresAt is not served', async (t) => {
  let now = Date.now()
  const a = await localStore(t, `lc${++prefixes}:`, { now: () => now })
  await put(a, 'page', 'v1')
  await held(t, a, 'page', 'v1')
  now += 61_000
  t.equal(await a.get('page'), undefined)
  t.notOk(local(a).has('page'))
})

t.test('a Redis that refuses tracking: the store works, without local copies', async (t) => {
  await raw.call('ACL', 'SETUSER', 'noclient', 'on', 'nopass', '~*', '&*', '+@all', '-client')
  const store = new RedisStore({
    url: `redis://noclient@127.0.0.1:${server.port}`,
    prefix: `lc${++prefixes}:`,
    timeoutMs: PATIENT_MS,
    localCache: { maxBytes: 1 << 20 },
  })
  t.teardown(() => store.close())
  await store.ready()
  await put(store, 'page', 'v1')
  t.equal(body(await store.get('page')), 'v1')
  t.notOk(local(store).live)
  t.notOk(local(store).has('page'))
})

t.test('an ACL user with the rule docs/stores.md gives keeps copies', async (t) => {
  const prefix = `lc${++prefixes}:`
  await raw.call(
    'ACL',
    'SETUSER',
    'lcuser',
    'on',
    'nopass',
    'resetkeys',
    `~${prefix}*`,
    'resetchannels',
    '&__redis__:invalidate',
    `&${prefix}#fence`,
    `&${prefix}#fenced`,
    '-@all',
    ...'+info +get +set +del +unlink +incr +time +getrange +setrange +pexpire +pttl +zadd +zcard +zrange +zremrangebyscore +scan +zscan +evalsha +eval +client|id +client|tracking +subscribe +publish +ping'.split(
      ' ',
    ),
  )
  const a = await localStore(t, prefix, { url: `redis://lcuser@127.0.0.1:${server.port}` })
  await put(a, 'page', 'v1')
  await held(t, a, 'page', 'v1')
})

t.test('options.localCache is checked', async (t) => {
  for (const bad of [
    null,
    5,
    {},
    { maxBytes: 0 },
    { maxBytes: 1.5 },
    { maxBytes: 10, maxEntries: -1 },
  ]) {
    t.throws(
      () => new RedisStore({ url: server.url, localCache: bad as never }),
      TypeError,
      JSON.stringify(bad),
    )
  }
})

t.test(
  'a client passed in: its duplicate carries the stream, and the client stays open',
  async (t) => {
    const client = new Redis(server.url)
    t.teardown(() => client.quit())
    const prefix = `lc${++prefixes}:`
    const store = new RedisStore({
      client,
      prefix,
      timeoutMs: PATIENT_MS,
      localCache: { maxBytes: 1 << 20 },
    })
    await eventually(() => local(store).live, 'live')
    await put(store, 'page', 'v1')
    await held(t, store, 'page', 'v1')
    await store.close()
    t.notOk(local(store).live)
    t.equal(client.status, 'ready')
  },
)

t.test(
  'another OS process: its copy goes when this one invalidates, over many rounds',
  async (t) => {
    const prefix = `lc${++prefixes}:`
    const a = await localStore(t, prefix)
    const child = fork(
      fileURLToPath(new URL('../fixtures/local-cache-process.ts', import.meta.url)),
      [],
      {
        env: { ...process.env, ACC_REDIS_URL: server.url, ACC_PREFIX: prefix },
        execArgv: process.execArgv,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    )
    t.teardown(
      () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve()
          child.once('exit', () => resolve())
          child.kill('SIGTERM')
        }),
    )
    // The child says hello once its stream is up.
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve())
      child.once('exit', (code) => reject(new Error(`the child exited with ${code}`)))
    })
    const replies: Array<(reply: { body?: string; held: boolean }) => void> = []
    child.on('message', (reply: { body?: string; held: boolean }) => replies.shift()!(reply))
    const ask = (op: string, key = 'page') =>
      new Promise<{ body?: string; held: boolean }>((resolve) => {
        replies.push(resolve)
        child.send({ op, key })
      })
    let stale = 0
    for (let round = 1; round <= 50; round++) {
      await put(a, 'page', `v${round}`)
      t.equal((await ask('get')).body, `v${round}`)
      const second = await ask('get')
      if (!second.held || second.body !== `v${round}`)
        t.fail(`round ${round}: the child kept no copy`)
      await a.invalidateTags(['t'])
      await ask('sync')
      const after = await ask('get')
      if (after.body !== undefined) stale++
    }
    t.equal(stale, 0, 'no stale local hit in 50 rounds of invalidate-then-read')
  },
)
