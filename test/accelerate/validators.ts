// Validators: every stored entry has an ETag; If-None-Match (weak comparison, lists, *) and
// If-Modified-Since are answered 304 with the headers RFC 9110 §15.4.5 lists, on hits and misses.
import t, { type Test } from 'tap'
import { accelerate } from '../../src/index.js'
import { counted, listen, manualClock, request } from '../fixtures/http.js'

const lastModified = 'Sun, 06 Nov 1994 08:49:37 GMT'

async function cached(t: Test, headers: Record<string, string> = {}, status = 200) {
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    res.statusCode = status
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
    res.end('the body')
  })
  const app = accelerate(origin)
  const url = await listen(t, app)
  const first = await request(url + '/v')
  return { url: url + '/v', first, origin, app }
}

t.test('a stored entry without an ETag gets a strong one computed from its bytes', async (t) => {
  const { url, origin } = await cached(t)
  const hit = await request(url)
  t.match(hit.headers.etag, /^"[0-9a-f]+-[A-Za-z0-9+/]{27}"$/)
  const revalidated = await request(url, { headers: { 'if-none-match': hit.headers.etag! } })
  t.equal(revalidated.status, 304)
  t.equal(origin.calls, 1)
})

t.test("the handler's own ETag is kept, weak ones included", async (t) => {
  const { url } = await cached(t, { etag: 'W/"mine"' })
  t.equal((await request(url)).headers.etag, 'W/"mine"')
  t.equal(
    (await request(url, { headers: { 'if-none-match': '"mine"' } })).status,
    304,
    'weak comparison ignores W/ (RFC 9110 §8.8.3.2)',
  )
})

t.test('If-None-Match forms on a hit', async (t) => {
  const { url } = await cached(t, { etag: '"current"' })
  const cases: Array<[string, number]> = [
    ['"current"', 304],
    ['W/"current"', 304],
    ['"old", "current"', 304],
    ['"old",W/"current"', 304],
    ['*', 304],
    ['"old"', 200],
    ['current', 200],
    ['', 200],
  ]
  for (const [value, status] of cases) {
    t.equal(
      (await request(url, { headers: { 'if-none-match': value } })).status,
      status,
      `If-None-Match: ${value}`,
    )
  }
})

t.test(
  'If-Modified-Since against Last-Modified on a hit, ignored beside If-None-Match',
  async (t) => {
    const { url } = await cached(t, { 'last-modified': lastModified, etag: '"e"' })
    t.equal((await request(url, { headers: { 'if-modified-since': lastModified } })).status, 304)
    t.equal(
      (await request(url, { headers: { 'if-modified-since': 'Mon, 07 Nov 1994 00:00:00 GMT' } }))
        .status,
      304,
      'later than Last-Modified',
    )
    t.equal(
      (await request(url, { headers: { 'if-modified-since': 'Sat, 05 Nov 1994 00:00:00 GMT' } }))
        .status,
      200,
      'earlier',
    )
    t.equal(
      (await request(url, { headers: { 'if-modified-since': 'yesterday' } })).status,
      200,
      'a malformed date is absent',
    )
    t.equal(
      (
        await request(url, {
          headers: { 'if-modified-since': lastModified, 'if-none-match': '"other"' },
        })
      ).status,
      200,
      'RFC 9110 §13.1.3: If-None-Match decides',
    )
  },
)

t.test(
  "a 304 from the cache carries the entry's non-body headers, Age and Cache-Status",
  async (t) => {
    const { url, app } = await cached(t, {
      etag: '"e"',
      'cache-control': 'public, max-age=60',
      expires: 'Thu, 01 Jan 2037 00:00:00 GMT',
      'content-location': '/v.html',
      'access-control-allow-origin': '*',
      'x-custom': 'kept',
      'content-type': 'text/plain',
      'content-language': 'en',
    })
    const first = await request(url)
    const reply = await request(url, { headers: { 'if-none-match': '"e"' } })
    t.equal(reply.status, 304)
    t.equal(reply.body.length, 0)
    t.match(reply.headers, {
      etag: '"e"',
      'cache-control': 'public, max-age=60',
      expires: 'Thu, 01 Jan 2037 00:00:00 GMT',
      'content-location': '/v.html',
      'access-control-allow-origin': '*',
      'x-custom': 'kept',
      date: first.headers.date,
      age: '0',
    })
    t.match(reply.headers['cache-status'], /^node-accelerator; hit; ttl=\d+$/)
    for (const name of ['content-type', 'content-length', 'content-language'])
      t.equal(reply.headers[name], undefined, `no ${name}`)
    t.match(app.stats(), { hits: 2, notModified: 1 })
  },
)

t.test('a stored 404 is never answered 304 (RFC 9110 §13.2.1)', async (t) => {
  const { url } = await cached(t, { etag: '"nf"' }, 404)
  const reply = await request(url, { headers: { 'if-none-match': '"nf"' } })
  t.equal(reply.status, 404)
  t.equal(reply.text, 'the body')
})

t.test('HEAD with a matching validator gets 304 too', async (t) => {
  const { url } = await cached(t, { etag: '"h"' })
  t.equal((await request(url, { method: 'HEAD', headers: { 'if-none-match': '"h"' } })).status, 304)
})

t.test(
  "on a miss: a whole body's computed ETag answers a client that kept it, and refills the cache",
  async (t) => {
    const origin = counted((_req, res) => {
      res.cacheFor = 60
      res.end('same bytes')
    })
    const app = accelerate(origin)
    const url = await listen(t, app)
    const { etag } = (await request(url + '/e')).headers
    await app.clear()
    const reply = await request(url + '/e', { headers: { 'if-none-match': etag! } })
    t.equal(reply.status, 304)
    t.equal(reply.headers.etag, etag)
    t.equal(reply.headers['cache-status'], 'node-accelerator; fwd=miss; stored')
    t.equal(origin.calls, 2)
    const hit = await request(url + '/e')
    t.equal(hit.text, 'same bytes', 'the body the 304 did not send was stored whole')
    t.match(hit.headers['cache-status'], /hit/)
    t.equal(origin.calls, 2)
  },
)

t.test(
  'on a miss: a 304 decided before a streamed body stores nothing (the body never came)',
  async (t) => {
    const origin = counted((_req, res) => {
      res.cacheFor = 60
      res.setHeader('etag', '"s"')
      res.write('streamed ')
      res.end('body')
    })
    const url = await listen(t, accelerate(origin))
    const reply = await request(url + '/', { headers: { 'if-none-match': '"s"' } })
    t.equal(reply.status, 304)
    t.equal(reply.headers['cache-status'], 'node-accelerator; fwd=miss')
    t.equal((await request(url + '/')).text, 'streamed body')
    t.equal(origin.calls, 2)
  },
)

t.test(
  "on a miss: the handler's ETag set with setHeader answers 304 before any byte of the body",
  async (t) => {
    const origin = counted((_req, res) => {
      res.setHeader('etag', '"h1"')
      res.setHeader('cache-control', 'public, max-age=60')
      res.end('x')
    })
    const url = await listen(t, accelerate(origin))
    const reply = await request(url + '/', { headers: { 'if-none-match': '"h1"' } })
    t.equal(reply.status, 304)
    t.equal(reply.headers['cache-control'], 'public, max-age=60')
    t.equal(
      reply.headers['cache-status'],
      'node-accelerator; fwd=miss; stored',
      'end() gave the whole body: stored',
    )
    t.equal((await request(url + '/')).text, 'x')
    t.equal(origin.calls, 1)
  },
)

t.test(
  "stats().notModified counts every 304 sent: hits, revalidations, stale-if-error, the handler's own",
  async (t) => {
    const clock = manualClock()
    let failing = false
    const origin = counted((req, res) => {
      if (failing) throw new Error('origin down')
      res.cacheFor = 1
      res.setHeader('cache-control', 'stale-if-error=600')
      res.setHeader('etag', '"e"')
      // A route that answers 304 itself, as Express's res.send does for a fresh request.
      if (req.headers['if-none-match'] === '"e"') {
        res.statusCode = 304
        return void res.end()
      }
      res.end('the body')
    })
    const app = accelerate(origin, { now: clock.now, onError: () => {} })
    const url = (await listen(t, app)) + '/n'
    const conditional = { 'if-none-match': '"e"' }
    const statuses: number[] = []
    statuses.push((await request(url)).status) // miss, stored
    statuses.push((await request(url, { headers: conditional })).status) // a hit answered 304
    clock.advance(2000)
    statuses.push((await request(url, { headers: conditional })).status) // revalidated: the origin's 304, then the client's
    clock.advance(2000)
    failing = true
    statuses.push((await request(url, { headers: conditional })).status) // stale-if-error, the client's copy current
    failing = false
    const uncached = { ...conditional, 'cache-control': 'no-store' }
    statuses.push((await request(url, { headers: uncached })).status) // the handler's own 304, passed through
    t.same(statuses, [200, 304, 304, 304, 304])
    t.equal(origin.calls, 4)
    t.equal(app.stats().notModified, statuses.filter((status) => status === 304).length)
  },
)
