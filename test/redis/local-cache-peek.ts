// RedisStore's `peek` with a local cache: a held copy at once (a hit without a promise), else
// `null` ("ask get"), never a copy that an invalidation already applied removed, never one while
// the invalidation stream is lost; and the lookup falls back to `get` on `null`.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { accelerate } from '../../src/index.js'
import { lookupIn } from '../../src/core/lookup.js'
import { RedisStore } from '../../stores/redis.js'
import { MemoryStore } from '../../stores/memory.js'
import { startRedis, type RedisServer } from '../fixtures/redis-server.js'
import { makeEntry } from '../fixtures/store-conformance.js'
import { eventually, listen, request } from '../fixtures/http.js'
import { bodyOf, local, localStore as localStoreOn, put } from '../fixtures/local-cache.js'
import type { CacheStore } from '../../src/store.js'

let server!: RedisServer
let raw!: Redis
t.before(async () => {
  server = await startRedis(t)
  raw = new Redis(server.url)
  t.teardown(() => raw.quit())
})

let prefixes = 0
const localStore = (t: Test, prefix: string, now?: () => number) =>
  localStoreOn(t, { url: server.url, prefix, ...(now ? { now } : {}) })

async function pair(t: Test): Promise<[RedisStore, RedisStore]> {
  const prefix = `lp${++prefixes}:`
  return [await localStore(t, prefix), await localStore(t, prefix)]
}

const body = bodyOf

/** Reads `key` through `store` until its copy is held. */
async function held(store: RedisStore, key: string, text: string): Promise<void> {
  await eventually(
    async () => body(await store.get(key)) === text && local(store).has(key),
    `${key} kept`,
  )
}

t.test('peek: the held copy at once, else null (ask get), never undefined', async (t) => {
  let now = Date.now()
  const a = await localStore(t, `lp${++prefixes}:`, () => now)
  t.equal(typeof a.peek, 'function')
  t.equal(a.peek!('page'), null, 'nothing held: ask get (only Redis knows it is absent)')
  await put(a, 'page', 'v1')
  t.equal(a.peek!('page'), null, 'stored but not read here: ask get')
  await held(a, 'page', 'v1')
  const copy = a.peek!('page')
  t.equal(body(copy), 'v1')
  t.equal(copy, await a.get('page'), 'the very copy get resolves')
  now += 61_000
  t.equal(a.peek!('page'), null, 'past its expiresAt: ask get')
  t.notOk(local(a).has('page'), 'and the copy is dropped')
  const plain = new RedisStore({ url: server.url, prefix: `lp${prefixes}:` })
  t.teardown(() => plain.close())
  t.equal(plain.peek, undefined, 'without localCache, no peek: every lookup goes through get')
})

t.test('a peek after an invalidation returned never sees the old copy', async (t) => {
  const changes: Array<[string, (s: RedisStore) => Promise<unknown>, string | undefined]> = [
    ['an overwrite', (s) => put(s, 'page', 'v2'), 'v2'],
    ['a delete', (s) => s.delete('page'), undefined],
    ['an invalidation of its tag', (s) => s.invalidateTags(['t']), undefined],
    ['a soft purge', (s) => s.invalidateTags(['t'], { soft: true }), 'v1'],
    ['a clear()', (s) => s.clear(), undefined],
  ]
  for (const [what, change, after] of changes) {
    const [a, b] = await pair(t)
    await put(a, 'page', 'v1')
    await held(a, 'page', 'v1')
    await held(b, 'page', 'v1')
    // In the process that made the change: as soon as the call returned, with no turn between.
    await change(b)
    t.equal(b.peek!('page'), null, `${what}: B, which made it, asks get at once`)
    // In another process: once its stream answered a command sent after the change returned.
    await local(a).sync()
    t.equal(a.peek!('page'), null, `${what}: A asks get after its stream caught up`)
    const read = await a.get('page')
    t.equal(body(read), after, `${what}: and get reads what Redis holds`)
    if (what === 'a soft purge') t.equal(read?.softInvalidated, true)
  }
})

t.test('a peek while the stream is lost asks get, until tracking is back', async (t) => {
  const [a] = await pair(t)
  await put(a, 'page', 'v1')
  await held(a, 'page', 'v1')
  t.equal(body(a.peek!('page')), 'v1')
  await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  await eventually(() => !local(a).live, 'A sees its stream lost')
  t.equal(a.peek!('page'), null, 'the copy is not served while the stream is down')
  // Reads meanwhile keep nothing for a later peek.
  await a.get('page')
  t.equal(a.peek!('page'), null)
  await eventually(() => local(a).live, 'the stream is back')
  await held(a, 'page', 'v1')
  t.equal(body(a.peek!('page')), 'v1', 'copies are peeked again once tracking is on')
})

t.test(
  'a stream silent past the timeout: the heartbeat drops the copies peek would serve',
  async (t) => {
    const prefix = `lp${++prefixes}:`
    const a = new RedisStore({
      url: server.url,
      prefix,
      timeoutMs: 200,
      localCache: { maxBytes: 1 << 20 },
    })
    t.teardown(() => a.close())
    await eventually(() => local(a).live, 'live')
    await put(await localStore(t, prefix), 'page', 'v1')
    await eventually(
      async () => body(await a.get('page').catch(() => undefined)) === 'v1' && local(a).has('page'),
      'kept',
    )
    server.pause()
    try {
      await eventually(() => !local(a).live, 'the heartbeat finds the stream silent')
      t.equal(a.peek!('page'), null)
    } finally {
      server.resume()
    }
  },
)

t.test(
  'the accelerator serves local hits through peek, and asks get when it says null',
  async (t) => {
    const prefix = `lp${++prefixes}:`
    const store = await localStore(t, prefix)
    let gets = 0
    const get = store.get
    store.get = (key) => {
      gets++
      return get(key)
    }
    let renders = 0
    const app = accelerate(
      (req, res) => {
        renders++
        res.cacheFor = 60
        res.setHeader('vary', 'accept-language')
        return `hello ${req.headers['accept-language'] ?? '-'}`
      },
      { store },
    )
    const base = await listen(t, app)
    const fr = { headers: { 'accept-language': 'fr' } }
    t.equal((await request(base + '/v', fr)).body.toString(), 'hello fr')
    await eventually(async () => {
      const reply = await request(base + '/v', fr)
      return /hit/.test(String(reply.headers['cache-status']))
    }, 'a hit')
    // Both the vary record and the variant are held now: hits ask get nothing.
    await eventually(async () => {
      const before = gets
      await request(base + '/v', fr)
      return gets === before
    }, 'a hit from local copies only')
    // Another variant: the record is peeked, the variant is not held, so get is asked for it.
    const before = gets
    const de = await request(base + '/v', { headers: { 'accept-language': 'de' } })
    t.equal(de.body.toString(), 'hello de')
    t.ok(gets > before, 'the variant not held locally was read through get')
    t.equal(renders, 2)
  },
)

t.test('lookup: a variant read through get that fails is a store down, not a crash', async (t) => {
  const record = makeEntry({ status: 0, body: Buffer.alloc(0), variesOn: ['accept-language'] })
  const errors: Error[] = []
  const store: CacheStore = Object.assign(new MemoryStore(), {
    peek: (key: string) => (key === 'base' ? record : null),
    get: () => Promise.reject(new Error('down')),
  })
  const lookup = lookupIn(store, { normalizeVary: false }, (err) => errors.push(err))
  const found = await lookup('base', { 'accept-language': 'fr' })
  t.same(found, { key: 'base', storeDown: true })
  t.same(
    errors.map((err) => err.message),
    ['down'],
  )
  t.teardown(() => store.close())
})
