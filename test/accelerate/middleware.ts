// The accelerator as Express middleware: caches what the rest of the stack writes (res.send,
// res.json, res.sendFile-style pipes), using Express's own res.locals.
import t from 'tap'
import express from 'express'
import compression from 'compression'
import { gunzipSync } from 'node:zlib'
import { Readable } from 'node:stream'
import { accelerate } from '../../src/index.js'
import { listen, request } from '../fixtures/http.js'

t.test('app.use(acc.middleware) caches Express routes', async (t) => {
  const calls: Record<string, number> = {}
  const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1)
  const acc = accelerate(() => undefined)
  const app = express()
  app.use(acc.middleware)
  app.get('/json', (_req, res) => {
    count('json')
    res.locals.cacheFor = 60
    res.locals.tags = ['products']
    res.json({ products: [1, 2, 3] })
  })
  app.get('/send', (_req, res) => {
    count('send')
    res.set('cache-control', 'public, max-age=60')
    res.send('<p>sent</p>')
  })
  app.get('/piped', (_req, res) => {
    count('piped')
    res.locals.cacheFor = 60
    res.type('text/plain')
    Readable.from(['a', 'b', 'c']).pipe(res)
  })
  app.get('/private', (_req, res) => {
    count('private')
    res.locals.cacheFor = 60
    res.cookie('session', 'abc')
    res.send('yours only')
  })
  app.post('/json', (_req, res) => {
    count('post')
    res.send('posted')
  })
  const url = await listen(t, app)

  const miss = await request(url + '/json')
  t.equal(miss.headers['cache-status'], 'node-accelerator; fwd=miss; stored')
  const hit = await request(url + '/json')
  t.same(JSON.parse(hit.text), { products: [1, 2, 3] })
  t.equal(hit.headers['content-type'], 'application/json; charset=utf-8')
  t.match(hit.headers['cache-status'], /hit/)
  t.equal(hit.headers.etag, miss.headers.etag, "Express's own ETag is kept")
  const notModified = await request(url + '/json', {
    headers: { 'if-none-match': miss.headers.etag! },
  })
  t.equal(notModified.status, 304)

  await request(url + '/send')
  t.equal((await request(url + '/send')).text, '<p>sent</p>')
  await request(url + '/piped')
  t.equal((await request(url + '/piped')).text, 'abc')
  await request(url + '/private')
  t.equal(
    (await request(url + '/private')).headers['set-cookie']?.length,
    1,
    'each client gets its own cookie',
  )
  await request(url + '/json', { method: 'POST' })
  await request(url + '/json', { method: 'POST' })
  t.same(calls, { json: 1, send: 1, piped: 1, private: 2, post: 2 })

  t.equal(await acc.invalidateTags(['products']), 1)
  await request(url + '/json')
  t.equal(calls.json, 2)
})

t.test(
  "an Express route that fails goes to Express's error handling, not to the cache",
  async (t) => {
    const acc = accelerate(() => undefined)
    const app = express()
    app.use(acc.middleware)
    app.get('/fail', () => {
      throw new Error('route failed')
    })
    app.use(
      (_err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        res.status(500).send('handled by express')
      },
    )
    const url = await listen(t, app)
    const reply = await request(url + '/fail')
    t.equal(reply.status, 500)
    t.equal(reply.text, 'handled by express')
    t.equal(reply.headers['cache-status'], 'node-accelerator; fwd=miss; detail=status')
  },
)

t.test(
  'compression middleware after it: compressed only for clients that ask, each variant stored',
  async (t) => {
    let renders = 0
    const acc = accelerate(() => undefined)
    const app = express()
    app.use(acc.middleware)
    app.use(compression({ threshold: 0 }))
    app.get('/big', (_req, res) => {
      renders++
      res.locals.cacheFor = 60
      res.type('text/plain').send('squeeze me '.repeat(200))
    })
    const url = await listen(t, app)
    const gzip = { 'accept-encoding': 'gzip' }
    await request(url + '/big', { headers: gzip })
    await request(url + '/big')
    const zipped = await request(url + '/big', { headers: gzip })
    const plain = await request(url + '/big')
    t.equal(renders, 2, 'one render per variant')
    t.match(zipped.headers['cache-status'], /hit/)
    t.equal(zipped.headers['content-encoding'], 'gzip')
    t.equal(gunzipSync(zipped.body).toString(), 'squeeze me '.repeat(200))
    t.match(plain.headers['cache-status'], /hit/)
    t.equal(plain.headers['content-encoding'], undefined)
    t.equal(plain.text, 'squeeze me '.repeat(200))
  },
)
