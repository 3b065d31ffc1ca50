// Surrogate keys end to end: tags from Surrogate-Key and Cache-Tag, Surrogate-Control's TTL over
// Cache-Control, and the three headers kept from clients (unless asked to pass them on).
import t, { type Test } from 'tap'
import { accelerate, type AccelerateOptions } from '../../src/index.js'
import { forward } from '../../src/proxy/index.js'
import { listen, request } from '../fixtures/http.js'

async function proxy(t: Test, headers: Record<string, string>, options: AccelerateOptions = {}) {
  let calls = 0
  const origin = await listen(t, (_req, res) => {
    calls++
    res.writeHead(200, { 'content-type': 'text/plain', ...headers })
    res.end(`render ${calls}`)
  })
  const upstream = forward(origin)
  t.teardown(() => upstream.close())
  const app = accelerate(upstream, { sharedCache: true, surrogateKeys: true, ...options })
  return { app, url: await listen(t, app), calls: () => calls }
}

t.test(
  'Surrogate-Key and Cache-Tag become tags; invalidating any of them drops the page',
  async (t) => {
    const { app, url, calls } = await proxy(t, {
      'cache-control': 'max-age=60',
      'surrogate-key': 'post:1  author:7',
      'cache-tag': 'home, sidebar ,',
    })
    for (const tag of ['post:1', 'author:7', 'home', 'sidebar']) {
      await request(url + '/')
      t.match((await request(url + '/')).headers['cache-status'], /hit/)
      t.equal(await app.invalidateTags([tag]), 1, tag)
    }
    t.equal(await app.invalidateTags(['post']), 0, 'exact: post is not post:1')
    t.equal(calls(), 4)
  },
)

t.test(
  'the surrogate headers are stripped from the response, on the miss and the hit',
  async (t) => {
    const { url } = await proxy(t, {
      'cache-control': 'max-age=60',
      'surrogate-key': 'a',
      'cache-tag': 'b',
      'surrogate-control': 'max-age=5',
    })
    for (const label of ['miss', 'hit']) {
      const reply = await request(url + '/')
      for (const name of ['surrogate-key', 'cache-tag', 'surrogate-control'])
        t.equal(reply.headers[name], undefined, `${label}: no ${name}`)
      t.equal(
        reply.headers['cache-control'],
        'max-age=60',
        `${label}: Cache-Control is the client's`,
      )
    }
  },
)

t.test('keepSurrogateHeaders passes them on', async (t) => {
  const { url } = await proxy(
    t,
    { 'cache-control': 'max-age=60', 'surrogate-key': 'a b' },
    { keepSurrogateHeaders: true },
  )
  await request(url + '/')
  t.equal((await request(url + '/')).headers['surrogate-key'], 'a b')
})

t.test(
  "Surrogate-Control max-age is the proxy's TTL, over Cache-Control, and no-store keeps it out",
  async (t) => {
    const longer = await proxy(t, {
      'cache-control': 'no-cache',
      'surrogate-control': 'max-age=300',
    })
    await request(longer.url + '/')
    const hit = await request(longer.url + '/')
    t.match(
      hit.headers['cache-status'],
      /hit; ttl=(299|300)$/,
      'stored for 300 s although the browser must revalidate',
    )
    t.equal(hit.headers['cache-control'], 'no-cache')
    const never = await proxy(t, { 'cache-control': 'max-age=60', 'surrogate-control': 'no-store' })
    await request(never.url + '/')
    await request(never.url + '/')
    t.equal(never.calls(), 2)
  },
)

t.test("without surrogateKeys, the headers are the origin's business", async (t) => {
  const { app, url } = await proxy(
    t,
    { 'cache-control': 'max-age=60', 'surrogate-key': 'a' },
    { surrogateKeys: false },
  )
  t.equal((await request(url + '/')).headers['surrogate-key'], 'a')
  t.equal(await app.invalidateTags(['a']), 0)
})

t.test('surrogate headers are stripped however the handler set them', async (t) => {
  const app = accelerate(
    (req, res) => {
      res.setHeader('cache-control', 'max-age=60')
      if (req.url === '/set') {
        res.setHeader('surrogate-key', 'via-setheader')
        return 'set'
      }
      if (req.url === '/object') {
        res.writeHead(200, { 'Surrogate-Key': 'via-object', 'x-kept': 'yes' })
        return res.end('object')
      }
      res.writeHead(200, ['Cache-Tag', 'via-array', 'X-Kept', 'yes'])
      res.end('array')
    },
    { surrogateKeys: true, sharedCache: true },
  )
  const url = await listen(t, app)
  for (const path of ['/set', '/object', '/array']) {
    const reply = await request(url + path)
    t.equal(reply.headers['surrogate-key'], undefined, path)
    t.equal(reply.headers['cache-tag'], undefined, path)
    if (path !== '/set') t.equal(reply.headers['x-kept'], 'yes', `${path}: the others stay`)
  }
  t.equal(await app.invalidateTags(['via-setheader', 'via-object', 'via-array']), 3)
})
