// Never herd (issue 13): one test per event of the table, each counting how often the
// origin ran for one key. When a generation cannot serve the requests waiting on it (refused by an
// invalidation, a HEAD or 304 leader, another variant, its client gone, too slow), exactly one of
// them leads the next generation and the rest wait on it; a slow or vanished client holds nobody
// else; and a request between "response sent" and "entry stored" waits instead of missing.
// Interleavings are set with gates (the handler awaits a promise the test resolves) and observed
// through stats().coalesced (requests that waited on another's generation), never with sleeps.
import t, { type Test } from 'tap'
import http, { type IncomingMessage } from 'node:http'
import express from 'express'
import { Readable } from 'node:stream'
import { accelerate, MemoryStore } from '../../src/index.js'
import type { Accelerator, AcceleratedResponse, CacheStore, Handler } from '../../src/index.js'
import { RedisStore } from '../../stores/redis.js'
import {
  eventually,
  gate,
  listen,
  manualClock,
  pattern,
  request,
  steady,
  type Reply,
} from '../fixtures/http.js'
import { HeldStore } from '../fixtures/held-store.js'
import { sharedRedis, PATIENT_MS } from '../fixtures/redis-server.js'
import { serve } from '../fixtures/transports.js'

const TIMEOUT = { timeout: 60_000 }

/** A bounded wait: a herd test that fails must fail, not hang the suite. */
const until = (condition: () => boolean, what: string) => eventually(condition, what, 15_000)

/** The body of generation `n`: names its generation first, then bytes that show truncation. */
function bodyOf(n: number, size = 4096, extra = ''): Buffer {
  const head = Buffer.from(`gen=${n};${extra}`)
  return Buffer.concat([head, pattern(size - head.length, n)])
}
const genOf = (reply: Reply) => Number(/^gen=(\d+);/.exec(reply.text)?.[1])

/**
 * An origin whose runs are generations 1, 2, 3...: run `n` waits on `holds.get(n)` when the test
 * set one, then answers with `respond`. `runs` is the handler-run counter the bounds are about.
 */
function origin(
  respond: (n: number, req: IncomingMessage, res: AcceleratedResponse) => ReturnType<Handler>,
) {
  const holds = new Map<number, ReturnType<typeof gate<void>>>()
  const state = {
    runs: 0,
    holds,
    /** Run `n` waits until the returned gate opens. */
    hold(n: number) {
      const g = gate()
      holds.set(n, g)
      return g
    },
    openAll() {
      for (const g of holds.values()) g.open()
    },
    handler: (async (req, res) => {
      const n = ++state.runs
      await holds.get(n)?.promise
      return respond(n, req, res)
    }) as Handler,
  }
  return state
}

/** Stored for a minute under tag `t`; body bytes name the generation. */
const cached = (n: number, _req: IncomingMessage, res: AcceleratedResponse) => {
  res.cacheFor = 60
  res.tags = ['t']
  res.setHeader('content-type', 'application/octet-stream')
  return bodyOf(n)
}

async function start(
  t: Test,
  handler: Handler,
  options = {},
): Promise<{ app: Accelerator; url: string }> {
  const app = accelerate(handler, options)
  t.teardown(() => app.close())
  return { app, url: await listen(t, app) }
}

/**
 * Resolves once `n` requests wait on another's generation (stats().coalesced, counted since
 * `from`) or lead one of their own (`leading()`: handler runs beyond those already counted): a
 * request arriving into a generation that cannot serve it may start the next one at once.
 */
function waiting(app: Accelerator, n: number, from = 0, leading = () => 0): Promise<void> {
  const count = () => app.stats().coalesced - from + leading()
  return until(() => count() >= n, `${n} requests waiting on a generation or leading one`)
}

function wholeBodies(t: Test, replies: Reply[], what: string, size?: number) {
  const whole = (r: Reply) =>
    r.status === 200 && Number.isInteger(genOf(r)) && r.body.equals(bodyOf(genOf(r), size))
  const bad = replies.filter((r) => !whole(r)).map((r) => `${r.status}/${r.body.length}`)
  t.equal(bad.length, 0, `${what}: every one got a whole generation (not: ${bad.join(', ')})`)
}

function atMost(t: Test, runs: number, bound: number, what: string) {
  t.ok(runs <= bound, `${what}: ${runs} handler runs, at most ${bound}`)
}

t.test(
  '50 concurrent requests for a hot key while its tag is invalidated mid-generation: 2 runs',
  TIMEOUT,
  async (t) => {
    const o = origin(cached)
    t.teardown(() => o.openAll())
    const { app, url } = await start(t, o.handler)
    t.equal(genOf(await request(url + '/k')), 1, 'hot: generation 1 stored')
    await app.invalidateTags(['t'])
    const second = o.hold(2)
    const leader = request(url + '/k')
    await until(() => o.runs === 2, 'generation 2 running')
    const crowd = Array.from({ length: 49 }, () => request(url + '/k'))
    await waiting(app, 49)
    // Generation 2 began before this invalidation: it must not be stored, nor served to the late.
    // Held too: a generation after the invalidation may start at once and finish before the last
    // late request arrives, which would then be a hit, neither waiting nor leading.
    const third = o.hold(3)
    await app.invalidateTags(['t'])
    const late = Array.from({ length: 10 }, () => request(url + '/k'))
    await waiting(app, 59, 0, () => o.runs - 2)
    second.open()
    third.open()
    const replies = await Promise.all([leader, ...crowd, ...late])
    wholeBodies(t, replies, 'all 60')
    const lateGens = (await Promise.all(late)).map(genOf)
    const gens = [...new Set(lateGens)].join(', ')
    t.ok(
      lateGens.every((g) => g >= 3),
      `requests arriving after the invalidation: a later generation (${gens})`,
    )
    atMost(t, o.runs - 1, 2, 'the refused generation and the one after it')
    const after = await request(url + '/k')
    t.match(after.headers['cache-status'], /; hit/, 'the next generation was stored')
    t.equal(genOf(after), o.runs, 'the last generation')
  },
)

t.test(
  "55 requests in waves while a stale hot key's refresh is invalidated: at most 2 more runs",
  TIMEOUT,
  async (t) => {
    const clock = manualClock()
    const o = origin(cached)
    t.teardown(() => o.openAll())
    const { app, url } = await start(t, o.handler, { now: clock.now, staleWhileRevalidate: 30 })
    await request(url + '/k')
    for (let n = 2; n < 60; n++) o.hold(n)
    clock.advance(61_000) // stale: served at once while one refresh runs
    const first = await Promise.all(Array.from({ length: 11 }, () => request(url + '/k')))
    t.ok(
      first.every((r) => genOf(r) === 1),
      'the first wave is served stale',
    )
    await until(() => o.runs === 2, 'the background refresh running')
    // The refresh began before this invalidation: it must not be stored.
    await app.invalidateTags(['t'])
    const coalesced = app.stats().coalesced
    const waves = Array.from({ length: 44 }, () => request(url + '/k'))
    await waiting(app, 44, coalesced, () => o.runs - 2)
    await steady(() => o.runs)
    o.openAll()
    const replies = await Promise.all(waves)
    wholeBodies(t, replies, 'the 44 after the invalidation')
    t.ok(
      replies.every((r) => genOf(r) >= 3),
      'none got the refused refresh or the purged entry',
    )
    atMost(t, o.runs - 1, 2, 'the refused refresh and the one after it')
  },
)

t.test('a HEAD starts the generation, then 20 GETs: at most 2 runs', TIMEOUT, async (t) => {
  const o = origin(cached)
  t.teardown(() => o.openAll())
  const { app, url } = await start(t, o.handler)
  const first = o.hold(1)
  const head = request(url + '/k', { method: 'HEAD' })
  await until(() => o.runs === 1, 'the HEAD generating')
  const gets = Array.from({ length: 20 }, () => request(url + '/k'))
  await waiting(app, 20)
  first.open()
  const headReply = await head
  t.equal(headReply.status, 200)
  t.equal(headReply.body.length, 0, 'the HEAD client gets no body')
  wholeBodies(t, await Promise.all(gets), '20 GETs')
  atMost(t, o.runs, 2, 'HEAD then 20 GETs')
  t.match((await request(url + '/k')).headers['cache-status'], /; hit/, 'stored')
})

t.test(
  'the first request has a matching If-None-Match (lazy 304), then 20 unconditional: at most 2 runs',
  TIMEOUT,
  async (t) => {
    let bodiesStarted = 0
    const o = origin((n, _req, res) => {
      res.cacheFor = 60
      res.setHeader('etag', '"v1"')
      return (async function* () {
        bodiesStarted++
        yield bodyOf(n)
      })()
    })
    t.teardown(() => o.openAll())
    const { app, url } = await start(t, o.handler)
    const first = o.hold(1)
    const conditional = request(url + '/k', { headers: { 'if-none-match': '"v1"' } })
    await until(() => o.runs === 1, 'the conditional request generating')
    const gets = Array.from({ length: 20 }, () => request(url + '/k'))
    await waiting(app, 20)
    first.open()
    t.equal((await conditional).status, 304, 'the revalidating client gets its 304')
    wholeBodies(t, await Promise.all(gets), '20 unconditional')
    atMost(t, o.runs, 2, 'lazy 304 then 20 GETs')
    t.ok(bodiesStarted <= 2, `bodies started: ${bodiesStarted}`)
    t.match((await request(url + '/k')).headers['cache-status'], /; hit/, 'stored')
  },
)

// A pipe() unpipes when its response emits 'finish' or 'close': a leader answered 304 (or HEAD:
// HTTP/2 ends such a stream with its headers) must not stop the body the waiters read. (The
// conditional cases failed before 'finish' was held: waiters cut, nothing stored.)
for (const transport of ['http', 'h2c'] as const) {
  for (const leading of ['conditional', 'HEAD'] as const) {
    const name = `${transport}: a ${leading} leader, a pipe()d body, 10 waiting: 1 run, all whole`
    t.test(name, TIMEOUT, async (t) => {
      const flow = gate()
      t.teardown(() => flow.open())
      const size = 64 * 1024
      const o = origin((n, _req, res) => {
        res.cacheFor = 60
        res.setHeader('etag', '"v1"')
        res.setHeader('content-type', 'application/octet-stream')
        const body = bodyOf(n, size)
        // The first chunk makes the head final (the leader's answer goes out); the rest flows
        // once the leader's client has it.
        Readable.from(
          (async function* () {
            for (let at = 0; at < size; at += 8192) {
              if (at === 8192) await flow.promise
              yield body.subarray(at, at + 8192)
            }
          })(),
        ).pipe(res)
      })
      t.teardown(() => o.openAll())
      const app = accelerate(o.handler)
      t.teardown(() => app.close())
      const served = await serve(t, transport, app)
      const first = o.hold(1)
      const asks =
        leading === 'HEAD' ? { method: 'HEAD' } : { headers: { 'if-none-match': '"v1"' } }
      const leader = served.request('/k', asks)
      await until(() => o.runs === 1, 'the leader generating')
      const waiters = Array.from({ length: 10 }, () => served.request('/k'))
      await waiting(app, 10)
      first.open()
      t.equal(
        (await leader).status,
        leading === 'HEAD' ? 200 : 304,
        'the leader gets its answer at once',
      )
      flow.open()
      const replies = await Promise.all(waiters)
      const bad = replies.filter(
        (r) => !(r.status === 200 && r.complete && r.body.equals(bodyOf(1, size))),
      )
      t.same(
        bad.map((r) => `${r.status}/${r.body.length}`),
        [],
        'every waiter got the whole body',
      )
      t.equal(o.runs, 1, 'one handler run')
      t.match((await served.request('/k')).headers['cache-status'], /; hit/, 'stored')
    })
  }
}

/** A GET that reads its first body bytes, then hangs up when told. */
function abortable(url: string) {
  let req!: http.ClientRequest
  const firstBytes = new Promise<Buffer>((resolve, reject) => {
    req = http.request(url, { agent: false }, (res) => res.once('data', resolve))
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ECONNRESET' ? undefined : reject(err),
    )
    req.end()
  })
  return { firstBytes, abort: () => req.destroy() }
}

t.test(
  "the leader's client aborts mid-body with 20 waiting: at most 2 runs, every waiter whole",
  TIMEOUT,
  async (t) => {
    const leaderClosed = gate()
    const o = origin(async (n, _req, res) => {
      res.cacheFor = 60
      res.setHeader('content-type', 'application/octet-stream')
      const body = bodyOf(n, 256 * 1024)
      res.write(body.subarray(0, 64 * 1024))
      if (n === 1) {
        res.once('close', () => leaderClosed.open())
        await rest.promise
      }
      res.end(body.subarray(64 * 1024))
    })
    const rest = gate()
    t.teardown(() => rest.open())
    const { app, url } = await start(t, o.handler)
    const leader = abortable(url + '/k')
    await leader.firstBytes
    const waiters = Array.from({ length: 20 }, () => request(url + '/k'))
    await waiting(app, 20)
    leader.abort()
    await leaderClosed.promise
    rest.open()
    const replies = await Promise.all(waiters)
    wholeBodies(t, replies, '20 waiters', 256 * 1024)
    atMost(t, o.runs, 2, 'leader gone mid-body')
    t.match((await request(url + '/k')).headers['cache-status'], /; hit/, 'stored')
  },
)

t.test('20 cold requests split over 2 Vary variants: one run per variant', TIMEOUT, async (t) => {
  const o = origin((n, req, res) => {
    res.cacheFor = 60
    res.setHeader('vary', 'Accept-Language')
    return bodyOf(n, 4096, `lang=${req.headers['accept-language']};`)
  })
  t.teardown(() => o.openAll())
  const { app, url } = await start(t, o.handler)
  const first = o.hold(1)
  const lang = (i: number) => (i % 2 === 0 ? 'fr' : 'de')
  const leader = request(url + '/k', { headers: { 'accept-language': 'fr' } })
  await until(() => o.runs === 1, 'the fr leader generating')
  const ask = (l: string) => request(url + '/k', { headers: { 'accept-language': l } })
  const others = Array.from({ length: 19 }, (_, i) => ask(lang(i + 1)))
  await waiting(app, 19)
  first.open()
  const replies = await Promise.all([leader, ...others])
  replies.forEach((r, i) => {
    if (!r.text.includes(`;lang=${lang(i)};`))
      t.fail(`request ${i} (${lang(i)}) got ${r.text.slice(0, 24)}`)
  })
  t.equal(new Set(replies.map((r) => r.text.slice(0, 24))).size <= 2, true, 'two bodies in all')
  atMost(t, o.runs, 2, '2 variants')
  for (const l of ['fr', 'de'])
    t.match((await ask(l)).headers['cache-status'], /; hit/, `${l} stored`)
})

t.test(
  '10 requests arriving after coalesceTimeoutMs into a slow generation: one more run, every waiter takes it',
  TIMEOUT,
  async (t) => {
    const clock = manualClock()
    const o = origin(cached)
    const first = o.hold(1)
    for (let n = 2; n < 30; n++) o.hold(n)
    t.teardown(() => o.openAll())
    const { app, url } = await start(t, o.handler, { coalesceTimeoutMs: 50, now: clock.now })
    const startedAt = performance.now()
    const leader = request(url + '/k')
    await until(() => o.runs === 1, 'the slow generation running')
    let done = 0
    const ask = () => request(url + '/k').finally(() => done++)
    const early = Array.from({ length: 5 }, ask)
    await waiting(app, 5, 0, () => o.runs - 1)
    // The bound is passed on both clocks, whichever the accelerator measures it with.
    await until(() => performance.now() - startedAt > 100, 'coalesceTimeoutMs passed')
    clock.advance(100)
    const late = Array.from({ length: 10 }, ask)
    // All are in before any generation after the first may complete.
    await waiting(app, 15, 0, () => o.runs - 1)
    await steady(() => o.runs)
    for (let n = 2; n < 30; n++) o.holds.get(n)!.open()
    try {
      await until(() => done === 15, 'the waiters served while the slow generation still runs')
    } catch (err) {
      t.fail(`${(err as Error).message}: ${done} of 15 served, ${o.runs} runs`)
    }
    first.open()
    const waiters = await Promise.all([...early, ...late])
    wholeBodies(t, [await leader, ...waiters], 'all 16')
    t.ok((await leader).text.startsWith('gen=1;'), 'the leader gets its own generation')
    atMost(t, o.runs, 2, 'late into a slow generation')
    const gens = new Set(waiters.map(genOf))
    t.ok(
      gens.size === 1 && !gens.has(1),
      `every waiter took the one that completed first (${[...gens].join(', ')})`,
    )
  },
)

t.test(
  "the leader's client reads a 10 MB body slowly: waiters stream it meanwhile, one run",
  TIMEOUT,
  async (t) => {
    const CHUNK = 64 * 1024
    const CHUNKS = 160
    let produced = 0
    const whole = Buffer.concat(Array.from({ length: CHUNKS }, (_, i) => bodyOf(i + 1, CHUNK)))
    const o = origin((_n, _req, res) => {
      res.cacheFor = 60
      res.setHeader('content-type', 'application/octet-stream')
      return (async function* () {
        for (let i = 0; i < CHUNKS; i++) {
          produced++
          yield whole.subarray(i * CHUNK, (i + 1) * CHUNK)
        }
      })()
    })
    t.teardown(() => o.openAll())
    const first = o.hold(1)
    const { app, url } = await start(t, o.handler, {
      maxEntryBytes: 32 * 1024 * 1024,
      coalesceTimeoutMs: 3000,
    })
    let leaderRead = 0
    let leaderRes!: http.IncomingMessage
    const leaderDone = new Promise<Buffer>((resolve, reject) => {
      const req = http.request(url + '/k', { agent: false }, (res) => {
        leaderRes = res
        res.pause() // a client that reads nothing until the test lets it
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => (chunks.push(c), (leaderRead += c.length)))
        res.on('end', () => resolve(Buffer.concat(chunks)))
      })
      req.on('error', reject)
      req.end()
    })
    await until(() => o.runs === 1, 'the leader generating')
    const waiters = Array.from({ length: 5 }, () => request(url + '/k'))
    await waiting(app, 5)
    first.open()
    const replies = await Promise.all(waiters)
    t.equal(
      leaderRead,
      0,
      "the leader's client had read nothing when every waiter had the whole body",
    )
    const sizes = replies.map((r) => r.body.length).join(', ')
    t.ok(
      replies.every((r) => r.status === 200 && r.body.equals(whole)),
      `every waiter got the 10 MB exactly (${sizes})`,
    )
    t.equal(produced, CHUNKS, 'the handler produced the whole body')
    const meanwhile = await request(url + '/k')
    t.match(
      meanwhile.headers['cache-status'],
      /; hit/,
      'stored as soon as the body was complete, before the leader read it',
    )
    atMost(t, o.runs, 1, 'slow leader')
    await until(() => leaderRes !== undefined, 'leader headers')
    leaderRes.resume()
    t.ok((await leaderDone).equals(whole), 'the slow client gets every byte too')
  },
)

t.test(
  'an Express route answering 304 itself: 3 revalidating requests on a cold key, 1 run, then hits',
  TIMEOUT,
  async (t) => {
    const page = 'x'.repeat(2000)
    let routeRuns = 0
    const hold = gate()
    t.teardown(() => hold.open())
    const web = express()
    web.get('/:page', async (req, res) => {
      if (req.params.page === 'k' && ++routeRuns === 1) await hold.promise
      res.locals.cacheFor = 60
      res.send(page) // Express: a weak ETag, and 304 when req.fresh
    })
    const app = accelerate(web as unknown as Handler)
    t.teardown(() => app.close())
    const url = await listen(t, app)
    const etag = String((await request(url + '/other')).headers.etag)
    t.match(etag, /^W\//, "Express's own ETag")
    const revalidating = Array.from({ length: 3 }, () =>
      request(url + '/k', { headers: { 'if-none-match': etag } }),
    )
    await until(() => routeRuns === 1, 'the route running')
    await waiting(app, 2)
    hold.open()
    const replies = await Promise.all(revalidating)
    t.same(
      replies.map((r) => r.status),
      [304, 304, 304],
      'each client gets its 304',
    )
    t.equal(routeRuns, 1, `3 revalidating requests ran the route once (runs: ${routeRuns})`)
    const full = await request(url + '/k')
    t.equal(full.text, page)
    t.match(full.headers['cache-status'], /; hit/, 'the entry was stored')
    const again = await request(url + '/k', { headers: { 'if-none-match': etag } })
    t.equal(again.status, 304)
    t.match(again.headers['cache-status'], /; hit/, 'a 304 from the cache')
    t.equal(routeRuns, 1, 'then hits only')
  },
)

// No gap: a key's generation stays registered until its entry is in the store. The store write is
// held (HeldStore) after the client got its whole response; a request then must wait for it.
const redis = sharedRedis(t)
let prefixes = 0
const STORES: Record<string, () => Promise<CacheStore>> = {
  MemoryStore: async () => new MemoryStore(),
  RedisStore: async () => {
    const prefix = `herd:${process.pid}:${prefixes++}:`
    const store = new RedisStore({ url: redis.url, prefix, timeoutMs: PATIENT_MS })
    await store.ready()
    return store
  },
}

for (const [name, makeStore] of Object.entries(STORES)) {
  t.test(`${name}: no gap between the response sent and the entry stored`, TIMEOUT, async (t) => {
    const inner = await makeStore()
    const store = new HeldStore(inner)
    t.teardown(async () => {
      await inner.clear()
      await inner.close()
    })

    await t.test('for the first generation', async (t) => {
      const o = origin(cached)
      const { app, url } = await start(t, o.handler, { store })
      const write = store.hold((_key, entry) => entry.body.subarray(0, 6).toString() === 'gen=1;')
      t.teardown(() => write.release())
      t.equal(genOf(await request(url + '/first')), 1, 'the first client has its whole response')
      await until(() => store.held === 1, 'its store write pending')
      const next = request(url + '/first')
      await until(
        () => app.stats().coalesced === 1 || o.runs > 1,
        'the next request waiting or running',
      )
      t.equal(o.runs, 1, `the next request waits instead of missing (runs: ${o.runs})`)
      write.release()
      const reply = await next
      t.equal(genOf(reply), 1)
      t.equal(o.runs, 1)
    })

    await t.test('for the generation after a refused one', async (t) => {
      const o = origin(cached)
      const first = o.hold(1)
      t.teardown(() => o.openAll())
      const { app, url } = await start(t, o.handler, { store })
      const leader = request(url + '/refused')
      await until(() => o.runs === 1, 'generation 1 running')
      const waiter = request(url + '/refused')
      await waiting(app, 1)
      await app.invalidateTags(['t']) // generation 1 is refused by the store
      const write = store.hold((_key, entry) => entry.body.subarray(0, 6).toString() === 'gen=2;')
      t.teardown(() => write.release())
      first.open()
      await leader
      t.equal(genOf(await waiter), 2, 'the waiter led the next generation')
      await until(() => store.held === 1, "generation 2's store write pending")
      const coalesced = app.stats().coalesced
      const next = request(url + '/refused')
      await until(
        () => app.stats().coalesced > coalesced || o.runs > 2,
        'the next request waiting or running',
      )
      t.equal(o.runs, 2, `the next sequential request waits instead of missing (runs: ${o.runs})`)
      write.release()
      t.equal(genOf(await next), 2)
      t.equal(o.runs, 2)
    })
  })
}
