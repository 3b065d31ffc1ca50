// node-accelerator/koa: a real Koa app on a real socket; counters on the routes prove hits.
import t, { type Test } from 'tap'
import Koa from 'koa'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import accelerator from '../../src/koa.js'
import { MemoryStore } from '../../src/index.js'
import { eventually, gate, manualClock, request } from '../fixtures/http.js'

async function start(t: Test, app: Koa): Promise<string> {
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}
const counter = () => {
  const calls: Record<string, number> = {}
  return { calls, count: (name: string) => void (calls[name] = (calls[name] ?? 0) + 1) }
}

t.test('bodies of every kind are cached; a hit runs no downstream middleware', async (t) => {
  const { calls, count } = counter()
  const cache = accelerator({ store: new MemoryStore() })
  t.teardown(() => cache.close())
  const app = new Koa()
  app.use(cache)
  app.use(async (ctx) => {
    count(ctx.path)
    if (ctx.path === '/object') {
      ctx.state.cacheFor = 60
      ctx.state.tags = ['objects']
      ctx.body = { products: [1, 2, 3] }
    } else if (ctx.path === '/string') {
      ctx.set('cache-control', 'public, max-age=60')
      ctx.body = '<p>hello</p>'
    } else if (ctx.path === '/buffer') {
      ctx.state.cacheFor = 60
      ctx.body = Buffer.from([0, 1, 2, 255])
    } else if (ctx.path === '/stream') {
      ctx.state.cacheFor = 60
      ctx.state.tags = 'streams'
      ctx.type = 'text/plain'
      ctx.body = Readable.from(['a', 'b', 'c'])
    } else if (ctx.path === '/async') {
      await new Promise((resolve) => setImmediate(resolve))
      ctx.state.cacheFor = 60
      ctx.body = 'later'
    } else {
      ctx.body = 'not opted in'
    }
  })
  const url = await start(t, app)
  const miss = await request(url + '/object')
  t.equal(miss.headers['cache-status'], 'node-accelerator; fwd=miss; stored')
  const hit = await request(url + '/object')
  t.same(JSON.parse(hit.text), { products: [1, 2, 3] })
  t.equal(hit.headers['content-type'], 'application/json; charset=utf-8')
  t.match(hit.headers['cache-status'], /; hit; ttl=/)
  for (const path of ['/string', '/buffer', '/stream', '/async', '/plain']) {
    const first = await request(url + path)
    const second = await request(url + path)
    t.same(second.body, first.body, `${path}: the same bytes`)
  }
  t.equal((await request(url + '/buffer')).body.toString('hex'), '000102ff')
  t.equal((await request(url + '/stream')).text, 'abc')
  const head = await request(url + '/string', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body.length, 0)
  t.same(calls, { '/object': 1, '/string': 1, '/buffer': 1, '/stream': 1, '/async': 1, '/plain': 2 })

  t.equal(await cache.invalidateTags(['objects', 'streams']), 2)
  await request(url + '/object')
  await request(url + '/stream')
  t.equal(await cache.invalidate('/buffer'), 1)
  await request(url + '/buffer')
  await cache.clear()
  await request(url + '/string')
  t.same(calls, { '/object': 2, '/string': 2, '/buffer': 2, '/stream': 2, '/async': 1, '/plain': 2 })
  t.equal(cache.stats().hits, 8)
})

t.test('Vary variants and a 304 from the cache', async (t) => {
  const { calls, count } = counter()
  const cache = accelerator()
  t.teardown(() => cache.close())
  const app = new Koa()
  app.use(cache)
  app.use(async (ctx) => {
    const lang = ctx.get('accept-language') === 'fr' ? 'fr' : 'en'
    count(lang)
    ctx.state.cacheFor = 60
    ctx.vary('accept-language')
    ctx.body = lang === 'fr' ? 'bonjour' : 'hello'
  })
  const url = await start(t, app)
  for (let i = 0; i < 2; i++) {
    t.equal((await request(url + '/', { headers: { 'accept-language': 'fr' } })).text, 'bonjour')
    t.equal((await request(url + '/', { headers: { 'accept-language': 'en' } })).text, 'hello')
  }
  t.same(calls, { fr: 1, en: 1 })
  const hit = await request(url + '/', { headers: { 'accept-language': 'fr' } })
  const notModified = await request(url + '/', {
    headers: { 'accept-language': 'fr', 'if-none-match': hit.headers.etag! },
  })
  t.equal(notModified.status, 304)
  t.equal(notModified.body.length, 0)
  t.same(calls, { fr: 1, en: 1 })
})

t.test('stale-while-revalidate: one request refreshes, the others get the stale copy', async (t) => {
  const clock = manualClock()
  let version = 0
  const hold = gate()
  const cache = accelerator({ now: clock.now, staleWhileRevalidate: 30 })
  t.teardown(() => cache.close())
  const app = new Koa()
  app.use(cache)
  app.use(async (ctx) => {
    version++
    if (version === 2) await hold.promise
    ctx.state.cacheFor = 10
    ctx.body = `version ${version}`
  })
  const url = await start(t, app)
  t.equal((await request(url + '/news')).text, 'version 1')
  clock.advance(11_000)
  const refreshing = request(url + '/news')
  await eventually(() => version === 2, 'the refresh runs')
  const stale = await request(url + '/news')
  t.equal(stale.text, 'version 1', 'served stale while the refresh runs')
  t.match(stale.headers['cache-status'], /stale-while-revalidate/)
  hold.open()
  t.equal((await refreshing).text, 'version 2')
  t.equal((await request(url + '/news')).text, 'version 2')
  t.equal(version, 2)
})

t.test('a downstream error goes to Koa\'s error handling and is not stored', async (t) => {
  let calls = 0
  const cache = accelerator()
  t.teardown(() => cache.close())
  const app = new Koa()
  app.silent = true
  app.use(cache)
  app.use(async (ctx) => {
    calls++
    ctx.state.cacheFor = 60
    ctx.throw(503, 'down')
  })
  const url = await start(t, app)
  t.equal((await request(url + '/')).status, 503)
  t.equal((await request(url + '/')).status, 503)
  t.equal(calls, 2)
})
