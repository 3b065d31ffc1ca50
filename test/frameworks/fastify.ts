// node-accelerator/fastify: a real Fastify 5 app on a real socket; counters on the routes prove
// hits, hooks prove that a hit leaves before routing's later steps and still ends Fastify's
// lifecycle (onResponse runs).
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Readable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import compress from '@fastify/compress'
import { gunzipSync } from 'node:zlib'
import accelerator from '../../src/frameworks/fastify.js'
import { MemoryStore } from '../../src/index.js'
import { eventually, gate, manualClock, request } from '../fixtures/http.js'
import {
  counter,
  jsonStoredThenHit,
  sameBytesTwice,
  servedStaleWhileRefreshing,
} from '../fixtures/frameworks.js'

async function start(t: Test, app: FastifyInstance): Promise<string> {
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

t.test('routes of every kind are cached; a hit skips validation and the handler', async (t) => {
  const { calls, count } = counter()
  const app = Fastify()
  await app.register(accelerator, { store: new MemoryStore() })
  app.addHook('preValidation', async () => count('preValidation'))
  app.addHook('onResponse', async () => count('onResponse'))
  app.get('/object', { config: { cacheFor: 60, tags: ['objects'] } }, async () => {
    count('object')
    return { products: [1, 2, 3] }
  })
  app.get('/string', (_request, reply) => {
    count('string')
    reply.cacheFor = 60
    reply.type('text/html').send('<p>hello</p>')
  })
  app.get('/buffer', async (_request, reply) => {
    count('buffer')
    reply.header('cache-control', 'public, max-age=60')
    reply.type('application/octet-stream')
    return Buffer.from([0, 1, 2, 255])
  })
  app.get('/stream', (_request, reply) => {
    count('stream')
    reply.cacheFor = 60
    reply.tags = ['streams']
    reply.type('text/plain').send(Readable.from(['a', 'b', 'c']))
  })
  app.get(
    '/post/:id',
    {
      config: { cacheFor: 60, tags: (request) => `post:${(request.params as { id: string }).id}` },
    },
    async (request) => {
      count('post')
      return `post ${(request.params as { id: string }).id}`
    },
  )
  app.get('/uncached', async () => {
    count('uncached')
    return 'fresh each time'
  })
  const url = await start(t, app)

  await jsonStoredThenHit(t, url, '/object')
  await sameBytesTwice(t, url, ['/string', '/buffer', '/stream', '/post/7', '/uncached'])
  t.same(
    calls,
    {
      object: 1,
      string: 1,
      buffer: 1,
      stream: 1,
      post: 1,
      uncached: 2,
      preValidation: 7,
      onResponse: 14,
    },
    'hits ran no validation and no handler; onResponse ran for every request',
  )
  t.same(app.accelerator.stats().hits, 7)
  t.notOk(app.accelerator.stats().errors)
})

t.test(
  'purges: by tag, by a route tag computed from the request, by URL, everything',
  async (t) => {
    const { calls, count } = counter()
    const app = Fastify()
    await app.register(accelerator)
    app.get(
      '/post/:id',
      {
        config: {
          cacheFor: 60,
          tags: (request) => `post:${(request.params as { id: string }).id}`,
        },
      },
      async (request, reply) => {
        count((request.params as { id: string }).id)
        reply.tags = [...(reply.tags as string[]), 'posts']
        return 'a post'
      },
    )
    const url = await start(t, app)
    await request(url + '/post/1')
    await request(url + '/post/2')
    t.equal(await app.accelerator.invalidateTags('post:1'), 1)
    await request(url + '/post/1')
    await request(url + '/post/2')
    t.same(calls, { 1: 2, 2: 1 })
    t.equal(await app.accelerator.invalidateTags(['posts']), 2, 'the tag the handler added')
    t.equal(await app.accelerator.invalidate('/post/2'), 0, 'already gone')
    await request(url + '/post/2')
    t.equal(await app.accelerator.invalidate('/post/2'), 1)
    await request(url + '/post/2')
    await app.accelerator.clear()
    await request(url + '/post/2')
    t.same(calls, { 1: 2, 2: 4 })
  },
)

t.test('Vary: one entry per variant', async (t) => {
  const { calls, count } = counter()
  const app = Fastify()
  await app.register(accelerator)
  app.get('/greeting', { config: { cacheFor: 60 } }, async (request, reply) => {
    const lang = request.headers['accept-language'] === 'fr' ? 'fr' : 'en'
    count(lang)
    reply.header('vary', 'accept-language')
    return lang === 'fr' ? 'bonjour' : 'hello'
  })
  const url = await start(t, app)
  for (let i = 0; i < 2; i++) {
    t.equal(
      (await request(url + '/greeting', { headers: { 'accept-language': 'fr' } })).text,
      'bonjour',
    )
    t.equal(
      (await request(url + '/greeting', { headers: { 'accept-language': 'en' } })).text,
      'hello',
    )
  }
  t.same(calls, { fr: 1, en: 1 })
})

t.test('a conditional request gets a 304 from the cache', async (t) => {
  const { calls, count } = counter()
  const app = Fastify()
  await app.register(accelerator)
  app.get('/page', { config: { cacheFor: 60 } }, async () => {
    count('page')
    return 'the page'
  })
  const url = await start(t, app)
  await request(url + '/page')
  const hit = await request(url + '/page')
  t.ok(hit.headers.etag, 'a stored entry has an ETag, computed from the body')
  const notModified = await request(url + '/page', {
    headers: { 'if-none-match': hit.headers.etag! },
  })
  t.equal(notModified.status, 304)
  t.equal(notModified.body.length, 0)
  t.equal(notModified.headers.etag, hit.headers.etag)
  t.same(calls, { page: 1 })
  t.equal(app.accelerator.stats().notModified, 1)
})

t.test(
  'stale-while-revalidate: one request refreshes, the others get the stale copy',
  async (t) => {
    const clock = manualClock()
    let version = 0
    const hold = gate()
    const app = Fastify()
    // Fastify's own register options are not the accelerator's (an unknown option would throw).
    await app.register(accelerator, { now: clock.now, staleWhileRevalidate: 30, logLevel: 'warn' })
    app.get('/news', { config: { cacheFor: 10 } }, async () => {
      version++
      if (version === 2) await hold.promise
      return `version ${version}`
    })
    const url = await start(t, app)
    const swr = /; hit; ttl=-1; detail=stale-while-revalidate/
    const { refreshing } = await servedStaleWhileRefreshing(
      t,
      url,
      clock.advance,
      () => version,
      swr,
    )
    hold.open()
    t.equal((await refreshing).text, 'version 2')
    const fresh = await request(url + '/news')
    t.equal(fresh.text, 'version 2')
    t.match(fresh.headers['cache-status'], /; hit; ttl=/)
    t.equal(version, 2)
  },
)

t.test('closes with the app', async (t) => {
  const app = Fastify()
  await app.register(accelerator)
  app.get('/', { config: { cacheFor: 60 } }, async () => 'home')
  await app.ready()
  const reply = await app.inject('/')
  t.equal(reply.headers['cache-status'], 'node-accelerator; fwd=miss; stored')
  t.equal((await app.inject('/')).headers['cache-status']?.toString().includes('hit'), true)
  await app.close()
  t.equal(app.accelerator.stats().entries, 0, 'the store it made is closed and emptied')
})

t.test("what a request set before the route's config wins over it", async (t) => {
  const { calls, count } = counter()
  const app = Fastify()
  // Runs before the plugin's onRequest hook: registered first, on the same (root) context.
  app.addHook('onRequest', async (request, reply) => {
    if ('private' in (request.query as object)) reply.cacheFor = 0
    if ('tagged' in (request.query as object)) reply.tags = ['by-hook']
  })
  await app.register(accelerator)
  const seen: unknown[] = []
  app.get('/item', { config: { cacheFor: 60, tags: ['items'] } }, async (_request, reply) => {
    count('item')
    seen.push(reply.cacheFor)
    return 'an item'
  })
  const url = await start(t, app)
  await request(url + '/item?private')
  await request(url + '/item?private')
  await request(url + '/item?tagged')
  await request(url + '/item?tagged')
  t.same(calls, { item: 3 }, 'cacheFor = 0 stored nothing')
  t.same(seen, [0, 0, 60], 'the handler reads what is in effect')
  t.equal(await app.accelerator.invalidateTags('items'), 0)
  t.equal(await app.accelerator.invalidateTags('by-hook'), 1)
})

t.test(
  '@fastify/compress registered after it: the compressed bytes are stored per encoding',
  async (t) => {
    const { calls, count } = counter()
    const app = Fastify()
    await app.register(accelerator)
    await app.register(compress, { threshold: 0 })
    const text = 'compressible '.repeat(200)
    app.get('/text', { config: { cacheFor: 60 } }, async (_request, reply) => {
      count('text')
      reply.type('text/plain')
      return text
    })
    const url = await start(t, app)
    const gzip = { 'accept-encoding': 'gzip' }
    const miss = await request(url + '/text', { headers: gzip })
    t.equal(miss.headers['content-encoding'], 'gzip')
    const hit = await request(url + '/text', { headers: gzip })
    t.match(hit.headers['cache-status'], /; hit; ttl=/)
    t.equal(hit.headers['content-encoding'], 'gzip')
    t.equal(gunzipSync(hit.body).toString(), text)
    const plain = await request(url + '/text', { headers: { 'accept-encoding': 'identity' } })
    t.equal(plain.text, text, 'another variant')
    await request(url + '/text', { headers: { 'accept-encoding': 'identity' } })
    t.same(calls, { text: 2 })
  },
)

t.test('concurrent misses run the route once; HEAD is served from the GET entry', async (t) => {
  let calls = 0
  const hold = gate()
  const app = Fastify()
  await app.register(accelerator)
  app.get('/slow', { config: { cacheFor: 60 } }, async () => {
    calls++
    await hold.promise
    return 'slow page'
  })
  const url = await start(t, app)
  const first = request(url + '/slow')
  await eventually(() => calls === 1, 'the first request reached the route')
  const second = request(url + '/slow')
  await eventually(() => app.accelerator.stats().coalesced === 1, 'the second waits on the first')
  hold.open()
  t.equal((await first).text, 'slow page')
  t.equal((await second).text, 'slow page')
  const head = await request(url + '/slow', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.match(head.headers['cache-status'], /; hit; ttl=/)
  t.equal(head.body.length, 0)
  t.equal(calls, 1)
})
