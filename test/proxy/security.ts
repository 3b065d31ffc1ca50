// Attacks on the proxy (issue 22): the attacker's exact bytes on a raw socket, through the proxy
// as the accelerator command composes it (startProxy), to a real origin that does what origins
// do with them; then what a victim gets. Request smuggling through a dropped framing header, a
// GET body, an upstream path prefix climbed out of, override headers, a Vary header named in
// Connection, ambiguous Hosts, and malformed targets.
import t, { type Test } from 'tap'
import type { IncomingMessage } from 'node:http'
import { posix } from 'node:path'
import { startProxy, type ProxyConfig } from '../../src/proxy/cli.js'
import { accelerate } from '../../src/index.js'
import { forward } from '../../src/proxy/index.js'
import { listen, request } from '../fixtures/http.js'
import { listenWith, rawExchange, rawRequest } from '../fixtures/hostile-http.js'

const HIT = /^node-accelerator; hit; ttl=/

/** The proxy in front of `origin`, as the command runs it: its base URL, port and Host. */
async function proxyTo(t: Test, origin: string, config: Partial<ProxyConfig> = {}) {
  const base = { port: 0, host: '127.0.0.1', maxBytes: 1 << 20 }
  const flags = { keepSurrogateHeaders: false, log: false }
  const upstream = new URL(origin)
  const proxy = await startProxy({ ...base, ...flags, upstream, ...config }, () => {})
  t.teardown(() => proxy.close())
  const { port, host } = new URL(proxy.url)
  return { url: proxy.url, port: Number(port), host }
}

/**
 * Sends a request exactly as written (latin1): the request line, Host, `lines`, then
 * `Connection: close` and `body`; reads the answer.
 */
function send(port: number, line: string, host: string, lines: string[], body = '') {
  const head = [line, `Host: ${host}`, ...lines, 'Connection: close'].join('\r\n')
  return rawExchange(port, '127.0.0.1', Buffer.from(`${head}\r\n\r\n${body}`, 'latin1'))
}

/** The body of a request, read whole. */
async function bodyOf(req: IncomingMessage): Promise<string> {
  let body = ''
  for await (const chunk of req) body += String(chunk)
  return body
}

// ---------------------------------------------------------------------------------------------
// 1. Request smuggling: a body that reaches a keep-alive origin without its framing is read as
// the next request on that connection, and its answer goes to whoever asks next.

const SMUGGLED = 'GET /poison HTTP/1.1\r\nHost: example.com\r\n\r\n'
const chunked = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n0\r\n\r\n`
const CHUNKED = 'Transfer-Encoding: chunked'
const LENGTH = `Content-Length: ${Buffer.byteLength(SMUGGLED)}`

/**
 * A keep-alive origin (Node's own server) that answers every path with `page <path>`, cacheable.
 * It answers /poison only once the next request arrived on its connection, as a slow page would:
 * a smuggled /poison's answer then goes, deterministically, to the request the proxy sent next.
 */
async function keepAliveOrigin(t: Test) {
  const seen: Array<{ method: string; url: string; body: string }> = []
  let held: (() => void) | undefined
  const url = await listen(t, async (req, res) => {
    const body = await bodyOf(req)
    seen.push({ method: req.method!, url: req.url!, body })
    const answer = () => {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' })
      res.end(`page ${req.url}`)
    }
    const release = held
    held = undefined
    if (req.url === '/poison') held = answer
    else answer()
    release?.()
  })
  return { url, seen }
}

/** A request carrying SMUGGLED as its body: method, framing lines, and whether it goes on. */
type Smuggle = [method: string, lines: string[], body: string, forwarded: boolean]

/** Connection naming a framing header: Node's parser read the body, then the header was dropped. */
const NAMING = (name: string) => `Connection: close, ${name}`

const SMUGGLES: Record<string, Smuggle> = {
  'GET, chunked': ['GET', [CHUNKED], chunked(SMUGGLED), false],
  'GET, Content-Length named': ['GET', [NAMING('Content-Length'), LENGTH], SMUGGLED, false],
  'GET upgrading, Content-Length named in Connection': [
    'GET',
    ['Upgrade: websocket', 'Connection: Upgrade, Content-Length', LENGTH],
    SMUGGLED,
    false,
  ],
  'HEAD, chunked': ['HEAD', [CHUNKED], chunked(SMUGGLED), false],
  'DELETE, chunked': ['DELETE', [CHUNKED], chunked(SMUGGLED), true],
  'OPTIONS, Content-Length named': ['OPTIONS', [NAMING('Content-Length'), LENGTH], SMUGGLED, true],
  'TRACE, chunked': ['TRACE', [CHUNKED], chunked(SMUGGLED), true],
  'POST, Content-Length named': ['POST', [NAMING('content-length'), LENGTH], SMUGGLED, true],
  'PATCH, TE named': ['PATCH', [NAMING('transfer-encoding'), CHUNKED], chunked(SMUGGLED), true],
}

t.test('a body whose framing header is dropped never reaches the origin as requests', async (t) => {
  for (const [name, [method, lines, body, forwarded]] of Object.entries(SMUGGLES)) {
    t.test(name, async (t) => {
      const origin = await keepAliveOrigin(t)
      const { url, port, host } = await proxyTo(t, origin.url)
      const answer = await send(port, `${method} /innocent HTTP/1.1`, host, lines, body)
      t.equal(answer.status, 200, 'the attacker gets an answer')
      const victim = await rawRequest(url, { target: '/home' })
      t.equal(victim.text, 'page /home', 'the next client gets its own page')
      const again = await rawRequest(url, { target: '/home' })
      t.match(again.headers['cache-status'], HIT)
      t.equal(again.text, 'page /home', 'and that is what was stored')
      const urls = origin.seen.map(({ url }) => url)
      t.same(urls, ['/innocent', '/home'], 'the origin never read /poison as a request')
      const { body: received } = origin.seen[0]!
      if (forwarded) t.equal(received, SMUGGLED, 'the body reached the origin, as a body')
      else t.equal(received, '', 'a GET or HEAD body is dropped')
    })
  }
})

t.test('forward() as a plain handler frames bodies itself, without prepare()', async (t) => {
  const origin = await keepAliveOrigin(t)
  const upstream = forward(origin.url)
  t.teardown(() => upstream.close())
  const url = await listen(t, accelerate(upstream, { sharedCache: true }))
  const { port, host } = new URL(url)
  await send(Number(port), 'GET /innocent HTTP/1.1', host, [CHUNKED], chunked(SMUGGLED))
  await send(Number(port), 'DELETE /x HTTP/1.1', host, [CHUNKED], chunked(SMUGGLED))
  t.equal((await rawRequest(url, { target: '/home' })).text, 'page /home')
  t.same(origin.seen, [
    { method: 'GET', url: '/innocent', body: '' },
    { method: 'DELETE', url: '/x', body: SMUGGLED },
    { method: 'GET', url: '/home', body: '' },
  ])
  // (Before the cache, as the command does it, prepare() refuses it even where a hit waits.)
  const twice = await rawRequest(url, { target: '/new', lines: [['Host', 'evil.example']] })
  t.equal(twice.status, 400, 'and refuses what prepare() refuses')
})

t.test('a transfer coding other than chunked is a 501: it would go on as another', async (t) => {
  const origin = await keepAliveOrigin(t)
  const { port, host } = await proxyTo(t, origin.url)
  const coded = ['Transfer-Encoding: gzip, chunked']
  const answer = await send(port, 'POST /upload HTTP/1.1', host, coded, chunked('not gzip'))
  t.equal(answer.status, 501)
  t.match(answer.text, /Transfer-Encoding "gzip, chunked" is not implemented/)
  t.equal(answer.headers.connection, 'close')
  t.same(origin.seen, [], 'the origin was not asked')
})

// ---------------------------------------------------------------------------------------------
// 7. A GET body ("fat GET"): the origin would read it, the key does not include it.

t.test('a GET body never reaches the origin: a fat GET cannot choose what all get', async (t) => {
  const origin = await listen(t, async (req, res) => {
    const body = await bodyOf(req)
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(`results for ${body || 'everything'}`)
  })
  const { url, port, host } = await proxyTo(t, origin)
  await send(port, 'GET /search HTTP/1.1', host, ['Content-Length: 4'], 'evil')
  await send(port, 'GET /chunked HTTP/1.1', host, [CHUNKED], chunked('evil'))
  t.equal((await rawRequest(url, { target: '/search' })).text, 'results for everything')
  t.equal((await rawRequest(url, { target: '/chunked' })).text, 'results for everything')
})

// ---------------------------------------------------------------------------------------------
// 6. An upstream path prefix: nothing outside it is reachable on the origin.

/**
 * How origins resolve the path they route on (the query aside), all the mistakes at once:
 * decoded twice, `\` for `/`, `;` parameters dropped, and a fragment taken as part of the path.
 */
function resolved(url: string): string {
  let path = url.split('?')[0]!
  for (let i = 0; i < 2; i++) {
    path = path.replace(/%([0-9a-f]{2})/gi, (_, hex: string) =>
      String.fromCharCode(parseInt(hex, 16)),
    )
  }
  const segments = path.replaceAll('\\', '/').split('/')
  return posix.normalize(segments.map((segment) => segment.split(';')[0]).join('/'))
}

const ESCAPES = [
  '/../admin',
  '/%2e%2e/admin',
  '/%2E%2E/admin',
  '/x/../../admin',
  '/.%2e/admin',
  '/%2e./admin',
  '/..%2fadmin',
  '/..%2Fadmin',
  '/..\\admin',
  '/..%5cadmin',
  '/..;/admin',
  '/..;x=1/admin',
  '/%252e%252e/admin',
  '/x/..%2f..%2fadmin',
  '/...',
  '/..',
  '/..?q',
  '/x#/../../admin',
  'http://example.com/../admin',
  'HTTP://example.com/%2e%2e/admin',
]
/** Paths that stay under the prefix, however resolved. */
const INSIDE = [
  '/page',
  '/a/./b',
  '/projects/group%2Fproject',
  '/file..txt',
  '/..x/y',
  '/x/y..',
  '/%2e/x',
  '/?q=../..',
]

t.test('--upstream http://origin/api: no path reaches anything outside /api', async (t) => {
  const reached: string[] = []
  const origin = await listen(t, (req, res) => {
    reached.push(req.url!)
    res.end(`served ${req.url}`)
  })
  const { url } = await proxyTo(t, origin + '/api')
  for (const target of ESCAPES) {
    const reply = await rawRequest(url, { target })
    t.equal(reply.status, 400, `${target}: refused`)
    t.match(reply.text, /a "\.\." segment in the path/)
  }
  for (const target of INSIDE) {
    t.equal((await rawRequest(url, { target })).status, 200, `${target}: forwarded`)
  }
  const outside = reached.filter((path) => !resolved(path).startsWith('/api/'))
  t.same(outside, [], 'the origin resolved every path it got inside /api')
  t.same(
    reached.map(resolved),
    INSIDE.map((path) => resolved('/api' + path)),
  )
})

t.test('without a path prefix, dot segments go on as sent (and are keyed as sent)', async (t) => {
  const origin = await listen(t, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(`served ${req.url}`)
  })
  const { url } = await proxyTo(t, origin)
  t.equal((await rawRequest(url, { target: '/a/../b' })).text, 'served /a/../b')
  t.equal((await rawRequest(url, { target: '/b' })).text, 'served /b', 'its own key')
})

// ---------------------------------------------------------------------------------------------
// 7. Override headers: whatever makes an origin render for another host, scheme, port, path,
// method or client than the request names, none of which is in the key.

/** Every override header the proxy drops by default, written out here to test the list. */
const OVERRIDES = [
  'Forwarded',
  'X-Forwarded-Host',
  'X-Forwarded-Proto',
  'X-Forwarded-Port',
  'X-Forwarded-Prefix',
  'X-Forwarded-Scheme',
  'X-Forwarded-Ssl',
  'X-Forwarded-Server',
  'X-Forwarded-Uri',
  'Front-End-Https',
  'X-Url-Scheme',
  'X-Host',
  'X-Original-Host',
  'X-Original-URL',
  'X-Rewrite-URL',
  'X-Original-URI',
  'X-Real-IP',
  'True-Client-IP',
  'X-Client-IP',
  'X-Cluster-Client-IP',
  'CF-Connecting-IP',
  'Fastly-Client-IP',
]
const METHOD_OVERRIDES = ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']

/** An origin that renders each header it got into the page (as frameworks fold them into URLs). */
async function reflectingOrigin(t: Test) {
  const evil: string[] = []
  const url = await listen(t, (req, res) => {
    for (const [name, value] of Object.entries(req.headers)) {
      if (String(value).includes('evil')) evil.push(name)
    }
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(JSON.stringify(req.headers))
  })
  return { url, evil }
}

t.test("a client's override headers reach neither the origin nor what others get", async (t) => {
  const origin = await reflectingOrigin(t)
  const { url } = await proxyTo(t, origin.url)
  for (const name of [...OVERRIDES, ...METHOD_OVERRIDES]) {
    const target = `/page-${name}`
    const value = name === 'Forwarded' ? 'host=evil.example;proto=https' : 'evil.example'
    await rawRequest(url, { target, lines: [[name, value]] })
    const victim = await rawRequest(url, { target })
    t.match(victim.headers['cache-status'], HIT, `${name}: the victim gets the stored page`)
    t.notMatch(victim.text, 'evil', `${name}: which the attacker did not choose`)
  }
  t.same(origin.evil, [], 'the origin never got one')
})

t.test('X-Forwarded-Scheme: http cannot store a redirect loop for an https site', async (t) => {
  // As a common nginx or Rails setup does: a request that arrived over http is sent to https.
  const origin = await listen(t, (req, res) => {
    const http = req.headers['x-forwarded-scheme'] === 'http'
    const location = `https://${req.headers.host}${req.url}`
    res.writeHead(http ? 301 : 200, { 'cache-control': 'max-age=60', location })
    res.end(http ? 'moved' : 'home')
  })
  const { url } = await proxyTo(t, origin)
  await rawRequest(url, { target: '/', lines: [['X-Forwarded-Scheme', 'http']] })
  const victim = await rawRequest(url, { target: '/' })
  t.equal(victim.status, 200)
  t.equal(victim.text, 'home')
})

t.test('X-Original-URL cannot route the origin to another page under this key', async (t) => {
  // As IIS and Zend do: the header names the path the application routes on.
  const origin = await listen(t, (req, res) => {
    const path = req.headers['x-original-url'] ?? req.headers['x-rewrite-url'] ?? req.url
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(path === '/admin' ? 'admin panel' : 'home')
  })
  const { url } = await proxyTo(t, origin)
  await rawRequest(url, { target: '/', lines: [['X-Original-URL', '/admin']] })
  await rawRequest(url, { target: '/other', lines: [['X-Rewrite-URL', '/admin']] })
  t.equal((await rawRequest(url, { target: '/' })).text, 'home')
  t.equal((await rawRequest(url, { target: '/other' })).text, 'home')
})

t.test('a method override on a GET never reaches the origin; on a POST it does', async (t) => {
  const performed: string[] = []
  const origin = await listen(t, (req, res) => {
    performed.push(String(req.headers['x-http-method-override'] ?? req.method))
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end('the resource')
  })
  const { url } = await proxyTo(t, origin)
  await rawRequest(url, { target: '/thing', lines: [['X-HTTP-Method-Override', 'DELETE']] })
  const headers = { 'x-http-method-override': 'PUT' }
  await request(url + '/form', { method: 'POST', headers, body: 'x' })
  t.same(performed, ['GET', 'PUT'])
})

t.test("--trust-forwarded-headers: a front proxy's override headers go on", async (t) => {
  const origin = await listen(t, (req, res) => res.end(JSON.stringify(req.headers)))
  const { url } = await proxyTo(t, origin, { trustForwardedHeaders: true })
  const front = {
    forwarded: 'for=192.0.2.1;host=www.example.com;proto=https',
    'x-forwarded-host': 'www.example.com',
    'x-forwarded-proto': 'https',
    'x-forwarded-prefix': '/shop',
    'x-real-ip': '192.0.2.1',
  }
  const lines = [...Object.entries(front), ['X-HTTP-Method-Override', 'DELETE'] as const]
  const reply = await rawRequest(url, { target: '/', lines })
  const seen = JSON.parse(reply.text) as Record<string, string>
  t.match(seen, front)
  t.equal(seen['x-http-method-override'], undefined, 'a method override on a GET is never trusted')
})

// ---------------------------------------------------------------------------------------------
// 7. Vary: a header named in Connection is not forwarded, so it must not select the variant.

t.test('a Vary header named in Connection does not select a variant it did not make', async (t) => {
  // A CORS origin: Access-Control-Allow-Origin for the allowed Origin, Vary: Origin.
  const APP = 'https://app.example'
  const origin = await listen(t, (req, res) => {
    res.setHeader('cache-control', 'max-age=60')
    res.setHeader('vary', 'Origin')
    if (req.headers.origin === APP) res.setHeader('access-control-allow-origin', APP)
    res.end('data')
  })
  const { url } = await proxyTo(t, origin)
  await rawRequest(url, {
    target: '/api',
    lines: [
      ['Origin', APP],
      ['Connection', 'Origin'],
    ],
  })
  const victim = await rawRequest(url, { target: '/api', lines: [['Origin', APP]] })
  t.equal(victim.headers['access-control-allow-origin'], APP, "the app's requests still pass CORS")
  const plain = await rawRequest(url, { target: '/api' })
  t.match(plain.headers['cache-status'], HIT, 'the attack filled the variant without Origin')
})

// ---------------------------------------------------------------------------------------------
// 8. The Host: one, canonical, and the one the cache keyed on.

t.test('two Host lines are a 400: an origin reading the last cannot render for it', async (t) => {
  let asked = 0
  const origin = await listen(t, (req, res) => {
    asked++
    const hosts = req.rawHeaders.filter((_, i) => req.rawHeaders[i - 1]?.toLowerCase() === 'host')
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(`rendered for ${hosts.at(-1)}`)
  })
  const { url } = await proxyTo(t, origin)
  const lines = [['Host', 'evil.example']] as const
  const attack = await rawRequest(url, { target: '/p', host: 'example.com', lines })
  t.equal(attack.status, 400)
  t.match(attack.text, /two Host header lines/)
  t.equal(asked, 0, 'the origin was not asked')
  const victim = await rawRequest(url, { target: '/p', host: 'example.com' })
  t.equal(victim.text, 'rendered for example.com')
})

t.test('Connection: close, host does not take the Host away from the origin', async (t) => {
  const origin = await listenWith(
    t,
    (req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end(`rendered for ${req.headers.host ?? 'the default site'}`)
    },
    { requireHostHeader: false },
  )
  const { url } = await proxyTo(t, origin)
  const lines = [['Connection', 'close, host']] as const
  await rawRequest(url, { target: '/p', host: 'example.com', lines })
  const victim = await rawRequest(url, { target: '/p', host: 'example.com' })
  t.equal(victim.text, 'rendered for example.com')
})

t.test("the origin gets the Host the cache keyed on: canonical, or the target's", async (t) => {
  const origin = await listen(t, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(`rendered for ${req.headers.host} ${req.headers['x-forwarded-host']} at ${req.url}`)
  })
  const { url, port } = await proxyTo(t, origin)
  const get = (target: string, host?: string) => rawRequest(url, { target, ...(host && { host }) })
  await get('/p', 'EXAMPLE.com.:80')
  const victim = await get('/p', 'example.com')
  t.match(victim.headers['cache-status'], HIT, 'one entry')
  t.equal(victim.text, 'rendered for example.com example.com at /p')
  const other = 'rendered for example.com:8080 example.com:8080 at /p'
  t.equal((await get('/p', 'example.com:8080')).text, other, 'another port: another site')
  // Over plain HTTP, :443 is not the default port: another origin, keyed and forwarded as one.
  const tls = await get('/p', 'example.com:443')
  t.equal(
    tls.text,
    'rendered for example.com:443 example.com:443 at /p',
    ':443 over HTTP: its own page',
  )
  t.match(tls.headers['cache-status'], /fwd=miss/, "not example.com's entry")
  t.match((await get('/p', 'example.com')).headers['cache-status'], HIT, 'which is still there')
  t.equal((await get('/v6', '[::1]:80')).text, 'rendered for [::1] [::1] at /v6', 'an IPv6 literal')
  // RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host.
  const absolute = await get('http://Other.example:80/q?x', 'example.com')
  t.equal(absolute.text, 'rendered for other.example other.example at /q?x')
  t.match((await get('/q?x', 'other.example')).headers['cache-status'], HIT, 'under its key')
  const bare = 'rendered for other.example other.example at /?y'
  t.equal((await get('https://other.example?y')).text, bare, 'no path: /')
  const http10 = (head: string) => rawExchange(port, '127.0.0.1', Buffer.from(`${head}\r\n\r\n`))
  const old = await http10('GET http://example.com/r HTTP/1.0')
  t.equal(old.text, 'rendered for example.com example.com at /r', 'HTTP/1.0 without a Host line')
  const none = await http10('GET /r HTTP/1.0')
  const upstream = `rendered for ${new URL(origin).host} undefined at /r`
  t.equal(none.text, upstream, "HTTP/1.0 without any Host: the upstream's")
})

// ---------------------------------------------------------------------------------------------
// Malformed requests: a 4xx with a reason, and the proxy stays up.

const MALFORMED: Array<[string, { method?: string; target?: string; host?: string }, RegExp]> = [
  ['an empty Host', { host: '' }, /invalid Host ""/],
  ['a port past 65535', { host: 'example.com:99999' }, /invalid Host/],
  ['a POST to a port past 65535', { method: 'POST', host: 'example.com:99999' }, /invalid Host/],
  ['a port and no host', { host: ':80' }, /invalid Host/],
  ['a Host with a path', { host: 'example.com/x' }, /invalid Host/],
  ['a Host with userinfo', { host: 'user@example.com' }, /invalid Host/],
  ['a Host with a space', { host: 'example .com' }, /invalid Host/],
  ['an unclosed IPv6 literal', { host: '[::1' }, /invalid Host/],
  ['a target with a bad port', { target: 'http://example.com:99999/x' }, /invalid Host/],
  ['a target with an unclosed IPv6 literal', { target: 'http://[bad/' }, /invalid Host/],
  ['a target with no host', { target: 'http:///x' }, /invalid Host/],
  ['a target with userinfo', { target: 'http://user:pass@example.com/' }, /userinfo/],
  ['a target of another scheme', { target: 'ftp://example.com/x' }, /not a path, an http\(s\) URL/],
  ['an asterisk-form target for GET', { target: '*' }, /or \* for OPTIONS/],
]

t.test('a malformed request gets a 400 that says why, and the proxy stays up', async (t) => {
  let asked = 0
  const origin = await listen(t, (req, res) => {
    asked++
    res.end(`${req.method} ${req.url}`)
  })
  const { url } = await proxyTo(t, origin)
  for (const [name, { method = 'GET', target = '/', host }, reason] of MALFORMED) {
    const reply = await rawRequest(url, { method, target, ...(host === undefined ? {} : { host }) })
    t.equal(reply.status, 400, name)
    t.match(reply.text, reason, name)
    t.equal(reply.headers['cache-control'], 'no-store')
  }
  t.equal(asked, 0, 'none reached the origin')
  const options = await rawRequest(url, { method: 'OPTIONS', target: '*' })
  t.equal(options.text, 'OPTIONS /*', 'OPTIONS * goes on')
  t.equal((await request(url + '/after')).text, 'GET /after', 'still serving')
})
