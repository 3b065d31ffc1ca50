// The accelerator as an RFC 9111 shared cache in front of a real origin (sharedCache: true):
// storability from the origin's headers alone, Age and Expires parsing, revalidation with the
// origin, invalidation by unsafe methods, request directives, and Range from the cache.
import t, { type Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { accelerate, type AccelerateOptions } from '../../src/index.js'
import { forward } from '../../src/proxy/index.js'
import { listen, manualClock, request, type RequestOptions } from '../fixtures/http.js'

type Origin = (req: IncomingMessage, res: ServerResponse, call: number) => void

/** An origin (counting its requests, recording what it saw) behind a shared-cache proxy. */
async function setup(t: Test, origin: Origin, options: AccelerateOptions = {}) {
  const seen: IncomingMessage['headers'][] = []
  const clock = manualClock(Date.now())
  const originUrl = await listen(t, (req, res) => {
    seen.push(req.headers)
    // The origin's clock is the cache's: its Date counts in the age (RFC 9111 §4.2.3).
    res.setHeader('date', new Date(clock.now()).toUTCString())
    origin(req, res, seen.length)
  })
  const upstream = forward(originUrl)
  t.teardown(() => upstream.close())
  const app = accelerate(upstream, {
    sharedCache: true,
    now: clock.now,
    onError: () => {},
    ...options,
  })
  const url = await listen(t, app)
  const get = (path = '/', opts: RequestOptions = {}) => request(url + path, opts)
  return { get, seen, clock, app, url }
}

/** Requests twice; resolves how often the origin was asked (1: stored, 2: not). */
async function asked(
  t: Test,
  headers: Record<string, string | string[]>,
  status = 200,
  requestHeaders: Record<string, string> = {},
) {
  const { get, seen } = await setup(t, (_req, res) => {
    res.writeHead(status, headers)
    res.end('body')
  })
  await get('/', { headers: requestHeaders })
  await get('/', { headers: requestHeaders })
  return seen.length
}

t.test("1. storable from the origin's headers alone (RFC 9111 §3)", async (t) => {
  const recently = new Date(Date.now() - 1000 * 1000).toUTCString()
  t.equal(await asked(t, { 'cache-control': 'max-age=60' }), 1, 'max-age, no public needed')
  t.equal(
    await asked(t, { 'cache-control': 's-maxage=60, max-age=0' }),
    1,
    's-maxage wins over max-age',
  )
  t.equal(await asked(t, { 'cache-control': 'max-age=60, s-maxage=0' }), 2, 's-maxage=0 wins too')
  t.equal(await asked(t, { expires: new Date(Date.now() + 60_000).toUTCString() }), 1, 'Expires')
  t.equal(
    await asked(t, { 'last-modified': recently }),
    1,
    'heuristic: 10% of the time since Last-Modified',
  )
  t.equal(
    await asked(t, { 'last-modified': recently }, 500),
    2,
    'no heuristic for a status that is not heuristically cacheable',
  )
  t.equal(await asked(t, {}), 2, 'nothing said, no Last-Modified: not stored')
  t.equal(await asked(t, { 'cache-control': 'max-age=60, no-store' }), 2, 'no-store')
  t.equal(
    await asked(t, { 'cache-control': 'max-age=60, private' }),
    2,
    'private: not in a shared cache',
  )
  t.equal(await asked(t, { 'cache-control': 'max-age=60', 'set-cookie': 'a=1' }), 2, 'Set-Cookie')
  t.equal(
    await asked(t, { 'cache-control': 'max-age=60' }, 200, { authorization: 'Bearer x' }),
    2,
    'Authorization without permission (§3.5)',
  )
  t.equal(
    await asked(t, { 'cache-control': 'max-age=60, must-revalidate' }, 200, {
      authorization: 'Bearer x',
    }),
    1,
    'Authorization with must-revalidate (§3.5)',
  )
  t.equal(
    await asked(t, { 'cache-control': 'max-age=60, public' }, 200, { authorization: 'Bearer x' }),
    1,
    'Authorization with public (§3.5)',
  )
})

t.test(
  '1. the heuristic freshness is a tenth of the age of Last-Modified, at most a day',
  async (t) => {
    const { get, clock } = await setup(t, (_req, res) => {
      res.writeHead(200, {
        'last-modified': new Date(clock.now() - 1000 * 1000).toUTCString(),
        date: new Date(clock.now()).toUTCString(),
      })
      res.end('x')
    })
    await get()
    t.match((await get()).headers['cache-status'], /hit; ttl=100$/)
    const { get: getOld } = await setup(t, (_req, res) => {
      res.writeHead(200, { 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT' })
      res.end('x')
    })
    await getOld()
    t.match((await getOld()).headers['cache-status'], /hit; ttl=8640\d$/, 'capped at a day')
  },
)

t.test('1. no-cache is stored, and revalidated with the origin before every use', async (t) => {
  let generated = 0
  const { get, seen } = await setup(
    t,
    (req, res) => {
      res.setHeader('cache-control', 'no-cache')
      res.setHeader('etag', '"v"')
      if (req.headers['if-none-match'] === '"v"') {
        res.statusCode = 304
        return res.end()
      }
      generated++
      res.end('kept')
    },
    { staleWhileRevalidate: 60 },
  )
  for (let i = 0; i < 3; i++) {
    const reply = await get()
    t.equal(reply.text, 'kept')
    if (i > 0)
      t.match(
        reply.headers['cache-status'],
        /fwd=stale; fwd-status=304/,
        `request ${i + 1}: revalidated, not served stale`,
      )
  }
  t.equal(seen.length, 3, 'the origin was asked every time')
  t.equal(generated, 1, 'but generated the body once')
})

t.test(
  '1. must-revalidate and proxy-revalidate forbid serving stale, even within a window',
  async (t) => {
    for (const directive of ['must-revalidate', 'proxy-revalidate']) {
      const { get, seen, clock } = await setup(
        t,
        (_req, res) => {
          res.setHeader('cache-control', `max-age=1, ${directive}`)
          res.end('x')
        },
        { staleWhileRevalidate: 60, staleIfError: 60 },
      )
      await get()
      clock.advance(1_500) // stale, still kept (for as long as it was fresh) to be revalidated
      t.match((await get()).headers['cache-status'], /fwd=stale/, directive)
      t.equal(seen.length, 2)
    }
  },
)

t.test('2. Age is parsed as RFC 9111 §5.1 says', async (t) => {
  for (const [age, expected] of [
    ['7200.0', '0'],
    ['garbage', '0'],
    ['-5', '0'],
    ['30, 20', '30'],
    ['  12 ', '12'],
  ] as const) {
    const { get } = await setup(t, (_req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=600', age })
      res.end('x')
    })
    await get()
    t.equal((await get()).headers.age, expected, `Age: ${JSON.stringify(age)}`)
  }
})

t.test(
  '2. Expires in each format of RFC 9110 §5.6.7; an invalid one means already expired',
  async (t) => {
    const at = new Date(Date.now() + 3_600_000)
    const days = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
    const months = [
      'Jan',
      'Feb',
      'Mar',
      'Apr',
      'May',
      'Jun',
      'Jul',
      'Aug',
      'Sep',
      'Oct',
      'Nov',
      'Dec',
    ]
    const pad = (n: number) => String(n).padStart(2, '0')
    const time = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}`
    const rfc850 = `${days[at.getUTCDay()]}, ${pad(at.getUTCDate())}-${months[at.getUTCMonth()]}-${String(at.getUTCFullYear()).slice(2)} ${time} GMT`
    const asctime = `${days[at.getUTCDay()]!.slice(0, 3)} ${months[at.getUTCMonth()]} ${String(at.getUTCDate()).padStart(2, ' ')} ${time} ${at.getUTCFullYear()}`
    for (const expires of [at.toUTCString(), rfc850, asctime])
      t.equal(await asked(t, { expires }), 1, expires)
    for (const expires of ['0', 'tomorrow', ''])
      t.equal(await asked(t, { expires }), 2, `Expires: ${JSON.stringify(expires)}`)
  },
)

t.test(
  '3. revalidation with the origin: its 304 renews the headers and the freshness',
  async (t) => {
    let version = 1
    const { get, seen, clock } = await setup(t, (req, res) => {
      res.setHeader('cache-control', 'max-age=10')
      res.setHeader('etag', '"e"')
      res.setHeader('x-version', String(version))
      if (req.headers['if-none-match'] === '"e"') {
        res.statusCode = 304
        return res.end()
      }
      res.end('body')
    })
    await get()
    clock.advance(11_000)
    version = 2
    const revalidated = await get()
    t.equal(seen[1]?.['if-none-match'], '"e"', 'the origin was asked with the stored validator')
    t.equal(revalidated.text, 'body')
    t.equal(revalidated.headers['x-version'], '2', "the 304's headers are stored")
    t.match((await get()).headers['cache-status'], /hit; ttl=10$/, 'fresh again, not stale forever')
    t.equal(seen.length, 2)
  },
)

t.test(
  '4. a non-error response to an unsafe method drops the URL and its same-origin Location',
  async (t) => {
    const { get, seen, url } = await setup(t, (req, res) => {
      if (req.method === 'POST' && req.url === '/items') {
        res.writeHead(201, { location: '/items/7', 'content-location': `${url}/items/created` })
        return res.end()
      }
      if (req.method === 'POST' && req.url === '/elsewhere') {
        res.writeHead(303, { location: 'http://other.example/items' })
        return res.end()
      }
      if (req.method === 'DELETE') {
        res.statusCode = 404
        return res.end()
      }
      res.setHeader('cache-control', 'max-age=60')
      res.end(`${req.url} ${seen.length}`)
    })
    const count = () => seen.filter((headers) => headers).length
    for (const path of ['/items', '/items/7', '/items/created', '/items?page=2']) await get(path)
    const before = count()
    await get('/items', { method: 'POST', body: '{}' })
    // No waiting: the POST's response ended only once the cache had dropped what it changed.
    for (const path of ['/items', '/items/7', '/items/created'])
      t.match((await get(path)).headers['cache-status'], /fwd=miss/, `${path} dropped`)
    t.match((await get('/items?page=2')).headers['cache-status'], /hit/, 'another URL kept')
    t.equal(count(), before + 4)
    await get('/elsewhere', { method: 'POST' })
    await get('/items/7', { method: 'DELETE' })
    t.match(
      (await get('/items/7')).headers['cache-status'],
      /hit/,
      'an error response drops nothing',
    )
  },
)

t.test(
  '5. request directives: max-age, min-fresh, max-stale, no-cache, only-if-cached',
  async (t) => {
    const { get, seen, clock } = await setup(t, (_req, res) => {
      res.setHeader('cache-control', 'max-age=100')
      res.end(`v${seen.length}`)
    })
    await get()
    clock.advance(30_000)
    t.equal(
      (await get('/', { headers: { 'cache-control': 'max-age=60' } })).text,
      'v1',
      'max-age=60: 30 s old will do',
    )
    t.equal(
      (await get('/', { headers: { 'cache-control': 'max-age=10' } })).text,
      'v2',
      'max-age=10: too old, revalidated',
    )
    t.equal(
      (await get('/', { headers: { 'cache-control': 'min-fresh=50' } })).text,
      'v2',
      'min-fresh=50: 100 s left will do',
    )
    clock.advance(60_000)
    t.equal(
      (await get('/', { headers: { 'cache-control': 'min-fresh=50' } })).text,
      'v3',
      'min-fresh=50: 40 s left will not',
    )
    clock.advance(110_000)
    const stale = await get('/', { headers: { 'cache-control': 'max-stale=20' } })
    t.equal(stale.text, 'v3', 'max-stale=20: 10 s stale is accepted')
    t.match(stale.headers['cache-status'], /hit; ttl=-10; detail=max-stale/)
    t.equal(
      (await get('/', { headers: { 'cache-control': 'max-stale=5' } })).text,
      'v4',
      'max-stale=5: too stale',
    )
    t.equal(
      (await get('/', { headers: { 'cache-control': 'no-cache' } })).text,
      'v5',
      'no-cache: revalidated',
    )
    t.equal((await get('/', { headers: { pragma: 'no-cache' } })).text, 'v6', 'Pragma: no-cache')
    t.equal(
      (await get('/other', { headers: { 'cache-control': 'only-if-cached' } })).status,
      504,
      'only-if-cached, nothing stored',
    )
    t.equal((await get('/', { headers: { 'cache-control': 'only-if-cached' } })).text, 'v6')
  },
)

t.test('5. max-stale never overrides must-revalidate', async (t) => {
  const { get, seen, clock } = await setup(t, (_req, res) => {
    res.setHeader('cache-control', 'max-age=1, must-revalidate')
    res.end(`v${seen.length}`)
  })
  await get()
  clock.advance(2_000)
  t.equal((await get('/', { headers: { 'cache-control': 'max-stale' } })).text, 'v2')
})

t.test(
  '6. Range: one range answered from the cache as a 206; others passed through uncached',
  async (t) => {
    const { get, seen } = await setup(t, (req, res) => {
      if (req.headers.range) {
        res.writeHead(206, { 'content-range': 'bytes 0-0/10', 'cache-control': 'max-age=60' })
        return res.end('0')
      }
      res.writeHead(200, {
        'cache-control': 'max-age=60',
        etag: '"r"',
        'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT',
        'content-type': 'text/plain',
      })
      res.end('0123456789')
    })
    await get()
    const cases: Array<[Record<string, string>, number, string, string | undefined]> = [
      [{ range: 'bytes=2-4' }, 206, '234', 'bytes 2-4/10'],
      [{ range: 'bytes=7-' }, 206, '789', 'bytes 7-9/10'],
      [{ range: 'bytes=-3' }, 206, '789', 'bytes 7-9/10'],
      [{ range: 'bytes=5-100' }, 206, '56789', 'bytes 5-9/10'],
      [{ range: 'bytes=10-' }, 416, '', 'bytes */10'],
      [{ range: 'bytes=2-4', 'if-range': '"r"' }, 206, '234', 'bytes 2-4/10'],
      [
        { range: 'bytes=2-4', 'if-range': 'Sun, 06 Nov 1994 08:49:37 GMT' },
        206,
        '234',
        'bytes 2-4/10',
      ],
      [{ range: 'bytes=2-4', 'if-range': '"old"' }, 200, '0123456789', undefined],
      [{ range: 'bytes=2-4', 'if-range': 'W/"r"' }, 200, '0123456789', undefined],
      [{ range: 'items=1-2' }, 200, '0123456789', undefined],
      // RFC 9110 §13.2.2: If-None-Match is evaluated before Range.
      [{ range: 'bytes=2-4', 'if-none-match': '"r"' }, 304, '', undefined],
      [{ range: 'items=1-2', 'if-none-match': '"r"' }, 304, '', undefined],
    ]
    for (const [headers, status, body, contentRange] of cases) {
      const reply = await get('/', { headers })
      t.equal(reply.status, status, JSON.stringify(headers))
      t.equal(reply.text, body, JSON.stringify(headers))
      t.equal(reply.headers['content-range'], contentRange, JSON.stringify(headers))
      if (status === 206) t.equal(reply.headers['content-length'], String(body.length))
    }
    t.equal(seen.length, 1, 'all answered from the stored full response')
    t.equal(
      (await get('/', { method: 'HEAD', headers: { range: 'bytes=2-4' } })).headers[
        'content-length'
      ],
      '3',
      'HEAD with Range',
    )
    const multi = await get('/', { headers: { range: 'bytes=0-0,2-2' } })
    t.match(
      multi.headers['cache-status'],
      /fwd=miss; detail=range$/,
      'several ranges: to the origin, not stored (RFC 9110 §14.1.2)',
    )
    t.equal(seen.length, 2)
    const miss = await get('/uncached', { headers: { range: 'bytes=0-0' } })
    t.equal(miss.status, 206, 'a Range miss goes to the origin')
    await get('/uncached', { headers: { range: 'bytes=0-0' } })
    t.equal(seen.length, 4, 'and its 206 is not stored')
  },
)

t.test(
  '4. read your writes: an app that ends its own POST, and one that writes its head first',
  async (t) => {
    let version = 1
    const origin = accelerate(
      (req, res) => {
        if (req.method === 'POST') {
          version++
          if (req.url === '/explicit') res.writeHead(204, { 'x-head': 'first' })
          else res.statusCode = 204
          return res.end()
        }
        res.setHeader('cache-control', 'max-age=60')
        return `v${version}`
      },
      { sharedCache: true },
    )
    const url = await listen(t, origin)
    t.equal((await request(url + '/implicit')).text, 'v1')
    await request(url + '/implicit', { method: 'POST' })
    t.equal((await request(url + '/implicit')).text, 'v2')
    t.equal((await request(url + '/explicit')).text, 'v2')
    await request(url + '/explicit', { method: 'POST' })
    t.equal((await request(url + '/explicit')).text, 'v3')
  },
)

t.test('4. an HTTP/1.0 POST without a Host still drops what it changed', async (t) => {
  const net = await import('node:net')
  const { get, url } = await setup(
    t,
    (req, res) => {
      res.setHeader('cache-control', 'max-age=60')
      res.end(req.method)
    },
    { key: (req) => req.url! },
  )
  await get('/thing')
  await new Promise<void>((resolve) => {
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1', () =>
      socket.write('POST /thing HTTP/1.0\r\nContent-Length: 0\r\n\r\n'),
    )
    socket.on('data', () => {})
    socket.on('close', () => resolve())
  })
  t.match((await get('/thing')).headers['cache-status'], /fwd=miss/)
})

t.test('5. max-stale and Range together: the stale range, said so', async (t) => {
  const { get, clock } = await setup(t, (_req, res) => {
    res.setHeader('cache-control', 'max-age=10')
    res.end('0123456789')
  })
  await get()
  clock.advance(15_000)
  const reply = await get('/', { headers: { range: 'bytes=0-1', 'cache-control': 'max-stale=60' } })
  t.equal(reply.status, 206)
  t.equal(reply.text, '01')
  t.match(reply.headers['cache-status'], /hit; ttl=-5; detail=max-stale/)
})
