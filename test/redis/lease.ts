// RedisStore.lease on a private redis-server: claims, waits woken by the holder's release or
// the lease's expiry, fail-open errors; and the core's use of a leasing store (src/lease.ts),
// with a store of the test's own whose lease answers as each case needs.
import t, { type Test } from 'tap'
import { RedisStore, RedisStoreError } from '../../stores/redis.js'
import { MemoryStore } from '../../stores/memory.js'
import { accelerate } from '../../src/index.js'
import type { CacheEntry, LeaseClaim } from '../../src/store.js'
import { Cluster } from 'ioredis'
import {
  startRedis,
  startCluster,
  freePort,
  PATIENT_MS,
  type RedisServer,
} from '../fixtures/redis-server.js'
import { gate, listen, request, eventually } from '../fixtures/http.js'

let redis!: RedisServer
t.before(async () => {
  redis = await startRedis(t)
})

const newStore = (t: Test, options: ConstructorParameters<typeof RedisStore>[0] = {}) => {
  const store = new RedisStore({
    url: redis.url,
    prefix: `lease:${t.name.length}:${Math.random()}:`,
    timeoutMs: 5000,
    ...options,
  })
  t.teardown(() => store.close())
  return store
}
type Held = Extract<LeaseClaim, { kind: 'held' }>
type Busy = Extract<LeaseClaim, { kind: 'busy' }>

t.test('a lease: held by one, busy for the others until released, then free', async (t) => {
  const prefix = `lease:one:${process.pid}:`
  const one = newStore(t, { prefix })
  const two = newStore(t, { prefix })
  const held = (await one.lease!('k', 10_000)) as Held
  t.equal(held.kind, 'held', 'the first claim holds it (ifAbsent defaults to false)')
  const busy = (await two.lease!('k', 10_000, true)) as Busy
  const other = (await two.lease!('k', 10_000, false)) as Busy
  t.equal(busy.kind, 'busy')
  t.equal(await busy.wait(1), 'timeout', 'a short wait ends at its bound')
  const again = (await two.lease!('k', 10_000)) as Busy
  await held.release()
  await held.release() // twice: nothing more
  t.equal(await other.wait(10_000), 'released', 'woken by the release')
  // The same message reached every waiter of the key in that process: this one heard it already.
  t.equal(await again.wait(10_000), 'released')
  const mine = (await two.lease!('k', 10_000)) as Held
  t.equal(mine.kind, 'held', 'free once released')
  await mine.release(true)
})

t.test("alone: the holder's response could not be shared", async (t) => {
  const prefix = `lease:alone:${process.pid}:`
  const one = newStore(t, { prefix })
  const two = newStore(t, { prefix })
  const held = (await one.lease!('k', 10_000)) as Held
  const busy = (await two.lease!('k', 10_000)) as Busy
  await held.release(true)
  t.equal(await busy.wait(10_000), 'alone')
})

t.test('ifAbsent: an entry stored at the key answers stored', async (t) => {
  const store = newStore(t)
  const now = Date.now()
  const entry: CacheEntry = {
    status: 200,
    headers: { etag: '"1"', date: new Date(now).toUTCString(), 'content-length': '1' },
    body: Buffer.from('x'),
    tags: [],
    storedAt: now,
    initialAge: 0,
    staleAt: now + 60_000,
    expiresAt: now + 60_000,
  }
  t.ok(await store.set('k', entry, await store.checkpoint()))
  t.same(await store.lease!('k', 1000, true), { kind: 'stored' })
  t.equal((await store.lease!('k', 1000, false)).kind, 'held')
})

t.test('a lease whose holder is gone expires: its waiters wake by themselves', async (t) => {
  const prefix = `lease:gone:${process.pid}:`
  const one = new RedisStore({ url: redis.url, prefix, timeoutMs: 5000 })
  const two = newStore(t, { prefix })
  t.equal((await one.lease!('k', 300)).kind, 'held')
  // Renewed while its store lives (every 100 ms), then left to expire.
  const busy = (await two.lease!('k', 300)) as Busy
  await one.close()
  const woke = await busy.wait(10_000)
  t.equal(woke, 'expired')
  await eventually(async () => (await two.lease!('k', 300)).kind === 'held', 'the lease expired')
})

t.test('a release after close does nothing; a closed store wakes its waiters', async (t) => {
  const prefix = `lease:closed:${process.pid}:`
  const one = newStore(t, { prefix })
  const two = new RedisStore({ url: redis.url, prefix, timeoutMs: 5000 })
  const held = (await one.lease!('k', 10_000)) as Held
  const busy = (await two.lease!('k', 10_000)) as Busy
  const waited = busy.wait(10_000)
  const mine = (await two.lease!('j', 10_000)) as Held
  await two.close()
  t.equal(await waited, 'closed')
  await mine.release()
  await held.release()
  await t.rejects(two.lease!('k', 1000), RedisStoreError, 'a closed store claims nothing')
})

t.test('lease: false; bad options and arguments', async (t) => {
  const store = newStore(t, { lease: false })
  t.equal(store.lease, undefined)
  t.throws(() => new RedisStore({ url: redis.url, lease: 'yes' as never }), {
    message: "expected options.lease to be a boolean, got 'yes'",
  })
  await t.rejects(newStore(t).lease!('k', 0), {
    message: 'expected lease ttlMs to be a positive integer, got 0',
  })
})

t.test('no subscriber: a claim fails within the timeout, naming the server', async (t) => {
  const port = await freePort()
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, timeoutMs: 50 })
  t.teardown(() => store.close())
  await t.rejects(store.lease!('k', 1000), {
    message: `RedisStore redis://127.0.0.1:${port}: lease notifications are not subscribed (their connection is down); generating without waiting for other processes`,
    outage: true,
  })
  await t.rejects(
    store.lease!('k', 1000),
    RedisStoreError,
    'and again, on the same connection trying',
  )
  const closed = new RedisStore({ url: redis.url })
  await closed.close()
  await t.rejects(
    closed.lease!('k', 1000),
    { message: `RedisStore ${redis.url}: closed (close() was called)` },
    'closed: nothing connected',
  )
})

t.test('Redis paused: a claim times out (fail open)', async (t) => {
  const prefix = `lease:paused:${process.pid}:`
  const store = new RedisStore({ url: redis.url, prefix, timeoutMs: 100 })
  t.teardown(() => store.close())
  // The subscriber up first (its connection may take longer than 100 ms on a loaded machine).
  let held: Held | undefined
  await eventually(async () => {
    const claim = await store.lease!('k', 10_000).catch(() => undefined)
    if (claim?.kind === 'held') held = claim as Held
    return held !== undefined
  }, 'the first claim held')
  redis.pause()
  t.teardown(() => redis.resume())
  await t.rejects(store.lease!('j', 1000), { message: /timed out/ })
  redis.resume()
  await held!.release().catch(() => {})
})

t.test(
  "on a Redis Cluster: the lease lives in the entry's slot, its release reaches every node's subscribers",
  async (t) => {
    const cluster = new Cluster(await startCluster(t))
    t.teardown(() => cluster.disconnect())
    const [one, two] = [0, 1].map(
      () => new RedisStore({ client: cluster, prefix: 'cl:', timeoutMs: PATIENT_MS }),
    )
    t.teardown(() => Promise.all([one!.close(), two!.close()]))
    for (const key of ['a', 'b', 'c', 'd']) {
      const held = (await one!.lease!(key, 10_000, true)) as Held
      t.equal(held.kind, 'held', key)
      const busy = (await two!.lease!(key, 10_000, true)) as Busy
      t.equal(busy.kind, 'busy')
      await held.release()
      t.equal(await busy.wait(PATIENT_MS), 'released')
    }
  },
)

/** A MemoryStore whose lease answers what the test queues. */
class Leasing extends MemoryStore {
  readonly asked: Array<[string, boolean | undefined]> = []
  readonly answers: Array<() => Promise<LeaseClaim>> = []
  failGet = false
  override get(key: string) {
    return this.failGet ? Promise.reject(new Error('get failed')) : super.get(key)
  }
  // The lookup reads a MemoryStore synchronously (peek) while nobody traces store calls.
  override peek(key: string) {
    if (this.failGet) throw new Error('get failed')
    return super.peek(key)
  }
  lease(key: string, _ttlMs: number, ifAbsent?: boolean): Promise<LeaseClaim> {
    this.asked.push([key, ifAbsent])
    return this.answers.shift()!()
  }
}

const busyWith =
  (
    wake: 'released' | 'alone' | 'expired' | 'timeout',
    before?: () => void,
  ): (() => Promise<LeaseClaim>) =>
  async () => ({ kind: 'busy', wait: async () => (before?.(), wake) })

async function app(t: Test, store: Leasing, coalesceTimeoutMs = 5000) {
  const errors: string[] = []
  let renders = 0
  const hold = gate()
  const accelerated = accelerate(
    async (req, res) => {
      renders++
      res.cacheFor = 60
      if (req.headers['x-hold'] === '1') await hold.promise
      return `render ${renders}`
    },
    {
      store,
      coalesceTimeoutMs,
      onError: (err, { op }) => void errors.push(`${op}: ${err.message}`),
    },
  )
  t.teardown(() => accelerated.close())
  const url = await listen(t, accelerated)
  return { url, errors, renders: () => renders, hold, accelerated }
}

t.test('core: held, the lease is released once the entry is stored', async (t) => {
  const store = new Leasing()
  const released: Array<boolean | undefined> = []
  store.answers.push(async () => ({
    kind: 'held',
    release: async (alone) => void released.push(alone),
  }))
  const { url } = await app(t, store)
  t.equal((await request(url + '/a')).text, 'render 1')
  await eventually(() => released.length === 1, 'released')
  t.same(released, [false])
  t.same(
    store.asked.map(([, ifAbsent]) => ifAbsent),
    [true],
    'asked once, unless an entry is stored',
  )
})

t.test('core: a release that fails is reported', async (t) => {
  const store = new Leasing()
  store.answers.push(async () => ({
    kind: 'held',
    release: () => Promise.reject(new Error('release failed')),
  }))
  const { url, errors } = await app(t, store)
  await request(url + '/a')
  await eventually(() => errors.length === 1, 'reported')
  t.match(errors, ['lease: release failed'])
})

t.test('core: a claim that fails is reported, and the request generates at once', async (t) => {
  const store = new Leasing()
  store.answers.push(() => Promise.reject(new Error('claim failed')))
  const { url, errors } = await app(t, store)
  t.equal((await request(url + '/a')).text, 'render 1')
  t.match(errors, ['lease: claim failed'])
})

t.test(
  'core: woken with the entry stored meanwhile, a hit for the request and its waiters',
  async (t) => {
    const store = new Leasing()
    const now = Date.now()
    const entry: CacheEntry = {
      status: 200,
      headers: { etag: '"o"', date: new Date(now).toUTCString(), 'content-length': '5' },
      body: Buffer.from('other'),
      tags: [],
      storedAt: now,
      initialAge: 0,
      staleAt: now + 60_000,
      expiresAt: now + 60_000,
    }
    const woken = gate()
    store.answers.push(async () => ({
      kind: 'busy',
      wait: async () => (await woken.promise, 'released'),
    }))
    const { url, renders, accelerated } = await app(t, store)
    const stats = () => accelerated.stats()
    const first = request(url + '/a')
    await eventually(() => store.asked.length === 1, 'claimed')
    const second = request(url + '/a')
    await eventually(() => stats().coalesced === 1, 'the second waits on the first')
    // Another process stores the entry (the key as the default key function makes it).
    await store.set(store.asked[0]![0], entry, await store.checkpoint())
    woken.open()
    const replies = await Promise.all([first, second])
    t.same(
      replies.map((reply) => reply.text),
      ['other', 'other'],
    )
    t.ok(
      replies.every((reply) => /; hit/.test(String(reply.headers['cache-status']))),
      'hits',
    )
    t.equal(renders(), 0)
  },
)

t.test('core: stored, then nothing fresh on a second look: the next claim holds it', async (t) => {
  const store = new Leasing()
  store.answers.push(async () => ({ kind: 'stored' }))
  store.answers.push(busyWith('expired'))
  store.answers.push(async () => ({ kind: 'held', release: async () => {} }))
  const { url } = await app(t, store)
  t.equal((await request(url + '/a')).text, 'render 1')
  t.same(
    store.asked.map(([, ifAbsent]) => ifAbsent),
    [true, false, false],
  )
})

t.test('core: woken alone, or at the bound, or with the store down: generates', async (t) => {
  for (const [wake, failGet] of [
    ['alone', false],
    ['timeout', false],
    ['released', true],
  ] as const) {
    const store = new Leasing()
    store.answers.push(busyWith(wake, () => void (store.failGet = failGet)))
    const { url, renders, errors } = await app(t, store)
    t.equal((await request(url + '/a')).text, 'render 1', wake)
    t.equal(renders(), 1)
    t.equal(store.asked.length, 1, `${wake}: no second claim`)
    t.same(
      errors,
      failGet ? ['get: get failed'] : [],
      failGet ? 'the failed lookup reported' : 'nothing reported',
    )
  }
})

t.test(
  'core: no lease for no-store requests, without a wait bound, for a hedge, or past the bound',
  async (t) => {
    const store = new Leasing()
    const { url } = await app(t, store)
    await request(url + '/a', { headers: { 'cache-control': 'no-store' } })
    const unbounded = await app(t, store, 0)
    await request(unbounded.url + '/b')
    t.same(store.asked, [], 'not asked')
    // A generation slower than the bound: the request after it hedges without asking.
    const slow = await app(t, store, 50)
    store.answers.push(async () => ({ kind: 'held', release: async () => {} }))
    const first = request(slow.url + '/c', { headers: { 'x-hold': '1' } })
    await eventually(() => slow.renders() === 1, 'the first renders')
    store.answers.push(busyWith('expired'))
    const hedge = await request(slow.url + '/c')
    t.equal(hedge.text, 'render 2', 'the hedge generated')
    slow.hold.open()
    await first
    t.equal(store.asked.length, 1, 'one claim: the hedge asked for none')
    store.answers.length = 0
  },
)

t.test('core: close while holding a lease releases it', async (t) => {
  const store = new Leasing()
  const released: Array<boolean | undefined> = []
  store.answers.push(async () => ({
    kind: 'held',
    release: async (alone) => void released.push(alone),
  }))
  const { url, accelerated, renders, hold } = await app(t, store)
  const first = request(url + '/a', { headers: { 'x-hold': '1' } }).catch(() => undefined)
  await eventually(() => renders() === 1, 'rendering')
  await accelerated.close()
  t.same(released, [false])
  // The handler may finish: its client is answered, nothing left pending past the test.
  hold.open()
  await first
})
