// The proxy as an RFC 9111 / RFC 9213 shared cache in front of a real origin, for what the public
// HTTP caching test suite checks: CDN-Cache-Control, statuses, must-understand, apparent age, an
// origin body past its Content-Length, revalidation through a prepared request, serving stale
// when the origin fails.
import t, { type Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { accelerate, type AccelerateOptions } from '../../src/index.js'
import { forward } from '../../src/proxy/index.js'
import { parseFlags, USAGE } from '../../src/proxy/cli.js'
import { listen, manualClock, request, type RequestOptions } from '../fixtures/http.js'

type Origin = (req: IncomingMessage, res: ServerResponse, call: number, now: number) => void

/**
 * An origin (counting its requests, recording what it saw) behind a shared-cache proxy whose
 * listener prepares each request before the cache sees it, as the command does.
 */
async function setup(t: Test, origin: Origin, options: AccelerateOptions = {}) {
  const seen: IncomingMessage['headers'][] = []
  // On a whole second, as the Date headers the origin sends from it are.
  const clock = manualClock(Math.floor(Date.now() / 1000) * 1000)
  const originUrl = await listen(t, (req, res) => {
    seen.push(req.headers)
    // The origin's clock is the cache's: its Date counts in the age (RFC 9111 §4.2.3).
    res.setHeader('date', new Date(clock.now()).toUTCString())
    origin(req, res, seen.length, clock.now())
  })
  const upstream = forward(originUrl)
  t.teardown(() => upstream.close())
  const app = accelerate(upstream, {
    sharedCache: true,
    now: clock.now,
    onError: () => {},
    ...options,
  })
  t.teardown(() => app.close())
  const url = await listen(t, (req, res) => upstream.prepare(req, res) && app(req, res))
  const get = (path = '/', opts: RequestOptions = {}) => request(url + path, opts)
  return { get, seen, clock }
}

/** An origin whose responses are fresh for a second, with `validators`: 304 when `current(req)`. */
function validating(
  validators: Record<string, string>,
  current: (req: IncomingMessage) => boolean,
): Origin {
  return (req, res) => {
    res.setHeader('cache-control', 'max-age=1')
    for (const [name, value] of Object.entries(validators)) res.setHeader(name, value)
    if (current(req)) {
      res.statusCode = 304
      return res.end()
    }
    res.end('body')
  }
}

/** Requests twice; resolves how often the origin was asked (1: stored, 2: not). */
async function asked(
  t: Test,
  headers: Record<string, string>,
  status = 200,
  options: AccelerateOptions = {},
) {
  const { get, seen } = await setup(
    t,
    (_req, res) => {
      res.writeHead(status, headers)
      res.end('body')
    },
    options,
  )
  await get()
  await get()
  return seen.length
}

t.test('RFC 9213: CDN-Cache-Control rules over Cache-Control for this cache', async (t) => {
  // Response headers, how many times the origin is asked for two requests, why.
  const cases: [Record<string, string>, number, string][] = [
    [
      { 'cdn-cache-control': 'max-age=600', 'cache-control': 'no-store' },
      1,
      'its max-age over no-store',
    ],
    [
      { 'cdn-cache-control': 'no-store', 'cache-control': 'max-age=600' },
      2,
      'its no-store over max-age',
    ],
    [{ 'cdn-cache-control': 'private', 'cache-control': 'max-age=600' }, 2, 'private'],
    [
      { 'cdn-cache-control': 'max-age=0', expires: new Date(Date.now() + 600_000).toUTCString() },
      2,
      'Expires is ignored with it',
    ],
    [
      { 'cdn-cache-control': 'max-age=600, &&&', 'cache-control': 'no-store' },
      2,
      'an invalid field is ignored entirely',
    ],
    [
      { 'cdn-cache-control': 'Max-Age=600', 'cache-control': 'no-store' },
      2,
      'keys are case-sensitive',
    ],
  ]
  for (const [headers, asks, what] of cases) t.equal(await asked(t, headers), asks, what)
  const unread = { cdnCacheControl: false }
  const headers = { 'cdn-cache-control': 'max-age=600', 'cache-control': 'no-store' }
  t.equal(await asked(t, headers, 200, unread), 2, 'cdnCacheControl: false')
})

t.test(
  'RFC 9213: CDN-Cache-Control goes on downstream untouched, with Age, Date and Expires',
  async (t) => {
    let date = ''
    const expires = 'Thu, 01 Jan 2099 00:00:00 GMT'
    const { get, seen, clock } = await setup(t, (_req, res, _call, now) => {
      date = new Date(now).toUTCString()
      res.writeHead(200, {
        'cdn-cache-control': 'max-age=600',
        'cache-control': 'max-age=1',
        date,
        expires,
      })
      res.end('body')
    })
    const miss = await get()
    clock.advance(10_000)
    const hit = await get()
    t.equal(seen.length, 1, 'the origin was asked once')
    for (const reply of [miss, hit]) {
      t.equal(reply.headers['cdn-cache-control'], 'max-age=600')
      t.equal(reply.headers['cache-control'], 'max-age=1')
      t.equal(reply.headers.date, date, "the origin's Date")
      t.equal(reply.headers.expires, expires)
    }
    t.equal(hit.headers.age, '10', 'Age: the time it spent here')
  },
)

t.test(
  'RFC 9213 §2.1: Accelerator-Cache-Control, the field targeted at this cache, in library mode',
  async (t) => {
    let calls = 0
    const app = accelerate((_req, res) => {
      calls++
      res.setHeader('accelerator-cache-control', 'max-age=60')
      res.setHeader('cache-control', 'no-store')
      res.setHeader('cdn-cache-control', 'no-store')
      res.end('body')
    })
    t.teardown(() => app.close())
    const url = await listen(t, app)
    await request(url)
    const hit = await request(url)
    t.equal(calls, 1, 'stored: it rules over Cache-Control and CDN-Cache-Control')
    t.equal(hit.headers['cache-control'], 'no-store', "the client's Cache-Control is untouched")
    t.equal(hit.headers['accelerator-cache-control'], 'max-age=60')
  },
)

t.test(
  'RFC 9111 §3: any final status with explicit freshness is storable in a shared cache',
  async (t) => {
    for (const status of [302, 303, 307, 400, 500, 503, 299, 499, 599]) {
      t.equal(await asked(t, { 'cache-control': 'max-age=600' }, status), 1, `${status}`)
    }
    t.equal(
      await asked(t, { 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT' }, 302),
      2,
      'no heuristic for a 302',
    )
    t.equal(await asked(t, { 'cache-control': 'max-age=600' }, 206), 2, '206 is not stored')
    t.equal(
      await asked(t, { 'cache-control': 'max-age=600' }, 302, { sharedCache: false }),
      2,
      'library mode keeps cacheableStatuses',
    )
  },
)

t.test('RFC 9111 §5.2.2.3: must-understand', async (t) => {
  t.equal(
    await asked(t, { 'cache-control': 'max-age=600, must-understand, no-store' }),
    1,
    'an understood status: no-store is ignored',
  )
  t.equal(
    await asked(t, { 'cache-control': 'max-age=600, must-understand, no-store' }, 599),
    2,
    'an unknown status: not stored',
  )
})

t.test('RFC 9111 §4.2.3: the apparent age counts', async (t) => {
  const { get: getOld, seen: seenOld } = await setup(t, (_req, res, _call, now) => {
    res.writeHead(200, {
      'cache-control': 'max-age=60',
      date: new Date(now - 100_000).toUTCString(),
    })
    res.end('body')
  })
  await getOld()
  await getOld()
  t.equal(seenOld.length, 2, 'a Date 100 s old with max-age=60: stale on arrival, not stored')
  const { get, seen, clock } = await setup(t, (_req, res, _call, now) => {
    // 21 s before now, 20 s at the least (RFC 9110 §5.6.7: Date has one-second resolution).
    res.writeHead(200, {
      'cache-control': 'max-age=60',
      date: new Date(now - 21_000).toUTCString(),
    })
    res.end('body')
  })
  await get()
  clock.advance(5000)
  const hit = await get()
  t.equal(seen.length, 1)
  t.equal(hit.headers.age, '25', 'Age: the corrected initial age plus the time spent here')
  t.match(hit.headers['cache-status'], /hit; ttl=35$/)
})

t.test(
  'RFC 9112 §6.3: an origin body longer than its Content-Length is served and stored as declared',
  async (t) => {
    const { get, seen } = await setup(t, (_req, res) => {
      res.writeHead(200, { 'content-length': '10', 'cache-control': 'max-age=600' })
      // Node writes what it is given: 26 bytes more than declared go on the wire.
      res.end('0123456789abcdefghijklmnopqrstuvwxyz')
    })
    const miss = await get()
    const hit = await get()
    t.equal(miss.text, '0123456789')
    t.equal(miss.headers['content-length'], '10')
    t.equal(hit.text, '0123456789')
    t.match(hit.headers['cache-status'], /hit/)
    t.equal(seen.length, 1)
  },
)

t.test(
  'RFC 9111 §4.3.1: a stale entry is revalidated with its validators, the request prepared first',
  async (t) => {
    const { get, seen, clock } = await setup(
      t,
      validating({ etag: '"v1"' }, (req) => req.headers['if-none-match'] === '"v1"'),
    )
    // A client's own validator does not reach the origin on a miss: the cache wants the body.
    const miss = await get('/', { headers: { 'if-none-match': '"other"' } })
    t.equal(miss.status, 200)
    t.equal(seen[0]!['if-none-match'], undefined)
    clock.advance(2000)
    const revalidated = await get()
    t.equal(seen[1]!['if-none-match'], '"v1"', 'the stored ETag went to the origin')
    t.equal(revalidated.status, 200)
    t.equal(revalidated.text, 'body')
    t.match(revalidated.headers['cache-status'], /fwd=stale; fwd-status=304/)
  },
)

t.test(
  'RFC 9111 §4.2.4: stale served when the origin fails, unless the response forbids it',
  async (t) => {
    /** The origin answers `cacheControl` once, then fails by `failure`; what the client then gets. */
    async function afterFailure(cacheControl: string, failure: 'cut' | 503) {
      const { get, clock } = await setup(
        t,
        (_req, res, call) => {
          if (call === 1) {
            res.writeHead(200, { 'cache-control': cacheControl })
            return res.end('kept')
          }
          if (failure === 'cut') return res.socket!.destroy()
          res.writeHead(503, { 'content-length': '4' })
          res.end('down')
        },
        { staleIfError: 3600 },
      )
      await get()
      clock.advance(10_000)
      return get()
    }
    const unreachable = await afterFailure('max-age=1', 'cut')
    t.equal(unreachable.status, 200, 'an origin that cuts the connection: the stale entry')
    t.equal(unreachable.text, 'kept')
    t.match(unreachable.headers['cache-status'], /stale-if-error/)
    const failing = await afterFailure('max-age=1', 503)
    t.equal(failing.status, 200, 'an origin answering 503: the stale entry')
    t.match(failing.headers['cache-status'], /fwd-status=503/)
    t.equal((await afterFailure('max-age=1, must-revalidate', 503)).status, 503, 'must-revalidate')
    t.equal(
      (await afterFailure('max-age=1, proxy-revalidate', 503)).status,
      503,
      'proxy-revalidate',
    )
    t.equal((await afterFailure('s-maxage=1', 503)).status, 503, 's-maxage (RFC 9111 §5.2.2.10)')
    t.equal((await afterFailure('max-age=1, no-cache', 'cut')).status, 502, 'no-cache')
  },
)

t.test('the command serves stale for an hour by default; --stale-if-error sets it', async (t) => {
  t.match(USAGE, /--stale-if-error SECONDS/)
  t.match(parseFlags(['--upstream', 'http://x']), { staleIfError: 3600 })
  t.match(parseFlags(['--upstream', 'http://x', '--stale-if-error', '0']), { staleIfError: 0 })
  t.match(parseFlags(['--upstream', 'http://x', '--stale-if-error', '86400']), {
    staleIfError: 86400,
  })
  for (const bad of ['-1', '1.5', 'soon', '', '99999999999999999999']) {
    t.throws(
      () => parseFlags(['--upstream', 'http://x', `--stale-if-error=${bad}`]),
      /--stale-if-error must be a whole number of seconds/,
      bad,
    )
  }
})

t.test(
  'RFC 9111 §4.1: Chrome, Firefox and curl share variants; normalizeVary: false keys them as sent',
  async (t) => {
    const browsers = [
      {
        'accept-encoding': 'gzip, deflate, br, zstd',
        'accept-language': 'en-US,en;q=0.9,de;q=0.8',
      },
      {
        'accept-encoding': 'gzip, deflate, br, zstd',
        'accept-language': 'en-us, en;q=0.9, de;q=0.8',
      },
      {
        'accept-encoding': 'deflate, gzip, br, zstd',
        'accept-language': 'de;q=0.8, EN;q=0.9, en-US',
      },
    ]
    for (const normalizeVary of [true, false]) {
      const { get, seen } = await setup(
        t,
        (_req, res) => {
          res.writeHead(200, {
            'cache-control': 'max-age=600',
            vary: 'Accept-Encoding, Accept-Language',
          })
          res.end('body')
        },
        { normalizeVary },
      )
      for (const headers of browsers) await get('/', { headers })
      t.equal(seen.length, normalizeVary ? 1 : 3, `normalizeVary: ${normalizeVary}`)
      await get('/', {
        headers: { 'accept-encoding': 'gzip', 'accept-language': 'en-US,en;q=0.9,de;q=0.8' },
      })
      t.equal(
        seen.length,
        normalizeVary ? 2 : 4,
        'a client accepting fewer codings gets its own variant',
      )
    }
  },
)

t.test('the new options are checked', async (t) => {
  for (const name of ['cdnCacheControl', 'normalizeVary'] as const) {
    t.throws(
      () => accelerate(() => {}, { [name]: 'yes' as unknown as boolean }),
      new TypeError(`expected options.${name} to be a boolean, got "yes"`),
    )
  }
})

t.test('RFC 9110 §8.8.3: an unquoted entity-tag is quoted on its way to the origin', async (t) => {
  const { get, seen, clock } = await setup(
    t,
    validating({ etag: 'abcdef' }, (req) => req.headers['if-none-match'] === '"abcdef"'),
  )
  await get()
  clock.advance(2000)
  const revalidated = await get()
  t.equal(seen[1]!['if-none-match'], '"abcdef"', 'the stored bare ETag, quoted')
  t.match(revalidated.headers['cache-status'], /fwd-status=304/)
  // A request the cache does not store for passes the client's validator on, quoted.
  await get('/other', { headers: { 'if-none-match': 'xyz, "q"', 'cache-control': 'no-store' } })
  t.equal(seen[2]!['if-none-match'], '"xyz", "q"')
})

t.test(
  'RFC 9110 §14.1.2: several ranges go to the origin (a fresh entry answers one)',
  async (t) => {
    const { get, seen } = await setup(t, (req, res) => {
      if (req.headers.range !== undefined) {
        res.writeHead(206, {
          'content-type': 'multipart/byteranges; boundary=B',
          'cache-control': 'max-age=600',
        })
        return res.end('--B\r\n\r\n01\r\n--B\r\n\r\n45\r\n--B--\r\n')
      }
      res.writeHead(200, { 'cache-control': 'max-age=600' })
      res.end('0123456789')
    })
    await get()
    const multi = await get('/', { headers: { range: 'bytes=0-1,4-5' } })
    t.equal(multi.status, 206)
    t.match(multi.headers['content-type'], /multipart\/byteranges/)
    t.equal(seen[1]!.range, 'bytes=0-1,4-5', 'the origin got the Range')
    const single = await get('/', { headers: { range: 'bytes=4-5' } })
    t.equal(single.text, '45')
    t.match(single.headers['cache-status'], /hit/)
    t.equal((await get()).text, '0123456789', 'the stored 200 is untouched')
    t.equal(seen.length, 2)
  },
)

t.test(
  'RFC 9110 §13.1.3: a Last-Modified-only entry is revalidated with If-Modified-Since alone',
  async (t) => {
    const lastModified = 'Sun, 06 Nov 1994 08:49:37 GMT'
    // An origin that keeps to §13.1.3: with If-None-Match present, If-Modified-Since is ignored.
    const current = (req: IncomingMessage) =>
      req.headers['if-none-match'] === undefined &&
      req.headers['if-modified-since'] === lastModified
    const { get, seen, clock } = await setup(
      t,
      validating({ 'last-modified': lastModified }, current),
    )
    await get()
    clock.advance(2000)
    const revalidated = await get()
    t.equal(seen[1]!['if-none-match'], undefined, 'not the ETag the cache computed itself')
    t.equal(seen[1]!['if-modified-since'], lastModified)
    t.match(revalidated.headers['cache-status'], /fwd=stale; fwd-status=304/)
    t.equal(revalidated.text, 'body')
  },
)

t.test(
  'RFC 9111 §4.3.1: a stale variant is revalidated with the selecting headers it was stored for',
  async (t) => {
    const { get, seen, clock } = await setup(
      t,
      validating(
        { etag: '"v1"', vary: 'Accept-Language, X-Tenant' },
        (req) => req.headers['if-none-match'] === '"v1"',
      ),
    )
    await get('/', { headers: { 'accept-language': 'en, de' } })
    clock.advance(2000)
    // The same variant once normalised (order and case ignored), sent otherwise.
    const revalidated = await get('/', { headers: { 'accept-language': 'DE,EN' } })
    t.equal(seen[1]!['if-none-match'], '"v1"', 'the stored ETag')
    t.equal(
      seen[1]!['accept-language'],
      'en, de',
      'with the Accept-Language the stored response answered',
    )
    t.equal(seen[1]!['x-tenant'], undefined, 'and no X-Tenant, which that request did not send')
    t.equal(revalidated.text, 'body')
    t.match(revalidated.headers['cache-status'], /fwd=stale; fwd-status=304; stored/)
    clock.advance(2000)
    await get('/', { headers: { 'accept-language': 'de , en' } })
    t.equal(seen[2]!['accept-language'], 'en, de', 'the refreshed entry keeps them')
  },
)

t.test(
  'RFC 9111 §4.3.5: a HEAD on a stale stored GET goes to the origin as HEAD and updates it',
  async (t) => {
    /** The origin: the GET once, then what `head` says to each HEAD (the same body's length). */
    async function afterHead(head: Record<string, string>, status = 200) {
      const methods: string[] = []
      const { get, seen, clock } = await setup(t, (req, res, call) => {
        methods.push(req.method!)
        if (call === 1) {
          res.writeHead(200, { 'cache-control': 'max-age=1', 'x-template': '1', etag: '"v1"' })
          return res.end('body')
        }
        if (req.method === 'HEAD')
          return res.writeHead(status, { 'content-length': '4', ...head }).end()
        res.writeHead(200, { ...head, 'content-length': '4' }).end('new!')
      })
      await get()
      clock.advance(2000)
      const reply = await get('/', { method: 'HEAD' })
      return { reply, seen, methods, next: () => get() }
    }
    const matching = await afterHead({
      'cache-control': 'max-age=100',
      'x-other': 'a',
      etag: '"v1"',
    })
    t.equal(matching.methods[1], 'HEAD', 'a HEAD goes on as HEAD')
    t.equal(matching.seen[1]!['if-none-match'], '"v1"', 'with the stored validators')
    t.equal(matching.reply.status, 200)
    t.equal(matching.reply.headers['x-template'], '1', 'stored fields it did not send are kept')
    t.equal(matching.reply.headers['x-other'], 'a', 'and those it sent are taken')
    t.match(matching.reply.headers['cache-status'], /fwd=stale; fwd-status=200; stored/)
    const hit = await matching.next()
    t.equal(hit.text, 'body', 'the stored GET, still its body')
    t.equal(hit.headers['x-other'], 'a', "with the HEAD's headers")
    t.match(hit.headers['cache-status'], /hit; ttl=100/, "and the HEAD's freshness")
    t.equal(matching.seen.length, 2, 'the origin was asked once more, for the HEAD')
    t.same(matching.methods, ['GET', 'HEAD'])

    const noValidators = await afterHead({ 'cache-control': 'max-age=100' })
    t.match(
      noValidators.reply.headers['cache-status'],
      /stored/,
      'no validator sent: the length matches',
    )
    t.match((await noValidators.next()).headers['cache-status'], /hit/)

    for (const [what, head] of [
      ['another ETag', { 'cache-control': 'max-age=100', etag: '"v2"' }],
      ['another Content-Length', { 'cache-control': 'max-age=100', 'content-length': '9' }],
      [
        'another Last-Modified',
        { 'cache-control': 'max-age=100', 'last-modified': 'Sat, 01 Jan 2000 00:00:00 GMT' },
      ],
    ] as const) {
      const changed = await afterHead(head)
      t.equal(
        changed.reply.headers['content-length'],
        head['content-length'] ?? '4',
        `${what}: the origin's HEAD`,
      )
      t.match(
        changed.reply.headers['cache-status'],
        /fwd=stale; detail=head/,
        `${what}: not stored as the GET`,
      )
      const after = await changed.next()
      t.equal(
        after.text,
        'new!',
        `${what}: the stored GET is stale, the next GET goes to the origin`,
      )
    }
    const gone = await afterHead({ 'cache-control': 'max-age=100' }, 410)
    t.equal(gone.reply.status, 410, "a 410 to the HEAD is the client's")
    t.match(
      (await gone.next()).headers['cache-status'],
      /fwd=stale/,
      'and updates nothing (§4.3.5: a 200)',
    )
  },
)
