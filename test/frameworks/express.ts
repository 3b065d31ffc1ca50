// accelerate.middleware(options): Express middleware with no handler to give; counters on the
// routes prove hits.
import t, { type Test } from 'tap'
import express from 'express'
import { accelerate } from '../../src/index.js'
import { eventually, gate, listen, manualClock, request } from '../fixtures/http.js'
import { counter } from '../fixtures/frameworks.js'

function app(t: Test, cache: ReturnType<typeof accelerate.middleware>) {
  t.teardown(() => cache.close())
  const app = express()
  app.use(cache)
  return app
}

t.test('app.use(accelerate.middleware()): hits, purges, the same methods', async (t) => {
  const { calls, count } = counter()
  const cache = accelerate.middleware({ xCache: true })
  const server = app(t, cache)
  server.get('/post/:id', (req, res) => {
    count(req.params.id)
    res.locals.cacheFor = 60
    res.locals.tags = [`post:${req.params.id}`]
    res.send(`post ${req.params.id}`)
  })
  const url = await listen(t, server)
  await request(url + '/post/1')
  const hit = await request(url + '/post/1')
  t.equal(hit.text, 'post 1')
  t.equal(hit.headers['x-cache'], 'HIT', 'its options are used')
  await request(url + '/post/2')
  t.equal(await cache.invalidateTags('post:1'), 1)
  t.equal(await cache.invalidate('/post/2'), 1)
  await request(url + '/post/1')
  await request(url + '/post/2')
  await cache.clear()
  await request(url + '/post/1')
  t.same(calls, { 1: 3, 2: 2 })
  t.equal(cache.stats().hits, 1)
  const memo = cache.memoize(async function double(n: number) {
    return n * 2
  })
  t.equal(await memo(2), 4)
})

t.test('Vary variants and a 304 from the cache', async (t) => {
  const { calls, count } = counter()
  const server = app(t, accelerate.middleware())
  server.get('/', (req, res) => {
    const lang = req.get('accept-language') === 'fr' ? 'fr' : 'en'
    count(lang)
    res.locals.cacheFor = 60
    res.vary('accept-language')
    res.send(lang === 'fr' ? 'bonjour' : 'hello')
  })
  const url = await listen(t, server)
  for (let i = 0; i < 2; i++) {
    t.equal((await request(url + '/', { headers: { 'accept-language': 'fr' } })).text, 'bonjour')
    t.equal((await request(url + '/', { headers: { 'accept-language': 'en' } })).text, 'hello')
  }
  const hit = await request(url + '/', { headers: { 'accept-language': 'fr' } })
  const notModified = await request(url + '/', {
    headers: { 'accept-language': 'fr', 'if-none-match': hit.headers.etag! },
  })
  t.equal(notModified.status, 304)
  t.same(calls, { fr: 1, en: 1 })
})

t.test(
  'stale-while-revalidate: one request refreshes, the others get the stale copy',
  async (t) => {
    const clock = manualClock()
    let version = 0
    const hold = gate()
    const server = app(t, accelerate.middleware({ now: clock.now, staleWhileRevalidate: 30 }))
    server.get('/news', async (_req, res) => {
      version++
      if (version === 2) await hold.promise
      res.locals.cacheFor = 10
      res.send(`version ${version}`)
    })
    const url = await listen(t, server)
    t.equal((await request(url + '/news')).text, 'version 1')
    clock.advance(11_000)
    const refreshing = request(url + '/news')
    await eventually(() => version === 2, 'the refresh runs')
    t.equal((await request(url + '/news')).text, 'version 1', 'served stale while it runs')
    hold.open()
    t.equal((await refreshing).text, 'version 2')
    t.equal((await request(url + '/news')).text, 'version 2')
    t.equal(version, 2)
  },
)
