// Vary: one entry per variant of the request headers a response names; `Vary: *` never stored;
// every variant dropped by invalidate(url) and by its tags.
import t from 'tap'
import { gunzipSync, gzipSync } from 'node:zlib'
import { accelerate } from '../../src/index.js'
import { counted, eventually, gate, listen, manualClock, request } from '../fixtures/http.js'

const page = '<h1>compress me</h1>'.repeat(20)

/** A handler that compresses when asked, as compression middleware does. */
function compressing() {
  return counted((req, res) => {
    res.cacheFor = 60
    res.tags = ['page']
    res.setHeader('vary', 'Accept-Encoding')
    res.setHeader('content-type', 'text/html')
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      res.setHeader('content-encoding', 'gzip')
      return gzipSync(page)
    }
    return page
  })
}

t.test(
  'a compressed response is served compressed only to clients that asked for it',
  async (t) => {
    const origin = compressing()
    const app = accelerate(origin)
    const url = await listen(t, app)
    const gzip = { 'accept-encoding': 'gzip' }
    const first = await request(url + '/p', { headers: gzip })
    t.equal(first.headers['content-encoding'], 'gzip')
    const plain = await request(url + '/p')
    t.equal(plain.headers['content-encoding'], undefined, 'a client that did not ask gets identity')
    t.equal(plain.text, page)
    t.equal(
      plain.headers['cache-status'],
      'node-accelerator; fwd=miss; stored',
      'another variant: a miss of its own',
    )
    const hitGzip = await request(url + '/p', { headers: gzip })
    t.match(hitGzip.headers['cache-status'], /hit/)
    t.equal(hitGzip.headers['content-encoding'], 'gzip')
    t.equal(hitGzip.headers.vary, 'Accept-Encoding')
    t.equal(gunzipSync(hitGzip.body).toString(), page)
    const hitPlain = await request(url + '/p')
    t.match(hitPlain.headers['cache-status'], /hit/)
    t.equal(hitPlain.text, page)
    t.equal(origin.calls, 2)
  },
)

t.test(
  'variants are keyed by the values as sent; an absent header is not an empty one',
  async (t) => {
    const origin = counted((req, res) => {
      res.cacheFor = 60
      res.setHeader('vary', 'X-Tenant')
      return `tenant=${JSON.stringify(req.headers['x-tenant'])}`
    })
    const url = await listen(t, accelerate(origin))
    for (const value of [undefined, '', 'a', 'A', 'a', undefined, '']) {
      const reply = await request(url + '/', {
        headers: value === undefined ? {} : { 'x-tenant': value },
      })
      t.equal(reply.text, `tenant=${JSON.stringify(value)}`)
    }
    t.equal(origin.calls, 4, 'absent, empty, a and A: four variants, the repeats are hits')
  },
)

t.test('Vary names are case-insensitive, repeated or listed in any order', async (t) => {
  const origin = counted((req, res) => {
    res.cacheFor = 60
    res.setHeader(
      'vary',
      req.url === '/upper'
        ? ['ACCEPT-LANGUAGE, accept', 'Accept-Language']
        : 'accept, accept-language',
    )
    return 'x'
  })
  const url = await listen(t, accelerate(origin))
  const headers = { accept: 'text/html', 'accept-language': 'fr' }
  await request(url + '/upper', { headers })
  t.match((await request(url + '/upper', { headers })).headers['cache-status'], /hit/)
  t.match(
    (await request(url + '/upper', { headers: { ...headers, 'accept-language': 'de' } })).headers[
      'cache-status'
    ],
    /miss/,
  )
  t.equal(origin.calls, 2)
})

t.test('Vary: * is never stored', async (t) => {
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    res.setHeader('vary', '*')
    return 'x'
  })
  const url = await listen(t, accelerate(origin))
  await request(url + '/')
  await request(url + '/')
  t.equal(origin.calls, 2)
})

t.test('invalidate(url) and invalidateTags drop every variant', async (t) => {
  const origin = compressing()
  const app = accelerate(origin)
  const url = await listen(t, app)
  const fill = async () => {
    await request(url + '/p', { headers: { 'accept-encoding': 'gzip' } })
    await request(url + '/p')
  }
  await fill()
  t.equal(await app.invalidate(url + '/p'), 2, 'both variants')
  await fill()
  t.equal(origin.calls, 4, 'both regenerated')
  t.equal(await app.invalidateTags(['page']), 2)
  await fill()
  t.equal(origin.calls, 6)
  t.equal(await app.invalidate(url + '/never-stored'), 0)
})

t.test('a variant generated while its resource is invalidated is not stored', async (t) => {
  let version = 1
  const started = gate()
  const finish = gate()
  const origin = counted(async (_req, res) => {
    const seen = version
    res.cacheFor = 60
    res.setHeader('vary', 'accept-language')
    res.write(`v${seen}`)
    if (seen === 1) {
      started.open()
      await finish.promise
    }
    res.end()
  })
  const app = accelerate(origin)
  const url = await listen(t, app)
  const slow = request(url + '/', { headers: { 'accept-language': 'fr' } })
  await started.promise
  version = 2
  await app.invalidate(url + '/')
  finish.open()
  t.equal((await slow).text, 'v1')
  t.equal(
    (await request(url + '/', { headers: { 'accept-language': 'fr' } })).text,
    'v2',
    'regenerated, not resurrected',
  )
})

t.test('a resource whose Vary changes is keyed by the new names', async (t) => {
  let vary = 'accept'
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    res.setHeader('vary', vary)
    return vary
  })
  const url = await listen(t, accelerate(origin))
  await request(url + '/', { headers: { accept: 'a', 'accept-language': 'x' } })
  vary = 'accept-language'
  await request(url + '/', { headers: { accept: 'b', 'accept-language': 'x' } })
  const hit = await request(url + '/', { headers: { accept: 'c', 'accept-language': 'x' } })
  t.equal(hit.text, 'accept-language', 'the newest record decides')
  t.match(hit.headers['cache-status'], /hit/)
  t.equal(origin.calls, 2)
})

t.test("a waiter of another variant is not served the leader's response", async (t) => {
  const release = gate()
  const origin = counted(async (req, res) => {
    res.cacheFor = 60
    res.setHeader('vary', 'accept-encoding')
    if (origin.calls === 1) await release.promise
    return `encoding=${req.headers['accept-encoding']}`
  })
  const app = accelerate(origin)
  const url = await listen(t, app)
  const leader = request(url + '/', { headers: { 'accept-encoding': 'gzip' } })
  await eventually(() => origin.calls === 1, 'the leader is generating')
  const same = request(url + '/', { headers: { 'accept-encoding': 'gzip' } })
  const other = request(url + '/', { headers: { 'accept-encoding': 'br' } })
  await eventually(() => app.stats().coalesced === 2, 'both wait on the leader')
  release.open()
  t.equal((await leader).text, 'encoding=gzip')
  t.equal((await same).text, 'encoding=gzip')
  t.equal((await other).text, 'encoding=br', 'the br client ran the handler itself')
  t.equal(origin.calls, 2)
})

t.test(
  'a revalidated variant keeps its resource tag, so invalidate(url) still reaches it',
  async (t) => {
    const clock = manualClock()
    const origin = counted((req, res) => {
      res.cacheFor = 10
      res.tags = ['page'] // set again on every call, the 304 included
      res.setHeader('vary', 'accept-language')
      res.setHeader('etag', '"fr"')
      if (req.headers['if-none-match'] === '"fr"') {
        res.statusCode = 304
        return res.end()
      }
      return 'bonjour'
    })
    const app = accelerate(origin, { now: clock.now })
    const url = await listen(t, app)
    const fr = { 'accept-language': 'fr' }
    await request(url + '/', { headers: fr })
    clock.advance(11_000)
    t.equal(
      (await request(url + '/', { headers: fr })).headers['cache-status'],
      'node-accelerator; fwd=stale; fwd-status=304; stored; ttl=10',
    )
    await app.invalidate(url + '/')
    // Another variant recreates the resource's vary record: a surviving fr entry would be found again.
    await request(url + '/', { headers: { 'accept-language': 'de' } })
    t.match(
      (await request(url + '/', { headers: fr })).headers['cache-status'],
      /fwd=miss/,
      'fr was dropped with its resource',
    )
    t.equal(origin.calls, 4)
  },
)

t.test(
  'RFC 9111 §4.3.1: a variant refreshed in the background is asked about as it was stored',
  async (t) => {
    const clock = manualClock()
    const seen: Array<[string | undefined, string | undefined]> = []
    const origin = counted((req, res) => {
      seen.push([req.headers['accept-language'], req.headers['if-none-match']])
      res.cacheFor = 10
      res.setHeader('cache-control', 'stale-while-revalidate=60')
      res.setHeader('vary', 'Accept-Language')
      res.setHeader('etag', '"en"')
      if (req.headers['if-none-match'] === '"en"') {
        res.statusCode = 304
        return res.end()
      }
      return 'hello'
    })
    const app = accelerate(origin, { now: clock.now })
    const url = await listen(t, app)
    await request(url + '/', { headers: { 'accept-language': 'en-GB, en' } })
    clock.advance(11_000)
    const stale = await request(url + '/', { headers: { 'accept-language': 'EN, en-gb' } })
    t.match(stale.headers['cache-status'], /stale-while-revalidate/)
    await eventually(() => app.stats().revalidations === 1, 'the background revalidation')
    t.same(
      seen,
      [
        ['en-GB, en', undefined],
        ['en-GB, en', '"en"'],
      ],
      "the stored request's Accept-Language",
    )
  },
)
