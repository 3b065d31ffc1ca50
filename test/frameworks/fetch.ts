// node-accelerator/fetch: web-standard handlers, Hono's app.fetch and a plain one, served by
// @hono/node-server on real sockets; counters on the routes prove hits.
import t, { type Test } from 'tap'
import http, { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { Hono } from 'hono'
import { getRequestListener } from '@hono/node-server'
import { accelerateFetch, type FetchHandler } from '../../src/frameworks/fetch.js'
import { eventually, gate, manualClock, pattern, request, steady } from '../fixtures/http.js'
import { counter, listening, variantsAndNotModified } from '../fixtures/frameworks.js'
import { FailingStore } from '../fixtures/failing-store.js'
import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel'
import { MemoryStore } from '../../src/index.js'
import { CHANNELS } from '../../src/core/diagnostics.js'
import { defaultKey, type KeyRequest } from '../../src/core/key.js'
import type { AccelerateOptions } from '../../src/core/options.js'

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

/** A Response as its client sees it: to compare the fast hit path's with the bridge's. */
async function seen(response: Response) {
  return {
    status: response.status,
    statusText: response.statusText,
    headers: [...response.headers],
    nullBody: response.body === null,
    body: Buffer.from(await response.arrayBuffer()).toString('latin1'),
  }
}

/**
 * Runs `call` through the bridge: anyone subscribing to the response channel turns the fast path
 * off (its messages carry the Node request and response, which only the bridge makes).
 */
async function bridged<T>(call: () => Promise<T>): Promise<T> {
  const listener = () => undefined
  subscribe(CHANNELS.response, listener)
  try {
    return await call()
  } finally {
    unsubscribe(CHANNELS.response, listener)
  }
}

/**
 * The routes the fast-path tests store: a plain one with validators and a tag, Vary variants, a
 * 204, an unnamed status, a CDN-Cache-Control opt-in, a short-lived one. `ways` records, per call
 * of the key function, whether the bridge's IncomingMessage or the fast path's request asked.
 */
function fastPathApp(options: AccelerateOptions = {}, recordWays = true) {
  const { calls, count } = counter()
  const ways: string[] = []
  const clock = manualClock()
  const fetch = accelerateFetch(
    (request) => {
      const path = new URL(request.url).pathname
      count(path)
      const cache = { 'cache-control': 's-maxage=60' }
      if (path === '/vary') {
        const fr = request.headers.get('accept-language') === 'fr'
        return new Response(fr ? 'bonjour' : 'hello', {
          headers: { ...cache, vary: 'accept-language', etag: fr ? '"fr"' : '"en"' },
        })
      }
      if (path === '/none') return new Response(null, { status: 204, headers: cache })
      if (path === '/odd') return new Response('odd', { status: 299, headers: cache })
      if (path === '/cdn')
        return new Response('cdn', { headers: { 'cdn-cache-control': 'max-age=60' } })
      if (path === '/short')
        return new Response('short', { headers: { 'cache-control': 's-maxage=1' } })
      return new Response(`plain ${calls[path]}`, {
        headers: {
          ...cache,
          etag: '"p1"',
          'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT',
          'cache-tag': 'plain',
          'content-type': 'text/plain',
        },
      })
    },
    {
      now: clock.now,
      sharedCache: true, // stores a status with no name (RFC 9111 §3)
      ...(recordWays && {
        key: (req: KeyRequest) => {
          // The core asks for a path's key too (no Host), for its tag, when it stores.
          if (req.headers.host !== undefined)
            ways.push(req instanceof IncomingMessage ? 'bridge' : 'fast')
          if (req.url === '/nokey') return undefined
          if (req.url === '/throw') throw new Error('key failed on purpose')
          return defaultKey(req)
        },
      }),
      ...options,
    },
  )
  return { fetch, calls, ways, clock }
}

const PRIMED = ['/plain', '/none', '/odd', '/cdn']
/** Requests a stored entry answers, the fast path's (`fast`) or the bridge's (other branches). */
const HITS: { label: string; path: string; init?: RequestInit; fast: boolean }[] = [
  { label: 'GET', path: '/plain', fast: true },
  { label: 'HEAD', path: '/plain', init: { method: 'HEAD' }, fast: true },
  {
    label: 'a Vary variant',
    path: '/vary',
    init: { headers: { 'accept-language': 'fr' } },
    fast: true,
  },
  { label: 'the other variant', path: '/vary', fast: true },
  {
    label: 'If-None-Match: a 304',
    path: '/plain',
    init: { headers: { 'if-none-match': '"p1"' } },
    fast: true,
  },
  {
    label: 'a HEAD with If-None-Match: a 304',
    path: '/plain',
    init: { method: 'HEAD', headers: { 'if-none-match': 'W/"x", "p1"' } },
    fast: true,
  },
  {
    label: 'If-Modified-Since: a 304',
    path: '/plain',
    init: { headers: { 'if-modified-since': 'Fri, 02 Jan 2026 00:00:00 GMT' } },
    fast: true,
  },
  {
    label: 'If-None-Match of another: the body',
    path: '/plain',
    init: { headers: { 'if-none-match': '"p0"' } },
    fast: true,
  },
  { label: 'a 204', path: '/none', fast: true },
  { label: 'a status with no name', path: '/odd', fast: true },
  { label: 'CDN-Cache-Control stripped', path: '/cdn', fast: true },
  { label: 'a Range', path: '/plain', init: { headers: { range: 'bytes=0-1' } }, fast: false },
  {
    label: 'Cache-Control',
    path: '/plain',
    init: { headers: { 'cache-control': 'max-stale=5' } },
    fast: false,
  },
]

t.test(
  'the fast hit path answers as the core does over its bridge, and counts the same',
  async (t) => {
    const configs: [string, AccelerateOptions, boolean][] = [
      ['the default key', {}, false],
      ['a key function', {}, true],
      [
        'a namespace, no Cache-Status, X-Cache',
        { namespace: 'ns', statusHeader: false, xCache: true },
        true,
      ],
      [
        'a renamed status header, the surrogate headers kept',
        { statusHeader: 'X-Status', keepSurrogateHeaders: true },
        true,
      ],
    ]
    for (const [name, options, recordWays] of configs) {
      const { fetch, calls, ways, clock } = fastPathApp(options, recordWays)
      const at = (path: string, init?: RequestInit) => new Request(`http://x.test${path}`, init)
      for (const path of PRIMED) await (await fetch(at(path))).arrayBuffer()
      await (await fetch(at('/vary', { headers: { 'accept-language': 'fr' } }))).arrayBuffer()
      await (await fetch(at('/vary'))).arrayBuffer()
      const stored = { ...calls }
      clock.advance(2_500) // an Age, a ttl less than the max-age
      for (const { label, path, init, fast } of HITS) {
        ways.length = 0
        const before = fetch.stats()
        const direct = await seen(await fetch(at(path, init)))
        const middle = fetch.stats()
        const bridge = await bridged(async () => seen(await fetch(at(path, init))))
        const after = fetch.stats()
        t.same(direct, bridge, `${name}, ${label}: the same status, headers and body`)
        for (const counter of ['hits', 'notModified', 'misses', 'bypasses'] as const)
          t.equal(
            middle[counter] - before[counter],
            after[counter] - middle[counter],
            `${name}, ${label}: ${counter}`,
          )
        t.equal(middle.hits - before.hits, 1, `${name}, ${label}: a hit`)
        if (recordWays)
          t.same(
            ways,
            fast ? ['fast', 'bridge'] : ['bridge', 'bridge'],
            `${name}, ${label}: the path`,
          )
      }
      t.same(calls, stored, `${name}: the handler ran for none of them`)
      t.equal(fetch.stats().notModified, 6, `${name}: the 304s, counted`)
      await fetch.close()
    }
  },
)

t.test('the fast hit path hands everything else to the bridge', async (t) => {
  const { fetch, calls, ways, clock } = fastPathApp({ onError: () => undefined })
  const at = (path: string, init?: RequestInit) => new Request(`http://x.test${path}`, init)
  await fetch(at('/short'))
  await fetch(at('/plain'))
  clock.advance(1_500)
  const stale = await fetch(at('/short'))
  t.match(stale.headers.get('cache-status'), /fwd=stale/, 'a stale entry: regenerated')
  t.equal(calls['/short'], 2)
  t.match((await fetch(at('/vary'))).headers.get('cache-status'), /fwd=miss/, 'nothing stored')
  for (const path of ['/nokey', '/nokey', '/throw']) await fetch(at(path))
  t.equal(fetch.stats().bypasses, 3, 'no key, a key function that throws: bypasses')
  t.equal(fetch.stats().errors, 1, 'the failing key function reported once')
  const precondition = await fetch(at('/plain', { headers: { 'if-match': '"p1"' } }))
  t.match(precondition.headers.get('cache-status'), /fwd=/, 'If-Match goes to the handler')
  const pragma = await fetch(at('/plain', { headers: { pragma: 'no-cache' } }))
  t.match(pragma.headers.get('cache-status'), /fwd=/, 'Pragma: no-cache goes to the handler')
  ways.length = 0
  const none = () => undefined
  const traced = { start: none, end: none, asyncStart: none, asyncEnd: none, error: none }
  tracingChannel(CHANNELS.store).subscribe(traced)
  const hit = await fetch(at('/plain'))
  tracingChannel(CHANNELS.store).unsubscribe(traced)
  t.match(hit.headers.get('cache-status'), /; hit/)
  t.same(ways, ['bridge'], 'store calls traced: the bridge, which traces them')
  await fetch.close()
  ways.length = 0
  t.equal((await fetch(at('/plain'))).headers.get('cache-status'), null, 'closed: a bypass')
  t.same(ways, [], 'closed: no key asked')
})

t.test('the fast hit path: stores without peek, with a failing peek, and unless', async (t) => {
  class BrokenPeek extends MemoryStore {
    override peek(): never {
      throw new Error('peek failed on purpose')
    }
  }
  const errors: string[] = []
  const onError = (err: Error) => void errors.push(err.message)
  const cases: [string, AccelerateOptions, string[]][] = [
    ['a store without peek', { store: new FailingStore() }, ['bridge']],
    ['a failing peek', { store: new BrokenPeek(), onError }, ['fast', 'bridge']],
    ['unless', { unless: () => false }, ['bridge']],
  ]
  for (const [name, options, expected] of cases) {
    const { fetch, ways } = fastPathApp(options)
    await fetch(new Request('http://x.test/plain'))
    ways.length = 0
    await fetch(new Request('http://x.test/plain'))
    t.same(ways, expected, `${name}: the bridge answers`)
    await fetch.close()
  }
  t.same(errors, ['peek failed on purpose', 'peek failed on purpose'], 'reported once a request')
})

t.test(
  "the fast hit path reads Node's parsed headers only for the server's own untouched Request",
  async (t) => {
    const app = new Hono()
    let runs = 0
    app.get('/vary', (c) => {
      runs++
      c.header('cache-control', 's-maxage=60')
      c.header('vary', 'accept-language')
      c.header('link', '</a.css>; rel=preload', { append: true })
      c.header('link', '</b.js>; rel=preload', { append: true })
      return c.text(c.req.header('accept-language') ?? 'none')
    })
    const fetch = accelerateFetch(app.fetch)
    // How the Request reaches the accelerator: as the server made it, made anew with other
    // headers, or with its headers read and changed first.
    let way: 'as-is' | 'anew' | 'changed' = 'as-is'
    const url = await serve(t, (request: Request, env: unknown) => {
      if (way === 'anew') {
        return fetch(new Request(request.url, { headers: { 'accept-language': 'fr' } }), env)
      }
      if (way === 'changed') request.headers.set('accept-language', 'fr')
      return fetch(request, env)
    })
    const en = { headers: { 'accept-language': 'en' } }
    for (const lang of ['en', 'fr']) {
      await request(url + '/vary', { headers: { 'accept-language': lang } })
    }
    t.equal(runs, 2, 'both variants stored')
    const asIs = await request(url + '/vary', en)
    t.equal(asIs.text, 'en', "as the server made it: Node's headers, the same as the Request's")
    t.same(asIs.headers.link, '</a.css>; rel=preload, </b.js>; rel=preload', 'repeated lines kept')
    way = 'anew'
    t.equal((await request(url + '/vary', en)).text, 'fr', 'a new Request: its own headers')
    way = 'changed'
    t.equal((await request(url + '/vary', en)).text, 'fr', 'changed headers: the Request wins')
    t.equal(runs, 2, 'every one a hit')
    // An IncomingMessage that is not this Request's, or has no Host: the Request's headers.
    const stranger = new IncomingMessage(new Socket())
    stranger.headers = { host: 'elsewhere', 'accept-language': 'en' }
    const hostless = new IncomingMessage(new Socket())
    const fr = new Request(url + '/vary', { headers: { 'accept-language': 'fr' } })
    t.equal(await (await fetch(fr, { incoming: stranger })).text(), 'fr')
    t.equal(await (await fetch(fr.clone(), { incoming: hostless })).text(), 'fr')
    t.equal(runs, 2)
  },
)
