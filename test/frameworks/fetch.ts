// node-accelerator/fetch: web-standard handlers, Hono's app.fetch and a plain one, served by
// @hono/node-server on real sockets; counters on the routes prove hits.
import t, { type Test } from 'tap'
import http from 'node:http'
import { Hono } from 'hono'
import { getRequestListener } from '@hono/node-server'
import { accelerateFetch, type FetchHandler } from '../../src/frameworks/fetch.js'
import { eventually, gate, manualClock, pattern, request, steady } from '../fixtures/http.js'
import { counter, listening, variantsAndNotModified } from '../fixtures/frameworks.js'

const serve = (t: Test, fetch: FetchHandler<any[]>): Promise<string> =>
  listening(t, http.createServer(getRequestListener(fetch)).listen(0, '127.0.0.1'))

t.test('Hono: opting in by header, tags by header, cache-only headers stripped', async (t) => {
  const { calls, count } = counter()
  const app = new Hono()
  app.get('/s-maxage', (c) => {
    count('s-maxage')
    c.header('cache-control', 's-maxage=60')
    c.header('cache-tag', 'products, home')
    return c.json({ products: [1, 2, 3] })
  })
  app.get('/cdn', (c) => {
    count('cdn')
    c.header('cdn-cache-control', 'max-age=60')
    c.header('surrogate-key', 'a b')
    return c.text('cdn')
  })
  app.get('/surrogate', (c) => {
    count('surrogate')
    c.header('surrogate-control', 'max-age=60')
    return c.body(new Uint8Array([0, 1, 2, 255]))
  })
  app.get('/streamed', (c) => {
    count('streamed')
    c.header('cache-control', 'public, max-age=60')
    return c.body(
      new ReadableStream({
        start(controller) {
          for (const part of ['a', 'b', 'c']) controller.enqueue(new TextEncoder().encode(part))
          controller.close()
        },
      }),
    )
  })
  app.get('/plain', (c) => {
    count('plain')
    return c.text('not opted in')
  })
  const fetch = accelerateFetch(app.fetch)
  const url = await serve(t, fetch)

  const miss = await request(url + '/s-maxage')
  t.equal(miss.headers['cache-status'], 'node-accelerator; fwd=miss; stored')
  t.notOk(miss.headers['cache-tag'], "Cache-Tag is the cache's only")
  const hit = await request(url + '/s-maxage')
  t.same(JSON.parse(hit.text), { products: [1, 2, 3] })
  t.match(hit.headers['content-type'], /^application\/json/)
  t.match(hit.headers['cache-status'], /; hit; ttl=/)
  t.notOk(hit.headers['cache-tag'])
  for (const path of ['/cdn', '/surrogate', '/streamed', '/plain']) {
    const first = await request(url + path)
    const second = await request(url + path)
    t.same(second.body, first.body, `${path}: the same bytes`)
    for (const name of ['cdn-cache-control', 'surrogate-key', 'surrogate-control', 'cache-tag']) {
      t.notOk(first.headers[name], `${path}: no ${name} on a miss`)
      t.notOk(second.headers[name], `${path}: no ${name} on a hit`)
    }
  }
  t.equal((await request(url + '/surrogate')).body.toString('hex'), '000102ff')
  t.equal((await request(url + '/streamed')).text, 'abc')
  const head = await request(url + '/streamed', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body.length, 0)
  t.same(calls, { 's-maxage': 1, cdn: 1, surrogate: 1, streamed: 1, plain: 2 })

  t.equal(await fetch.invalidateTags('home'), 1)
  t.equal(await fetch.invalidateTags('b'), 1, 'a Surrogate-Key')
  await request(url + '/s-maxage')
  await request(url + '/cdn')
  t.equal(await fetch.invalidate('/surrogate'), 1)
  await request(url + '/surrogate')
  t.same(calls, { 's-maxage': 2, cdn: 2, surrogate: 2, streamed: 1, plain: 2 })
  t.equal(fetch.stats().hits, 7)
  await fetch.close()
})

t.test(
  'a plain handler: Vary variants, 304s, Set-Cookie kept per client, rest arguments',
  async (t) => {
    const { calls, count } = counter()
    const seen: unknown[] = []
    const handler = (request: Request, ...rest: unknown[]) => {
      const url = new URL(request.url)
      seen.push(rest.length)
      if (url.pathname === '/cookie') {
        count('cookie')
        const headers = new Headers({ 'cache-control': 's-maxage=60' })
        headers.append('set-cookie', 'a=1')
        headers.append('set-cookie', 'b=2')
        return new Response('yours', { headers })
      }
      const lang = request.headers.get('accept-language') === 'fr' ? 'fr' : 'en'
      count(lang)
      return new Response(lang === 'fr' ? 'bonjour' : 'hello', {
        headers: { 'cache-control': 's-maxage=60', vary: 'accept-language' },
      })
    }
    const fetch = accelerateFetch(handler)
    t.teardown(() => fetch.close())
    const url = await serve(t, fetch)
    const { hit, notModified } = await variantsAndNotModified(t, url, calls)
    t.equal(notModified.headers.etag, hit.headers.etag)

    const first = await request(url + '/cookie')
    t.same(first.headers['set-cookie'], ['a=1', 'b=2'])
    await request(url + '/cookie')
    t.equal(calls.cookie, 2, 'a response with Set-Cookie is never stored')
    t.ok(
      seen.every((n) => n === 1),
      "@hono/node-server's env reaches the handler",
    )

    const direct = await fetch(new Request('http://example.test/'))
    t.equal(await direct.text(), 'hello')
    t.equal(direct.headers.get('cache-status'), 'node-accelerator; fwd=miss; stored')
  },
)

t.test("a lazy 304: the Response's body is never read when its ETag matches", async (t) => {
  let pulled = 0
  const fetch = accelerateFetch(
    () =>
      new Response(
        new ReadableStream(
          {
            pull(controller) {
              pulled++
              controller.enqueue(new TextEncoder().encode('body'))
              controller.close()
            },
          },
          { highWaterMark: 0 },
        ),
        { headers: { etag: '"v1"', 'cache-control': 's-maxage=60' } },
      ),
  )
  t.teardown(() => fetch.close())
  const url = await serve(t, fetch)
  const notModified = await request(url + '/', { headers: { 'if-none-match': '"v1"' } })
  t.equal(notModified.status, 304)
  t.equal(pulled, 0)
})

t.test(
  'stale-while-revalidate: the stale copy is served while the handler refreshes it',
  async (t) => {
    const clock = manualClock()
    let version = 0
    const hold = gate()
    const fetch = accelerateFetch(
      async (request) => {
        version++
        if (version === 2) {
          t.equal(new URL(request.url).pathname, '/news', 'the refresh asks for the stale URL')
          await hold.promise
        }
        return new Response(`version ${version}`, {
          headers: { 'cache-control': 's-maxage=10, stale-while-revalidate=30' },
        })
      },
      { now: clock.now },
    )
    t.teardown(() => fetch.close())
    const url = await serve(t, fetch)
    t.equal((await request(url + '/news')).text, 'version 1')
    clock.advance(11_000)
    const stale = await request(url + '/news')
    t.equal(stale.text, 'version 1')
    t.match(stale.headers['cache-status'], /detail=stale-while-revalidate/)
    await eventually(() => version === 2, 'the background refresh runs')
    hold.open()
    await eventually(async () => (await request(url + '/news')).text === 'version 2', 'refreshed')
    t.equal(version, 2)
  },
)

t.test('a handler that fails: 500 before the headers, a cut stream after', async (t) => {
  const fetch = accelerateFetch(
    (request) => {
      if (request.url.endsWith('/throw')) throw new Error('handler failed')
      let pulls = 0
      return new Response(
        new ReadableStream({
          pull(controller) {
            if (pulls++ === 0) controller.enqueue(new TextEncoder().encode('part'))
            else controller.error(new Error('stream failed'))
          },
        }),
        { headers: { 'cache-control': 's-maxage=60' } },
      )
    },
    { onError: () => undefined },
  )
  t.teardown(() => fetch.close())
  t.equal((await fetch(new Request('http://x.test/throw'))).status, 500)
  const cut = await fetch(new Request('http://x.test/cut'))
  await t.rejects(cut.text())
  t.throws(() => accelerateFetch('nope' as never), /expected handler to be a function/)
})

t.test(
  'bodies: none, a status text, backpressure from the reader, a reader that cancels',
  async (t) => {
    const chunk = 16 * 1024
    let pulls = 0
    let cancelled = false
    const fetch = accelerateFetch((request) => {
      const path = new URL(request.url).pathname
      if (path === '/none')
        return new Response(null, { status: 204, headers: { 'cache-control': 's-maxage=60' } })
      if (path === '/empty')
        return new Response(null, {
          statusText: 'Fine',
          headers: { 'cache-control': 's-maxage=60' },
        })
      return new Response(
        new ReadableStream(
          {
            pull(controller) {
              controller.enqueue(pattern(chunk, pulls++))
              if (pulls === 64) controller.close()
            },
            cancel: () => void (cancelled = true),
          },
          { highWaterMark: 0 },
        ),
        { headers: { 'cache-control': path === '/big' ? 's-maxage=60' : 'no-store' } },
      )
    })
    t.teardown(() => fetch.close())
    const none = await fetch(new Request('http://x.test/none'))
    t.equal(none.status, 204)
    t.equal(none.body, null)
    const empty = await fetch(new Request('http://x.test/empty'))
    t.equal(empty.statusText, 'Fine')
    t.equal(await empty.text(), '')
    t.equal((await fetch(new Request('http://x.test/empty'))).status, 200, 'a hit')

    const big = await fetch(new Request('http://x.test/big'))
    const held = await steady(() => pulls)
    t.ok(held < 64, `the handler's stream waits for the reader (${held} of 64 chunks pulled)`)
    const bytes = Buffer.from(await big.arrayBuffer())
    t.same(bytes, Buffer.concat(Array.from({ length: 64 }, (_, i) => pattern(chunk, i))))
    const hit = await fetch(new Request('http://x.test/big'))
    t.equal(Buffer.from(await hit.arrayBuffer()).length, 64 * chunk)
    t.equal(pulls, 64, 'the hit ran nothing')

    pulls = 0
    const gone = await fetch(new Request('http://x.test/gone'))
    const reader = gone.body!.getReader()
    await reader.read()
    await reader.cancel()
    await eventually(() => cancelled, "the handler's stream is cancelled")
    t.ok(pulls < 64)
  },
)

t.test('other methods go to the handler with their body, never stored', async (t) => {
  let calls = 0
  const fetch = accelerateFetch(async (request) => {
    calls++
    return new Response(`got ${await request.text()}`, {
      headers: { 'cache-control': 's-maxage=60' },
    })
  })
  t.teardown(() => fetch.close())
  const url = await serve(t, fetch)
  t.equal((await request(url + '/form', { method: 'POST', body: 'a=1' })).text, 'got a=1')
  t.equal((await request(url + '/form', { method: 'POST', body: 'a=2' })).text, 'got a=2')
  t.equal(calls, 2)
})

t.test(
  'a background refresh asks with the scheme of the request that found the entry stale',
  async (t) => {
    const clock = manualClock()
    const urls: string[] = []
    const fetch = accelerateFetch(
      async (request) => {
        urls.push(request.url)
        return new Response('v', {
          headers: { 'cache-control': 's-maxage=10, stale-while-revalidate=30' },
        })
      },
      { now: clock.now },
    )
    t.teardown(() => fetch.close())
    await (await fetch(new Request('https://x.test/news'))).text()
    clock.advance(11_000)
    // In the same turn, a plain-HTTP request for another URL: it must not lend the refresh its scheme.
    const [stale, other] = await Promise.all([
      fetch(new Request('https://x.test/news')),
      fetch(new Request('http://x.test/other')),
    ])
    t.match(stale.headers.get('cache-status'), /stale-while-revalidate/)
    await other.text()
    await eventually(() => urls.length === 3, 'the background refresh runs')
    t.same(urls.sort(), ['http://x.test/other', 'https://x.test/news', 'https://x.test/news'])
  },
)

t.test(
  'keepSurrogateHeaders: the surrogate headers reach the client, as with every other adapter',
  async (t) => {
    const fetch = accelerateFetch(
      async () =>
        new Response('x', {
          headers: {
            'surrogate-control': 'max-age=60',
            'surrogate-key': 'a b',
            'cdn-cache-control': 'max-age=60',
          },
        }),
      { keepSurrogateHeaders: true },
    )
    t.teardown(() => fetch.close())
    const miss = await fetch(new Request('http://x.test/'))
    const hit = await fetch(new Request('http://x.test/'))
    t.match(hit.headers.get('cache-status'), /; hit/)
    for (const response of [miss, hit]) {
      t.equal(response.headers.get('surrogate-key'), 'a b')
      t.equal(
        response.headers.get('cdn-cache-control'),
        null,
        'CDN-Cache-Control ends at this edge',
      )
    }
  },
)
