// Issue 22, item 2: no request and no origin response can throw out of the request path. Seeded,
// bounded fast-check runs send malformed request-targets, Hosts, methods and versions on raw
// sockets, and have the origin answer with malformed Location and Content-Location values and
// any status, through:
// - the proxy: accelerate(forward(origin), { sharedCache: true, surrogateKeys: true }) with the
//   purge API in front, as the `accelerator` command builds it;
// - the library: accelerate(handler, { sharedCache: true }), raw `http` and Express middleware.
// Each request must get an answer (Node's own 400 for what its parser refuses, a 4xx or 5xx, or a
// proper response), nothing may be reported as a defect of the cache, a canary entry stays a hit
// with the same bytes, and the process keeps serving (an uncaught exception fails the file).
// Before the fix, `POST //` answered 2xx took the proxy down with `TypeError: Invalid URL`.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import express from 'express'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { accelerate, type Accelerator } from '../../src/index.js'
import { forward, purgeApi } from '../../src/proxy/index.js'
import { listen } from '../fixtures/http.js'
import { rawRequest } from '../fixtures/hostile-http.js'

const SEED = 22
const RUNS = 150
const CANARY = 'canary bytes\n'

/** Characters a header value may hold (what Node lets an origin send and a client put in a line). */
const headerChar = fc.constantFrom(
  ...'abz09AZ:/?#[]@!$&\'()*+,;=%.-_~ {}|\\^`"<>',
  '\t',
  '\x80',
  '\xff',
  '\xe9',
)
/** Request-target characters, including what Node's parser refuses (it answers 400). */
const targetChar = fc.constantFrom(...'abz09:/?#[]@!$&\'()*+,;=%.-_~{}|\\^`"<>', '\x80', '\xff')

const hostileTarget = fc.oneof(
  fc.constantFrom(
    '/',
    '//',
    '///x',
    '/a/../b',
    '/a/./b',
    '/%',
    '/%zz',
    '/%2e%2e/x',
    "/o'reilly?q={1}",
    '*',
    'x',
    'http://',
    'http://[bad/',
    'http://a:99999/x',
    'http://user@h/',
    'https://h/p',
    'HTTP://H/p',
    'ftp://h/',
    'http://h',
    'http://h?q',
    '/\x80\xff',
    '/a?b#c',
    '/.accelerator/purge',
  ),
  fc.string({ unit: targetChar, maxLength: 40 }).map((s) => '/' + s),
  fc.string({ unit: targetChar, maxLength: 40 }),
)
const hostileHost = fc.oneof(
  fc.constantFrom(
    null,
    '',
    'a:99999',
    '[::1',
    '[bad',
    'a b',
    'example.com:443',
    'EXAMPLE.com.:80',
    'x@y',
    '/path',
    'h:',
    ':80',
    '[::1]:0',
    'h\x80',
  ),
  fc.string({ unit: headerChar, maxLength: 30 }),
)
const hostileReference = fc.option(
  fc.oneof(
    fc.constantFrom(
      '',
      'http://[bad/',
      'http://a:99999/',
      '//',
      '///',
      'http://',
      'https://',
      '//[bad',
      '\x80',
      ' ',
      '../../..',
      '?',
      '#',
      'mailto:x',
      'javascript:x',
      'http://127.0.0.1/x',
      '/items/{2}',
      "/o'reilly",
      'http://h:0/',
      'http://h:-1/',
    ),
    fc.string({ unit: headerChar, maxLength: 40 }),
  ),
  { nil: undefined },
)
const exchange = fc.record({
  method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'PURGE', 'OPTIONS'),
  target: hostileTarget,
  host: hostileHost,
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'),
  status: fc.constantFrom(200, 201, 204, 301, 303, 404, 500),
  location: hostileReference,
  contentLocation: hostileReference,
})
type Exchange = typeof exchange extends fc.Arbitrary<infer T> ? T : never

/**
 * The origin's answer, as the fuzzer asked for it in X-Want-* request headers: header values
 * Node's parser accepted are values Node lets a server send.
 */
function answer(req: IncomingMessage, res: ServerResponse & { cacheFor?: number }): void {
  if (req.url === '/canary') {
    res.writeHead(200, { 'cache-control': 'max-age=600' })
    return void res.end(CANARY)
  }
  const headers: Record<string, string> = { 'cache-control': 'max-age=60' }
  for (const [want, name] of [
    ['x-want-location', 'location'],
    ['x-want-content-location', 'content-location'],
  ] as const) {
    const value = req.headers[want]
    if (typeof value === 'string') headers[name] = value
  }
  req.resume()
  res.writeHead(Number(req.headers['x-want-status'] ?? 200), headers)
  res.end('origin says hi')
}

/** The raw request of one exchange, with what the origin is to answer in its header lines. */
function send(url: string, x: Exchange) {
  const lines: Array<[string, string]> = [['X-Want-Status', String(x.status)]]
  if (x.location !== undefined) lines.push(['X-Want-Location', x.location])
  if (x.contentLocation !== undefined) lines.push(['X-Want-Content-Location', x.contentLocation])
  if (x.method === 'POST' || x.method === 'PUT' || x.method === 'PATCH')
    lines.push(['Content-Length', '2'])
  const body = lines.some(([name]) => name === 'Content-Length') ? '{}' : ''
  return rawRequest(url, {
    method: x.method,
    target: x.target,
    host: x.host,
    version: x.version,
    lines: [...lines, ['Authorization', 'Bearer t']],
    body,
  })
}

/** Runs the seeded exchanges against `url`; asserts each is answered and the canary is intact. */
async function fuzz(t: Test, url: string, app: Pick<Accelerator, 'stats'>, defects: string[]) {
  const first = await rawRequest(url, { target: '/canary' })
  t.equal(first.text, CANARY)
  let answered = 0
  await fc.assert(
    fc.asyncProperty(exchange, async (x) => {
      const reply = await send(url, x)
      if (!(reply.status >= 100 && reply.status <= 599))
        throw new Error(`no status line for ${JSON.stringify(x)}: ${reply.status}`)
      answered++
    }),
    { seed: SEED, numRuns: RUNS },
  )
  t.equal(answered, RUNS, `${RUNS} hostile exchanges, each answered`)
  const canary = await rawRequest(url, { target: '/canary' })
  t.match(canary.headers['cache-status'], /hit/, 'the canary is still a hit')
  t.equal(canary.text, CANARY, 'with its bytes')
  t.same(defects, [], 'nothing reported as a defect of the cache')
  t.ok(app.stats().hits >= 1)
}

/** Records what onError gets as a defect: the request flow throwing (op accelerate) or a key error. */
const recorder =
  (defects: string[]) =>
  (err: Error, { op }: { op: string }) => {
    if (op === 'accelerate' || op === 'key' || op === 'invalidate')
      defects.push(`${op}: ${err.stack ?? err.message}`)
  }

t.test(
  'the proxy: accelerate(forward(origin), { sharedCache, surrogateKeys }) with the purge API',
  async (t) => {
    const origin = await listen(t, answer)
    const upstream = forward(origin)
    t.teardown(() => upstream.close())
    const defects: string[] = []
    const app = accelerate(upstream, {
      sharedCache: true,
      surrogateKeys: true,
      onError: recorder(defects),
    })
    t.teardown(() => app.close())
    const purge = purgeApi(app, 't')
    const url = await listen(t, (req, res) => purge(req, res) || app(req, res))
    await fuzz(t, url, app, defects)
  },
)

t.test('the library: accelerate(handler, { sharedCache })', async (t) => {
  const defects: string[] = []
  const app = accelerate(answer, { sharedCache: true, onError: recorder(defects) })
  t.teardown(() => app.close())
  const url = await listen(t, app)
  await fuzz(t, url, app, defects)
})

t.test('the library as Express middleware under a mount path', async (t) => {
  const defects: string[] = []
  const acc = accelerate(() => undefined, { sharedCache: true, onError: recorder(defects) })
  t.teardown(() => acc.close())
  const router = express.Router()
  router.use(acc.middleware)
  router.use((req, res) => answer(req, res))
  const app = express()
  app.use('/canary', (req, res) => answer(Object.assign(req, { url: '/canary' }), res))
  app.use('/', router)
  const url = await listen(t, app)
  const first = await rawRequest(url, { target: '/canary' })
  t.equal(first.text, CANARY)
  let answered = 0
  await fc.assert(
    fc.asyncProperty(exchange, async (x) => {
      const reply = await send(url, x)
      if (!(reply.status >= 100 && reply.status <= 599))
        throw new Error(`no status line for ${JSON.stringify(x)}`)
      answered++
    }),
    { seed: SEED + 1, numRuns: RUNS },
  )
  t.equal(answered, RUNS)
  t.same(defects, [])
})

t.test(
  'invalidate() and the purge API on fuzzed URLs and Hosts: a count or a TypeError, never a throw',
  async (t) => {
    const app = accelerate((_req, res) => {
      res.cacheFor = 60
      return 'x'
    })
    t.teardown(() => app.close())
    const url = fc.oneof(
      hostileTarget,
      hostileReference.map((ref) => ref ?? '/'),
      fc.string({ maxLength: 20 }),
    )
    const host = fc.option(
      fc.oneof(
        hostileHost.map((h) => h ?? ''),
        fc.string({ maxLength: 10 }),
      ),
      { nil: undefined },
    )
    await fc.assert(
      fc.asyncProperty(url, host, async (u, h) => {
        const outcome = await app.invalidate(u, h === undefined ? {} : { host: h }).then(
          (count) => (Number.isInteger(count) ? 'count' : `not a count: ${count}`),
          (err: Error) => (err instanceof TypeError ? 'TypeError' : `${err.name}: ${err.message}`),
        )
        if (outcome !== 'count' && outcome !== 'TypeError')
          throw new Error(`${JSON.stringify([u, h])}: ${outcome}`)
      }),
      { seed: SEED, numRuns: 500 },
    )
    t.pass('500 fuzzed invalidations: each a count or a TypeError')
  },
)
