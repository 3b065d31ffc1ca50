// Serving stale: stale-while-revalidate (one background refresh per key, bounded, failures only
// reported), stale-if-error (throw or 5xx), soft invalidation, the middleware's foreground refresh.
import t from 'tap'
import express from 'express'
import { accelerate, type Handler } from '../../src/index.js'
import { counted, eventually, gate, listen, manualClock, request } from '../fixtures/http.js'

/** An origin that renders version N on its Nth call; `fail` decides how a call fails. */
function versioned(
  headers: Record<string, string> = {},
  fail?: (call: number) => 'throw' | number | undefined,
) {
  const origin = counted((_req, res) => {
    const call = origin.calls
    const failure = fail?.(call)
    if (failure === 'throw') throw new Error(`render ${call} failed`)
    res.cacheFor = 10
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
    if (typeof failure === 'number') {
      res.statusCode = failure
      return `error ${failure}`
    }
    return `v${call}`
  })
  return origin
}

t.test(
  'stale-while-revalidate: the stale entry at once, one background refresh, then the new one',
  async (t) => {
    const clock = manualClock()
    const refreshing = gate()
    const origin = counted(async (_req, res) => {
      res.cacheFor = 10
      if (origin.calls === 2) await refreshing.promise
      return `v${origin.calls}`
    })
    const app = accelerate(origin, { now: clock.now, staleWhileRevalidate: 30 })
    const url = await listen(t, app)
    await request(url + '/')
    clock.advance(15_000)
    const [a, b] = await Promise.all([request(url + '/'), request(url + '/')])
    refreshing.open()
    for (const reply of [a, b]) {
      t.equal(reply.text, 'v1', 'served stale')
      t.equal(
        reply.headers['cache-status'],
        'node-accelerator; hit; ttl=-5; detail=stale-while-revalidate',
      )
      t.equal(reply.headers.age, '15')
    }
    await eventually(() => app.stats().stores === 2, 'the refresh stored v2')
    t.equal(origin.calls, 2, 'two stale hits, one background refresh')
    t.match(app.stats(), { staleHits: 2, refreshes: 1 })
    const fresh = await request(url + '/')
    t.equal(fresh.text, 'v2')
    t.match(fresh.headers['cache-status'], /^node-accelerator; hit; ttl=10$/)
  },
)

t.test(
  'the background refresh revalidates: a 304 keeps the body and renews the entry',
  async (t) => {
    const clock = manualClock()
    let generated = 0
    const origin = counted((_req, res) => {
      res.cacheFor = 10
      res.setHeader('etag', '"same"')
      return (function* () {
        generated++
        yield 'expensive'
      })()
    })
    const app = accelerate(origin, { now: clock.now, staleWhileRevalidate: 30 })
    const url = await listen(t, app)
    await request(url + '/')
    clock.advance(12_000)
    t.equal((await request(url + '/')).text, 'expensive')
    await eventually(() => app.stats().revalidations === 1, 'revalidated in the background')
    await eventually(() => app.stats().stores === 2, 'renewed')
    t.equal(generated, 1, 'never regenerated')
    t.match((await request(url + '/')).headers['cache-status'], /; hit; ttl=10$/)
  },
)

t.test(
  "the response's own stale-while-revalidate wins over the option; must-revalidate forbids stale",
  async (t) => {
    const clock = manualClock()
    const own = versioned({ 'cache-control': 'stale-while-revalidate=5' })
    const ownUrl = await listen(t, accelerate(own, { now: clock.now, staleWhileRevalidate: 60 }))
    await request(ownUrl + '/')
    clock.advance(16_000) // 6 s stale: outside its own 5 s window, inside the option's 60
    t.equal((await request(ownUrl + '/')).text, 'v2', 'revalidated in the foreground')
    const strict = versioned({ 'cache-control': 'must-revalidate' })
    const strictUrl = await listen(
      t,
      accelerate(strict, { now: clock.now, staleWhileRevalidate: 60 }),
    )
    await request(strictUrl + '/')
    clock.advance(11_000)
    t.equal((await request(strictUrl + '/')).text, 'v2', 'RFC 9111 §5.2.2.2: never served stale')
  },
)

t.test(
  'a background refresh that throws: stale still served, onError told, no client sees it',
  async (t) => {
    const clock = manualClock()
    const errors: string[] = []
    const origin = versioned({}, (call) => (call > 1 ? 'throw' : undefined))
    const app = accelerate(origin, {
      now: clock.now,
      staleWhileRevalidate: 60,
      onError: (err, { op }) => errors.push(`${op}: ${err.message}`),
    })
    const url = await listen(t, app)
    await request(url + '/')
    clock.advance(11_000)
    t.equal((await request(url + '/')).text, 'v1')
    await eventually(() => errors.length === 1, 'the failure reported')
    t.same(errors, ['refresh: render 2 failed'])
    const again = await request(url + '/')
    t.equal(again.text, 'v1', 'still the stale entry')
    t.equal(again.status, 200)
    await eventually(() => errors.length === 2, 'the next stale hit tried again')
  },
)

t.test('a background refresh that answers 5xx is reported and stores nothing', async (t) => {
  const clock = manualClock()
  const errors: string[] = []
  const origin = versioned({}, (call) => (call > 1 ? 503 : undefined))
  const app = accelerate(origin, {
    now: clock.now,
    staleWhileRevalidate: 60,
    onError: (err, { op }) => errors.push(`${op}: ${err.message}`),
  })
  const url = await listen(t, app)
  await request(url + '/')
  clock.advance(11_000)
  t.equal((await request(url + '/')).text, 'v1')
  await eventually(() => errors.length === 1, 'reported')
  t.match(errors[0], /^refresh: background refresh answered 503$/)
  t.equal((await request(url + '/')).text, 'v1')
})

t.test('background refreshes run at most backgroundConcurrency at a time', async (t) => {
  const clock = manualClock()
  let running = 0
  let most = 0
  const release = gate()
  const origin = counted(async (_req, res) => {
    res.cacheFor = 10
    if (origin.calls > 3) {
      running++
      most = Math.max(most, running)
      await release.promise
      running--
    }
    return 'x'
  })
  const app = accelerate(origin, {
    now: clock.now,
    staleWhileRevalidate: 60,
    backgroundConcurrency: 1,
  })
  const url = await listen(t, app)
  for (const path of ['/a', '/b', '/c']) await request(url + path)
  clock.advance(11_000)
  for (const path of ['/a', '/b', '/c']) t.equal((await request(url + path)).text, 'x')
  await eventually(() => running === 1, 'one refresh running')
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
  t.equal(most, 1, 'the others queue')
  release.open()
  await eventually(() => app.stats().stores === 6, 'all three refreshed, one after another')
  t.equal(most, 1)
})

t.test(
  'stale-if-error: a stale entry instead of a throw or a 5xx, within its window',
  async (t) => {
    const clock = manualClock()
    let mode: 'throw' | 503 | undefined
    const origin = versioned({}, (call) => (call > 1 ? mode : undefined))
    const app = accelerate(origin, { now: clock.now, staleIfError: 60, onError: () => {} })
    const url = await listen(t, app)
    await request(url + '/')
    clock.advance(11_000)
    mode = 'throw'
    const thrown = await request(url + '/')
    t.equal(thrown.status, 200)
    t.equal(thrown.text, 'v1')
    t.equal(
      thrown.headers['cache-status'],
      'node-accelerator; fwd=stale; ttl=-1; detail=stale-if-error',
    )
    mode = 503
    const unavailable = await request(url + '/')
    t.equal(unavailable.text, 'v1')
    t.equal(
      unavailable.headers['cache-status'],
      'node-accelerator; fwd=stale; fwd-status=503; ttl=-1; detail=stale-if-error',
    )
    clock.advance(60_000)
    const beyond = await request(url + '/')
    t.equal(beyond.status, 503, 'past the window, the error goes through')
    t.equal(app.stats().staleHits, 2)
  },
)

t.test(
  "stale-if-error from the response's own directive; a 4xx is not an error to hide",
  async (t) => {
    const clock = manualClock()
    let status: number | undefined
    const origin = versioned({ 'cache-control': 'stale-if-error=30' }, (call) =>
      call > 1 ? status : undefined,
    )
    const url = await listen(t, accelerate(origin, { now: clock.now }))
    await request(url + '/')
    clock.advance(20_000)
    status = 500
    t.equal((await request(url + '/')).text, 'v1')
    status = 404
    t.equal((await request(url + '/')).status, 404)
  },
)

t.test("stale-if-error is not applied once the handler's response has begun", async (t) => {
  const clock = manualClock()
  const origin = counted(async (_req, res) => {
    res.cacheFor = 10
    res.write('v' + origin.calls)
    if (origin.calls > 1) throw new Error('mid-stream')
    res.end()
  })
  const url = await listen(
    t,
    accelerate(origin, { now: clock.now, staleIfError: 60, onError: () => {} }),
  )
  await request(url + '/')
  clock.advance(11_000)
  await t.rejects(request(url + '/'), 'the connection is cut: a partial body cannot become another')
})

t.test(
  'soft invalidation: two concurrent requests, one regeneration, both served stale',
  async (t) => {
    const release = gate()
    const origin = counted(async (_req, res) => {
      res.cacheFor = 60
      res.tags = ['post']
      if (origin.calls === 2) await release.promise
      return `render ${origin.calls}`
    })
    const app = accelerate(origin)
    const url = await listen(t, app)
    await request(url + '/')
    await app.invalidateTags(['post'], { soft: true })
    const [a, b] = await Promise.all([request(url + '/'), request(url + '/')])
    t.equal(a.text, 'render 1')
    t.equal(b.text, 'render 1')
    t.equal(origin.calls, 2, 'one regeneration')
    release.open()
    await eventually(() => app.stats().stores === 2, 'regenerated')
    t.equal((await request(url + '/')).text, 'render 2')
  },
)

t.test(
  'middleware: the first stale request revalidates in the foreground; the others get stale',
  async (t) => {
    const clock = manualClock()
    const release = gate()
    let renders = 0
    const acc = accelerate(() => undefined, { now: clock.now, staleWhileRevalidate: 60 })
    const app = express()
    app.use(acc.middleware)
    app.get('/', async (_req, res) => {
      renders++
      if (renders === 2) await release.promise
      res.locals.cacheFor = 10
      res.send(`render ${renders}`)
    })
    const url = await listen(t, app)
    await request(url + '/')
    clock.advance(11_000)
    const leader = request(url + '/')
    await eventually(() => renders === 2, 'the foreground refresh runs')
    const other = await request(url + '/')
    t.equal(other.text, 'render 1')
    t.match(other.headers['cache-status'], /detail=stale-while-revalidate/)
    release.open()
    t.equal((await leader).text, 'render 2')
    t.equal(renders, 2)
  },
)

t.test('close() ends background refreshes in progress and drops the queued ones', async (t) => {
  const clock = manualClock()
  const hang = gate()
  const origin = counted(async (_req, res) => {
    res.cacheFor = 10
    if (origin.calls > 2) {
      res.write('partial')
      await hang.promise
      res.end(' never')
      return
    }
    return 'x'
  })
  const app = accelerate(origin, {
    now: clock.now,
    staleWhileRevalidate: 60,
    backgroundConcurrency: 1,
  })
  const url = await listen(t, app)
  await request(url + '/a')
  await request(url + '/b')
  clock.advance(11_000)
  await request(url + '/a')
  await request(url + '/b')
  await eventually(() => origin.calls === 3, 'one refresh hangs, the other queues')
  await app.close()
  hang.open()
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
  t.equal(origin.calls, 3, 'the queued refresh never ran')
  t.equal(app.stats().stores, 2, 'the aborted one stored nothing')
})

t.test('a background refresh is a real request the handler can recognise and log', async (t) => {
  const clock = manualClock()
  const seen: unknown[] = []
  const handler: Handler = (req, res) => {
    seen.push({
      method: req.method,
      url: req.url,
      host: req.headers.host,
      cacheControl: req.headers['cache-control'],
      remote: req.socket.remoteAddress,
    })
    // What handlers and frameworks call on a request's socket must work without a client.
    req.socket.setNoDelay(true).setKeepAlive(true)
    res.setTimeout(5_000)
    res.cacheFor = 10
    return 'x'
  }
  const app = accelerate(handler, { now: clock.now, staleWhileRevalidate: 60 })
  const url = await listen(t, app)
  await request(url + '/p?q=1')
  clock.advance(11_000)
  await request(url + '/p?q=1', { method: 'HEAD', headers: { 'cache-control': 'max-age=100' } })
  await eventually(() => seen.length === 2, 'refreshed')
  t.same(seen[1], {
    method: 'GET',
    url: '/p?q=1',
    host: new URL(url).host,
    cacheControl: undefined,
    remote: '127.0.0.1',
  })
})

t.test(
  'background refreshes queue up to 100 per concurrent slot; beyond, they are dropped',
  async (t) => {
    const clock = manualClock()
    const hold = gate()
    const origin = counted(async (_req, res) => {
      res.cacheFor = 10
      if (origin.calls > 103) await hold.promise
      return 'x'
    })
    const app = accelerate(origin, {
      now: clock.now,
      staleWhileRevalidate: 60,
      backgroundConcurrency: 1,
    })
    const url = await listen(t, app)
    const paths = Array.from({ length: 103 }, (_, i) => `/k${i}`)
    for (const path of paths) await request(url + path)
    clock.advance(11_000)
    for (const path of paths) t.equal((await request(url + path)).text, 'x', `${path} served stale`)
    t.equal(app.stats().refreshes, 101, 'one running, 100 queued, 2 dropped')
    hold.open()
    await eventually(() => app.stats().stores === 103 + 101, 'the queued ones ran')
  },
)
