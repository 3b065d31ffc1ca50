// Key helpers: sortedQuery, ignoreParams, hostAliases, each composable with defaultKey. The rule
// they keep: requests that share a key are one request to the handler, so what the handler saw
// is recorded and compared with what the key left out.
import t, { type Test } from 'tap'
import http, { type IncomingMessage } from 'node:http'
import express from 'express'
import { accelerate, defaultKey, keys } from '../../src/index.js'
import type { AccelerateOptions, KeyRequest } from '../../src/index.js'
import { counted, listen, request } from '../fixtures/http.js'
import { serve } from '../fixtures/transports.js'

/** A GET of `path` exactly as given (WHATWG URLs drop an empty `?`); resolves its Cache-Status. */
function rawGet(url: string, path: string, host: string): Promise<string | undefined> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    http
      .get({ host: hostname, port, path, headers: { host }, agent: false }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.headers['cache-status'] as string | undefined))
      })
      .on('error', reject)
  })
}

/** An accelerated origin that reflects the URL and Host it saw, and records them. */
async function reflecting(t: Test, options: AccelerateOptions) {
  const seen: Array<{ url: string; host: string; rawHost: string }> = []
  const origin = counted((req, res) => {
    const at = req.rawHeaders.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === 'host')
    const rawHost = req.rawHeaders[at + 1]!
    seen.push({ url: req.url!, host: req.headers.host!, rawHost })
    res.cacheFor = 60
    return `${req.headers.host} ${req.url}`
  })
  const app = accelerate(origin, options)
  t.teardown(() => app.close())
  return { url: await listen(t, app), app, origin, seen }
}

t.test('sortedQuery: one key for any order of names; the handler sees that order', async (t) => {
  const { url, origin, seen } = await reflecting(t, { key: keys.sortedQuery() })
  const first = await request(url + '/p?b=2&c=3&a=1')
  const second = await request(url + '/p?a=1&c=3&b=2')
  t.equal(origin.calls, 1)
  t.equal(second.text, first.text)
  // So every request of the key is the same request to the handler.
  t.equal(seen[0]!.url, '/p?a=1&b=2&c=3', 'the handler got the sorted query')

  await request(url + '/p?a=1&a=2')
  await request(url + '/p?a=2&a=1')
  // First-wins and last-wins parsers read them differently.
  t.equal(origin.calls, 3, 'the same name twice keeps its order')

  await request(url + '/q?b=1&%61=2')
  t.equal(seen.at(-1)!.url, '/q?%61=2&b=1', 'ordered by decoded name, pairs kept byte for byte')
  await request(url + '/r?a+b=1&a%2Bb=2')
  await request(url + '/r?a%2Bb=2&a+b=1')
  t.equal(origin.calls, 6, '`+` and `%2B` are one name to some parsers: they keep their order')
  await request(url + '/s?only=1')
  await request(url + '/s')
  t.same(
    seen.slice(-2).map(({ url }) => url),
    ['/s?only=1', '/s'],
    'nothing to sort: untouched',
  )
})

t.test('ignoreParams: ignored parameters never reach the handler nor its entry', async (t) => {
  const seen: string[] = []
  const origin = counted((req, res) => {
    seen.push(req.url!)
    res.cacheFor = 60
    // A page that reflects its query (a canonical link, a hidden form field): the classic victim.
    const query = new URL(req.url!, 'http://x').searchParams
    return `<a href="/next?${query}">next</a>`
  })
  const app = accelerate(origin, { key: keys.ignoreParams(keys.trackingParams) })
  t.teardown(() => app.close())
  const url = await listen(t, app)

  const payload = 'utm_source=%3Cscript%3Eevil()%3C/script%3E&fbclid=x&gclid=y&utm_campaign=z'
  const attack = await request(url + `/page?a=1&${payload}`)
  const victim = await request(url + '/page?a=1')
  t.equal(origin.calls, 1, 'the campaign link and the plain link share one entry')
  t.notMatch(victim.text, /evil|script/, "the victim gets no trace of the attacker's parameters")
  t.equal(attack.text, '<a href="/next?a=1">next</a>')
  t.same(seen, ['/page?a=1'])

  await request(url + '/page?utm%5Fsource=x&a=1')
  t.equal(origin.calls, 1, 'names are matched decoded')
  await request(url + '/other?utm_medium=email&utm_term=x')
  await request(url + '/other')
  t.same(seen.slice(1), ['/other'], 'nothing left: no `?` either')
  const kept = ['utm=1', 'xutm_source=1', 'gclid2=1', 'UTM_SOURCE=1']
  for (const query of kept) await request(url + `/kept?${query}`)
  // Only the listed names and prefixes, case-sensitive like the parsers.
  t.same(
    seen.slice(2),
    kept.map((query) => `/kept?${query}`),
  )
  await rawGet(url, '/empty?', 'h')
  t.equal(seen.at(-1), '/empty?', 'a query with nothing ignored is left as sent')
})

t.test('ignoreParams with no names ignores nothing; it is opt-in', async (t) => {
  const { url, origin } = await reflecting(t, { key: keys.ignoreParams([]) })
  await request(url + '/p?utm_source=a')
  await request(url + '/p')
  t.equal(origin.calls, 2)
})

t.test('in Express middleware mode, req.query and req.originalUrl are rewritten too', async (t) => {
  const key = keys.ignoreParams(keys.trackingParams, keys.sortedQuery())
  const acc = accelerate(() => undefined, { key })
  t.teardown(() => acc.close())
  const seen: unknown[] = []
  const blog = express.Router()
  blog.get('/post', (req, res) => {
    seen.push({ url: req.url, originalUrl: req.originalUrl, query: req.query })
    res.locals.cacheFor = 60
    res.send('post')
  })
  const app = express()
  app.use('/blog', acc.middleware, blog)
  const url = await listen(t, app)
  await request(url + '/blog/post?z=1&utm_source=x&a=2')
  await request(url + '/blog/post?a=2&z=1')
  t.same(seen, [
    {
      url: '/post?a=2&z=1',
      originalUrl: '/blog/post?a=2&z=1',
      query: { a: '2', z: '1' },
    },
  ])
})

t.test(
  "in Express middleware mode, a router that rewrote req.url keeps its path; the query is the key's",
  async (t) => {
    // A rewrite before the cache: req.url's path no longer ends req.originalUrl's. The key reads
    // the whole URL; the handler gets the rewritten path with the query the key left.
    const key = keys.ignoreParams(keys.trackingParams, keys.sortedQuery())
    const acc = accelerate(() => undefined, { key })
    t.teardown(() => acc.close())
    const seen: unknown[] = []
    const app = express()
    app.use((req, _res, next) => {
      req.url = req.url.replace(/^\/old\//, '/new/')
      next()
    })
    app.use(acc.middleware)
    app.get('/new/:page', (req, res) => {
      seen.push([req.url, req.query])
      res.locals.cacheFor = 60
      res.send(`page ${String(req.query.utm_source)}`)
    })
    const url = await listen(t, app)
    const first = await request(url + '/old/p?z=1&utm_source=evil&a=2')
    t.equal(first.text, 'page undefined', 'the ignored parameter never reaches the handler')
    t.match((await request(url + '/old/p?a=2&z=1')).headers['cache-status'], /hit/)
    t.same(seen, [['/new/p?a=2&z=1', { a: '2', z: '1' }]])
  },
)

t.test('in Express middleware mode, a request the cache bypasses keeps its URL', async (t) => {
  const key = keys.ignoreParams(keys.trackingParams, () => undefined)
  const acc = accelerate(() => undefined, { key })
  t.teardown(() => acc.close())
  const seen: unknown[] = []
  const app = express()
  app.use(acc.middleware)
  app.get('/p', (req, res) => {
    seen.push([req.url, req.originalUrl])
    res.send('p')
  })
  const url = await listen(t, app)
  await request(url + '/p?utm_source=x')
  t.same(seen, [['/p?utm_source=x', '/p?utm_source=x']])
})

t.test('hostAliases: aliases share entries; the handler sees the canonical Host', async (t) => {
  const key = keys.hostAliases({ 'www.example.com': 'example.com', 'example.org': 'example.com' })
  const { url, app, origin, seen } = await reflecting(t, { key })
  const status = async (host: string) => {
    return (await request(url + '/p', { headers: { host } })).headers['cache-status']
  }
  const alias = await request(url + '/p', { headers: { host: 'www.example.com' } })
  t.equal(alias.text, 'example.com /p')
  t.same(seen, [{ url: '/p', host: 'example.com', rawHost: 'example.com' }], 'headers, rawHeaders')
  t.match(await status('example.com'), /hit/)
  t.match(await status('WWW.Example.COM.:80'), /hit/, 'matched as defaultKey normalises')
  t.match(await status('example.org'), /hit/)
  t.equal(origin.calls, 1)
  // invalidate() through an alias drops the canonical entry.
  t.equal(await app.invalidate('http://www.example.com/p'), 1)
})

t.test('hostAliases: other Hosts bypass the cache, reaching the handler as sent', async (t) => {
  const key = keys.hostAliases({ 'www.example.com': 'example.com' })
  const { url, app, origin, seen } = await reflecting(t, { key })
  for (const host of ['evil.example', 'evil.example', '127.0.0.1', 'example.com:8080']) {
    const reply = await request(url + '/p', { headers: { host } })
    t.equal(reply.headers['cache-status'], undefined, `${host}: passed straight through`)
  }
  t.equal(origin.calls, 4)
  t.equal(app.stats().bypasses, 4)
  t.equal(seen[0]!.host, 'evil.example')

  // An absolute-form target naming the alias while the Host is mapped: defaultKey refuses the
  // mismatch, so the request bypasses, and gets its Host back.
  t.equal(await rawGet(url, 'http://www.example.com/abs', 'www.example.com'), undefined)
  const www = 'www.example.com'
  t.same(seen.at(-1), { url: 'http://www.example.com/abs', host: www, rawHost: www })
  await app.invalidate('/p', { host: 'example.com' })
})

t.test('composed: tracking parameters dropped, query sorted, host mapped', async (t) => {
  const hosts = keys.hostAliases({ 'www.example.com': 'example.com' })
  const key = keys.ignoreParams(keys.trackingParams, keys.sortedQuery(hosts))
  const { url, app, origin, seen } = await reflecting(t, { key })
  await request(url + '/p?b=1&utm_source=x&a=2', { headers: { host: 'www.example.com' } })
  const hit = await request(url + '/p?a=2&b=1', { headers: { host: 'example.com' } })
  t.match(hit.headers['cache-status'], /hit/)
  t.equal(origin.calls, 1)
  t.same(seen[0], { url: '/p?a=2&b=1', host: 'example.com', rawHost: 'example.com' })

  await request(url + '/p?b=1&utm_source=x&a=2', { headers: { host: 'unknown.example' } })
  const unknown = 'unknown.example'
  t.same(seen[1], { url: '/p?b=1&utm_source=x&a=2', host: unknown, rawHost: unknown }, 'all undone')
  // invalidate() goes through the same key.
  t.equal(await app.invalidate('https://www.example.com/p?utm_source=y&b=1&a=2'), 1)
})

t.test('a key function that throws gets the request back as it was', async (t) => {
  const errors: Error[] = []
  const { url, seen } = await reflecting(t, {
    key: keys.sortedQuery(
      keys.hostAliases({ 'www.example.com': 'example.com' }, () => {
        throw new Error('key failed')
      }),
    ),
    onError: (err) => void errors.push(err),
  })
  await request(url + '/p?b=1&a=2', { headers: { host: 'www.example.com' } })
  t.same(seen, [{ url: '/p?b=1&a=2', host: 'www.example.com', rawHost: 'www.example.com' }])
  t.match(errors, [{ message: 'key failed' }])
})

t.test('plain request objects (what invalidate() builds) are read, never changed', async (t) => {
  const hosts = keys.hostAliases({ 'www.example.com': 'example.com' })
  const key = keys.ignoreParams(['x'], keys.sortedQuery(hosts))
  const headers = { host: 'www.example.com' }
  const req: KeyRequest = { method: 'GET', url: '/p?x=1&b=2&a=1', headers }
  t.equal(key(req), 'example.com/p?a=1&b=2')
  t.same(req, { method: 'GET', url: '/p?x=1&b=2&a=1', headers: { host: 'www.example.com' } })
  t.equal(req.headers, headers)
  const at = (url: string | undefined) => ({ url, headers: { host: 'h' } }) as KeyRequest
  t.equal(keys.sortedQuery()(at('/p?b&a')), defaultKey(at('/p?a&b')))
  t.equal(keys.ignoreParams(['x'])(at(undefined)), 'h/', "no url at all: the default key's `/`")
})

t.test('bad arguments are refused when the key function is made', async (t) => {
  const chain = { 'a.example': 'b.example', 'b.example': 'c.example' }
  const cases: Array<[() => unknown, string]> = [
    [
      () => keys.ignoreParams('utm_*' as never),
      'keys.ignoreParams: expected names to be a list ' +
        `of parameter names or prefixes ending in * ('utm_*'), got "utm_*"`,
    ],
    [() => keys.ignoreParams(['utm_*_x']), 'got ["utm_*_x"]'],
    [() => keys.ignoreParams(['']), 'got [""]'],
    [() => keys.ignoreParams([1] as never), 'got [1]'],
    [
      () => keys.sortedQuery('nope' as never),
      'keys.sortedQuery: expected base to be a key ' +
        'function (req) => string | undefined, got "nope"',
    ],
    [() => keys.ignoreParams([], null as never), 'keys.ignoreParams: expected base to be a key'],
    [
      () => keys.hostAliases({}),
      'keys.hostAliases: expected an object mapping aliases to ' +
        "canonical hosts ({ 'www.example.com': 'example.com' }), got an object",
    ],
    [() => keys.hostAliases([] as never), 'got []'],
    [() => keys.hostAliases(null as never), 'got null'],
    [
      () => keys.hostAliases({ 'a b': 'example.com' }),
      'expected the alias to be a host name ' + '(with a port if not the default), got "a b"',
    ],
    [
      () => keys.hostAliases({ 'www.example.com': 5 } as never),
      'expected the canonical host of ' +
        '"www.example.com" to be a host name (with a port if not the default), got 5',
    ],
    [() => keys.hostAliases({ 'www.example.com': '' }), 'got ""'],
    [
      () => keys.hostAliases(chain),
      '"a.example" maps to "b.example", itself an alias of ' +
        '"c.example"; map every alias to its canonical host directly',
    ],
    [
      () => keys.hostAliases({ 'b.example': 'c.example', 'a.example': 'b.example' }),
      '"a.example" maps to "b.example", itself an alias of "c.example"',
    ],
    [() => keys.hostAliases({ 'a.example': 'a.example' }, 'x' as never), 'expected base to be'],
  ]
  for (const [make, message] of cases) t.throws(make, { name: 'TypeError', message })
  const self = keys.hostAliases({ 'a.example': 'a.example', 'www.a.example': 'a.example' })
  // A host may map to itself: allowed without an alias.
  t.equal(self({ url: '/', headers: { host: 'A.example' } } as KeyRequest), 'a.example/')
  t.same(keys.trackingParams, ['utm_*', 'fbclid', 'gclid'])
  t.ok(Object.isFrozen(keys.trackingParams))
})

t.test('the key helpers on the request objects Node makes', async (t) => {
  // An IncomingMessage built by hand is still a live request: it is rewritten in place.
  const req = new http.IncomingMessage(null as never) as IncomingMessage
  Object.assign(req, { url: '/p?b=1&a=1', headers: { host: 'h' }, rawHeaders: ['Host', 'h'] })
  t.equal(keys.sortedQuery()(req), 'h/p?a=1&b=1')
  t.equal(req.url, '/p?a=1&b=1')
})

t.test(
  'hostAliases over HTTP/2: the handler sees the canonical Host (rawHeaders is a getter there)',
  async (t) => {
    const seen: (string | undefined)[] = []
    const app = accelerate(
      (req, res) => {
        const raw = req.rawHeaders.findIndex(
          (name, i) => i % 2 === 0 && name.toLowerCase() === 'host',
        )
        seen.push(`${req.headers.host} ${req.rawHeaders[raw + 1]}`)
        res.cacheFor = 60
        res.end('ok')
      },
      { key: keys.hostAliases({ 'www.example.com': 'example.com' }) },
    )
    t.teardown(() => app.close())
    const served = await serve(t, 'h2c', app)
    const alias = await served.request('/p', { headers: { host: 'www.example.com' } })
    t.equal(alias.status, 200)
    t.equal(alias.body.toString(), 'ok')
    t.same(seen, ['example.com example.com'], 'headers, rawHeaders')
    const canonical = await served.request('/p', { headers: { host: 'example.com' } })
    t.match(canonical.headers['cache-status'], /hit/)
  },
)
