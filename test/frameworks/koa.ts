// node-accelerator/koa: a real Koa app on a real socket; counters on the routes prove hits.
import t, { type Test } from 'tap'
import Koa from 'koa'
import { Readable } from 'node:stream'
import accelerator from '../../src/frameworks/koa.js'
import { MemoryStore } from '../../src/index.js'
import { eventually, gate, manualClock, request } from '../fixtures/http.js'
import {
  counter,
  jsonStoredThenHit,
  listening,
  sameBytesTwice,
  servedStaleWhileRefreshing,
  variantsAndNotModified,
} from '../fixtures/frameworks.js'

const start = (t: Test, app: Koa): Promise<string> => listening(t, app.listen(0, '127.0.0.1'))

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
  await jsonStoredThenHit(t, url, '/object')
  await sameBytesTwice(t, url, ['/string', '/buffer', '/stream', '/async', '/plain'])
  const head = await request(url + '/string', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body.length, 0)
  t.same(calls, {
    '/object': 1,
    '/string': 1,
    '/buffer': 1,
    '/stream': 1,
    '/async': 1,
    '/plain': 2,
  })

  t.equal(await cache.invalidateTags(['objects', 'streams']), 2)
  await request(url + '/object')
  await request(url + '/stream')
  t.equal(await cache.invalidate('/buffer'), 1)
  await request(url + '/buffer')
  await cache.clear()
  await request(url + '/string')
  t.same(calls, {
    '/object': 2,
    '/string': 2,
    '/buffer': 2,
    '/stream': 2,
    '/async': 1,
    '/plain': 2,
  })
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
  await variantsAndNotModified(t, url, calls)
})

t.test(
  'stale-while-revalidate: one request refreshes, the others get the stale copy',
  async (t) => {
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
    const { refreshing } = await servedStaleWhileRefreshing(
      t,
      url,
      clock.advance,
      () => version,
      /stale-while-revalidate/,
    )
    hold.open()
    t.equal((await refreshing).text, 'version 2')
    t.equal((await request(url + '/news')).text, 'version 2')
    t.equal(version, 2)
  },
)

t.test("a downstream error goes to Koa's error handling and is not stored", async (t) => {
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
