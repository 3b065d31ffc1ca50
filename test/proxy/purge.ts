// The purge API of the proxy: PURGE /path and POST /.accelerator/purge, with a Bearer token;
// without a token configured, both go to the origin like any request.
import t, { type Test } from 'tap'
import { startProxy, type ProxyConfig } from '../../src/proxy/cli.js'
import { eventually, listen, request } from '../fixtures/http.js'

async function setup(t: Test, config: Partial<ProxyConfig> = {}) {
  const seen: string[] = []
  const origin = await listen(t, (req, res) => {
    seen.push(`${req.method} ${req.url}`)
    res.writeHead(200, { 'cache-control': 'max-age=60', 'surrogate-key': `page:${req.url}` })
    res.end(`origin ${seen.length}`)
  })
  const proxy = await startProxy(
    {
      upstream: new URL(origin),
      port: 0,
      host: '127.0.0.1',
      maxBytes: 1 << 20,
      keepSurrogateHeaders: false,
      log: false,
      ...config,
    },
    () => {},
  )
  t.teardown(() => proxy.close())
  return { url: proxy.url, seen }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

t.test('PURGE /path with the right token drops that URL', async (t) => {
  const { url, seen } = await setup(t, { purgeToken: 's3cret' })
  await request(url + '/a')
  const purged = await request(url + '/a', { method: 'PURGE', headers: bearer('s3cret') })
  t.equal(purged.status, 200)
  t.same(JSON.parse(purged.text), { purged: 1 })
  t.equal(purged.headers['content-type'], 'application/json')
  await request(url + '/a')
  t.same(seen, ['GET /a', 'GET /a'], 'the PURGE itself never reached the origin')
})

t.test('POST /.accelerator/purge drops by tags and URLs, softly if asked', async (t) => {
  const { url } = await setup(t, { purgeToken: 's3cret' })
  for (const path of ['/a', '/b', '/c']) await request(url + path)
  const reply = await request(url + '/.accelerator/purge', {
    method: 'POST',
    headers: { ...bearer('s3cret'), 'content-type': 'application/json' },
    body: JSON.stringify({ tags: ['page:/a', 'page:/b'], urls: ['/c', '/never'] }),
  })
  t.equal(reply.status, 200)
  t.same(JSON.parse(reply.text), { tags: 2, urls: 1 })
  await request(url + '/a')
  const soft = await request(url + '/.accelerator/purge', {
    method: 'POST',
    headers: bearer('s3cret'),
    body: JSON.stringify({ tags: ['page:/a'], soft: true }),
  })
  t.same(JSON.parse(soft.text), { tags: 1, urls: 0 })
  t.match(
    (await request(url + '/a')).headers['cache-status'],
    /detail=stale-while-revalidate/,
    'served stale once, while refreshed',
  )
  // Let the background refresh land before the proxy is closed.
  await eventually(
    async () => /hit; ttl=\d/.test(String((await request(url + '/a')).headers['cache-status'])),
    'the refresh landed',
  )
  t.match((await request(url + '/a')).headers['cache-status'], /hit; ttl=\d/, 'refreshed')
})

t.test('a wrong or missing token is a plain 401, whichever part was wrong', async (t) => {
  const { url, seen } = await setup(t, { purgeToken: 's3cret' })
  const replies = await Promise.all([
    request(url + '/a', { method: 'PURGE' }),
    request(url + '/a', { method: 'PURGE', headers: bearer('s3cre') }),
    request(url + '/a', { method: 'PURGE', headers: bearer('s3cret-and-more') }),
    request(url + '/a', { method: 'PURGE', headers: { authorization: 'Basic czNjcmV0' } }),
    request(url + '/.accelerator/purge', { method: 'POST', headers: bearer('nope'), body: '{}' }),
  ])
  for (const reply of replies) {
    t.equal(reply.status, 401)
    t.equal(reply.text, '{"error":"unauthorized"}\n')
    t.equal(reply.headers['www-authenticate'], 'Bearer')
  }
  t.same(seen, [])
})

t.test('a bad purge body is a 400; a huge one a 413', async (t) => {
  const { url } = await setup(t, { purgeToken: 's3cret' })
  for (const body of ['not json', '[]', '{"tags":"a"}', '{"urls":[1]}', '{"soft":"yes"}']) {
    t.equal(
      (
        await request(url + '/.accelerator/purge', {
          method: 'POST',
          headers: bearer('s3cret'),
          body,
        })
      ).status,
      400,
      body,
    )
  }
  const huge = await request(url + '/.accelerator/purge', {
    method: 'POST',
    headers: bearer('s3cret'),
    body: 'x'.repeat(2 * 1024 * 1024),
  }).catch(() => ({ status: 413 }))
  t.equal(huge.status, 413)
})

t.test('without a token configured, PURGE and the purge path go to the origin', async (t) => {
  const { url, seen } = await setup(t)
  await request(url + '/a', { method: 'PURGE', headers: bearer('anything') })
  await request(url + '/.accelerator/purge', { method: 'POST', body: '{}' })
  t.same(seen, ['PURGE /a', 'POST /.accelerator/purge'])
})

t.test(
  'purgeApi directly: a token is required; a failing store is a 500; URLs alone',
  async (t) => {
    const { purgeApi } = await import('../../src/proxy/purge.js')
    t.throws(() => purgeApi({ invalidate: async () => 0, invalidateTags: async () => 0 }, ''), {
      name: 'TypeError',
      message:
        "expected purgeApi's token to be a non-empty string (purgeApi(app, process.env.PURGE_TOKEN), a long random secret), got an empty string",
    })
    t.throws(
      () =>
        purgeApi({ invalidate: async () => 0, invalidateTags: async () => 0 }, {
          token: 's',
        } as never),
      {
        name: 'TypeError',
        message: /, got an object$/,
      },
    )
    const purge = purgeApi(
      {
        invalidate: async (url) =>
          url === '/broken' ? Promise.reject(new Error('store down')) : 1,
        invalidateTags: async () => 0,
      },
      't',
    )
    const url = await listen(t, (req, res) => purge(req, res) || res.end('not a purge'))
    const broken = await request(url + '/broken', { method: 'PURGE', headers: bearer('t') })
    t.equal(broken.status, 500)
    t.same(JSON.parse(broken.text), { error: 'store down' })
    const urls = await request(url + '/.accelerator/purge', {
      method: 'POST',
      headers: bearer('t'),
      body: '{"urls":["/a","/b"]}',
    })
    t.same(JSON.parse(urls.text), { tags: 0, urls: 2 })
    const failing = await request(url + '/.accelerator/purge', {
      method: 'POST',
      headers: bearer('t'),
      body: '{"urls":["/a","/broken"]}',
    })
    t.equal(failing.status, 500, 'a store failure in a URL of the body: 500, not a 400')
    t.same(JSON.parse(failing.text), { error: 'store down' })
    t.equal((await request(url + '/.accelerator/purge?x', { method: 'GET' })).text, 'not a purge')
  },
)

t.test('a PURGE without a Host (HTTP/1.0) purges the localhost URL', async (t) => {
  const { purgeApi } = await import('../../src/proxy/purge.js')
  const asked: unknown[] = []
  const purge = purgeApi(
    {
      invalidate: async (url, options) => (asked.push([url, options]), 0),
      invalidateTags: async () => 0,
    },
    't',
  )
  const url = await listen(t, (req, res) => void purge(req, res))
  const net = await import('node:net')
  await new Promise<void>((resolve) => {
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1', () =>
      socket.write('PURGE /x HTTP/1.0\r\nAuthorization: Bearer t\r\n\r\n'),
    )
    socket.on('data', () => {})
    socket.on('close', () => resolve())
  })
  t.same(asked, [['/x', { host: 'localhost' }]])
})

t.test('the proxy on Redis, and on a Redis that does not answer (it serves anyway)', async (t) => {
  const { startRedis, freePort } = await import('../fixtures/redis-server.js')
  const redis = await startRedis(t)
  const { url, seen } = await setup(t, { redis: redis.url })
  // Asked until a hit: on a loaded machine a Redis call can outlast the store's 100 ms, and the
  // store fails open (nothing stored, only-if-cached answering 504 from then on); a miss stores it.
  await eventually(
    async () => /hit/.test(String((await request(url + '/r')).headers['cache-status'])),
    'stored in Redis',
  )
  const asked = seen.length
  t.match((await request(url + '/r')).headers['cache-status'], /hit/, 'stored in Redis')
  t.same(seen, Array(asked).fill('GET /r'), 'served from Redis, not the origin')
  const lines: string[] = []
  const origin = await listen(t, (_req, res) => res.end('uncached'))
  const down = await startProxy(
    {
      upstream: new URL(origin),
      port: 0,
      host: '127.0.0.1',
      maxBytes: 1 << 20,
      keepSurrogateHeaders: false,
      log: false,
      redis: `redis://127.0.0.1:${await freePort()}`,
    },
    (line) => lines.push(line),
  )
  t.teardown(() => down.close())
  t.match(
    lines[0],
    /^RedisStore redis:\/\/127\.0\.0\.1:\d+: not ready within 2000 ms \(last error: connection refused \(ECONNREFUSED\)\); proxying uncached until it is$/,
  )
  t.equal((await request(down.url + '/')).text, 'uncached')
})

// Issue 22, item 9: what a purge names is what it drops, and input the accelerator refuses is a
// 400 saying why (it answered 500 before), on raw sockets so that Hosts and targets are exact.
t.test("PURGE http://site2.test/a.txt sent with Host site1.test drops site2's entry", async (t) => {
  const { rawRequest } = await import('../fixtures/hostile-http.js')
  const { url, seen } = await setup(t, { purgeToken: 's3cret' })
  const get = (host: string) => rawRequest(url, { target: '/a.txt', host })
  for (const host of ['site1.test', 'site2.test']) await get(host)
  const purged = await rawRequest(url, {
    method: 'PURGE',
    target: 'http://site2.test/a.txt',
    host: 'site1.test',
    lines: [['Authorization', 'Bearer s3cret']],
  })
  t.same(JSON.parse(purged.text), { purged: 1 })
  t.match((await get('site1.test')).headers['cache-status'], /hit/, 'site1 kept')
  t.match((await get('site2.test')).headers['cache-status'], /fwd=miss/, 'site2 dropped')
  const body = JSON.stringify({ urls: ['http://site1.test/a.txt', '/a.txt'] })
  const json = await rawRequest(url, {
    method: 'POST',
    target: '/.accelerator/purge',
    host: 'site2.test',
    lines: [
      ['Authorization', 'Bearer s3cret'],
      ['Content-Length', String(body.length)],
    ],
    body,
  })
  t.same(
    JSON.parse(json.text),
    { tags: 0, urls: 2 },
    "site1's by its URL, and /a.txt on the request's Host (site2)",
  )
  t.match((await get('site1.test')).headers['cache-status'], /fwd=miss/)
  t.match((await get('site2.test')).headers['cache-status'], /fwd=miss/)
  t.same(
    seen,
    Array(5).fill('GET /a.txt'),
    'two renders, three after the purges; no purge reached the origin',
  )
})

t.test('malformed purges are a 400 with the reason, and drop nothing', async (t) => {
  const { rawRequest } = await import('../fixtures/hostile-http.js')
  const { url } = await setup(t, { purgeToken: 's3cret' })
  await request(url + '/kept')
  const auth: [string, string] = ['Authorization', 'Bearer s3cret']
  const post = (body: string, host?: string) =>
    rawRequest(url, {
      method: 'POST',
      target: '/.accelerator/purge',
      ...(host === undefined ? {} : { host }),
      lines: [auth, ['Content-Length', String(Buffer.byteLength(body))]],
      body,
    })
  const cases: Array<[string, Promise<{ status: number; text: string }>, string]> = [
    [
      'a lone-surrogate tag',
      post('{"tags":["page:/kept","\\ud800"]}'),
      'tags[1] is "\\ud800": not well-formed Unicode (a lone surrogate)',
    ],
    [
      'a reserved tag',
      post('{"tags":["\\u0000path\\u0000/kept"]}'),
      'tags[0] is "\\u0000path\\u0000/kept": tags of the form "\\u0000name\\u0000..." are reserved',
    ],
    [
      'a URL that does not parse',
      post('{"urls":["/fine","http://[bad/"]}'),
      'urls[1]: expected a URL the key function keys, got "http://[bad/" on Host "[bad" (its key: undefined)',
    ],
    [
      'a URL of another scheme',
      post('{"urls":["ftp://x/"]}'),
      'urls[0]: expected an http: or https: URL or a path, got "ftp://x/"',
    ],
    [
      'a lone surrogate in a URL',
      post('{"urls":["/\\udc00"]}'),
      'urls[0]: expected url to be a well-formed string, got "/\\udc00"',
    ],
    [
      'a Host the key refuses',
      post('{"urls":["/kept"]}', 'a b'),
      'urls[0]: expected a URL the key function keys, got "/kept" on Host "a b" (its key: undefined)',
    ],
    [
      'PURGE with a Host the key refuses',
      rawRequest(url, { method: 'PURGE', target: '/kept', host: 'a b', lines: [auth] }),
      'expected a URL the key function keys, got "/kept" on Host "a b" (its key: undefined)',
    ],
    [
      'PURGE http://[bad/',
      rawRequest(url, { method: 'PURGE', target: 'http://[bad/', lines: [auth] }),
      'expected a URL the key function keys, got "http://[bad/" on Host "[bad" (its key: undefined)',
    ],
  ]
  for (const [name, reply, error] of cases) {
    const { status, text } = await reply
    t.equal(status, 400, `${name}: 400`)
    t.same(JSON.parse(text), { error }, `${name}: says why`)
  }
  t.match(
    (await request(url + '/kept')).headers['cache-status'],
    /hit/,
    'nothing was dropped by the refused purges',
  )
})
