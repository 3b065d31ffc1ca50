// Attacks on the proxy (issue 22): the attacker's exact bytes on a raw socket, through the proxy
// as the accelerator command composes it (startProxy), to a real origin that does what origins
// do with them; then what a victim gets. Request smuggling through a dropped framing header, a
// GET body, an upstream path prefix climbed out of, override headers, a Vary header named in
// Connection, ambiguous Hosts, and malformed targets.
import t, { type Test } from 'tap'
import type { IncomingMessage } from 'node:http'
import { posix } from 'node:path'
import { startProxy, type ProxyConfig } from '../../src/cli.js'
import { accelerate, forward } from '../../src/index.js'
import { listen, request } from '../fixtures/http.js'
import { listenWith, rawExchange, rawRequest, type RawReply } from '../fixtures/hostile-http.js'

const HIT = /^node-accelerator; hit; ttl=/

/** The proxy in front of `origin`, as the command runs it; its port and base URL. */
async function proxyTo(t: Test, origin: string, config: Partial<ProxyConfig> = {}): Promise<{ url: string; port: number }> {
  const proxy = await startProxy({ upstream: new URL(origin), port: 0, host: '127.0.0.1', maxBytes: 1 << 20, keepSurrogateHeaders: false, log: false, ...config }, () => {})
  t.teardown(() => proxy.close())
  return { url: proxy.url, port: Number(new URL(proxy.url).port) }
}

/** Sends a request's bytes exactly as written (latin1) and reads the answer. */
function send(port: number, bytes: string): Promise<RawReply> {
  return rawExchange(port, '127.0.0.1', Buffer.from(bytes, 'latin1'))
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

interface Smuggle {
  name: string
  method: string
  lines: string[]
  body: string
  /** Whether the origin gets the body (as a body): methods other than GET and HEAD. */
  forwarded: boolean
}

const length = `Content-Length: ${Buffer.byteLength(SMUGGLED)}`
const SMUGGLES: Smuggle[] = [
  { name: 'GET with Transfer-Encoding: chunked', method: 'GET', lines: ['Transfer-Encoding: chunked'], body: chunked(SMUGGLED), forwarded: false },
  { name: 'GET with Content-Length named in Connection', method: 'GET', lines: ['Connection: close, Content-Length', length], body: SMUGGLED, forwarded: false },
  { name: 'GET upgrading, with Content-Length named in Connection', method: 'GET', lines: ['Upgrade: websocket', 'Connection: Upgrade, Content-Length', length], body: SMUGGLED, forwarded: false },
  { name: 'HEAD with Transfer-Encoding: chunked', method: 'HEAD', lines: ['Transfer-Encoding: chunked'], body: chunked(SMUGGLED), forwarded: false },
  { name: 'DELETE with Transfer-Encoding: chunked', method: 'DELETE', lines: ['Transfer-Encoding: chunked'], body: chunked(SMUGGLED), forwarded: true },
  { name: 'OPTIONS with Content-Length named in Connection', method: 'OPTIONS', lines: ['Connection: Content-Length', length], body: SMUGGLED, forwarded: true },
  { name: 'TRACE with Transfer-Encoding: chunked', method: 'TRACE', lines: ['Transfer-Encoding: chunked'], body: chunked(SMUGGLED), forwarded: true },
  { name: 'POST with Content-Length named in Connection', method: 'POST', lines: ['Connection: content-length', length], body: SMUGGLED, forwarded: true },
  { name: 'PATCH with Transfer-Encoding: chunked named in Connection', method: 'PATCH', lines: ['Connection: transfer-encoding', 'Transfer-Encoding: chunked'], body: chunked(SMUGGLED), forwarded: true },
]

t.test('a body whose framing header is dropped never reaches the origin as a second request', async (t) => {
  for (const attack of SMUGGLES) {
    t.test(attack.name, async (t) => {
      const origin = await keepAliveOrigin(t)
      const { url, port } = await proxyTo(t, origin.url)
      const head = [`${attack.method} /innocent HTTP/1.1`, `Host: ${new URL(url).host}`, ...attack.lines, 'Connection: close']
      const answer = await send(port, `${head.join('\r\n')}\r\n\r\n${attack.body}`)
      t.equal(answer.status, 200, 'the attacker gets an answer')
      const victim = await rawRequest(url, { target: '/home' })
      t.equal(victim.text, 'page /home', 'the next client gets its own page')
      const again = await rawRequest(url, { target: '/home' })
      t.match(again.headers['cache-status'], HIT)
      t.equal(again.text, 'page /home', 'and that is what was stored')
      t.same(origin.seen.map(({ url }) => url), ['/innocent', '/home'], 'the origin never read /poison as a request')
      const expected = attack.forwarded ? SMUGGLED : ''
      t.equal(origin.seen[0]!.body, expected, attack.forwarded ? 'the body reached the origin, as a body' : 'a GET or HEAD body is dropped')
    })
  }
})

t.test('forward() as a plain handler frames bodies itself: no smuggling without prepare()', async (t) => {
  const origin = await keepAliveOrigin(t)
  const upstream = forward(origin.url)
  t.teardown(() => upstream.close())
  const url = await listen(t, accelerate(upstream, { sharedCache: true }))
  const host = new URL(url).host
  await send(Number(new URL(url).port), `GET /innocent HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(SMUGGLED)}`)
  await send(Number(new URL(url).port), `DELETE /x HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(SMUGGLED)}`)
  t.equal((await rawRequest(url, { target: '/home' })).text, 'page /home')
  t.same(origin.seen, [{ method: 'GET', url: '/innocent', body: '' }, { method: 'DELETE', url: '/x', body: SMUGGLED }, { method: 'GET', url: '/home', body: '' }])
  // (Before the cache, as the command does it, prepare() would refuse it even where a hit waits.)
  t.equal((await rawRequest(url, { target: '/new', lines: [['Host', 'evil.example']] })).status, 400, 'and refuses what prepare() refuses')
})

t.test('a transfer coding other than chunked is a 501: it could only be forwarded as something else', async (t) => {
  const origin = await keepAliveOrigin(t)
  const { url, port } = await proxyTo(t, origin.url)
  const answer = await send(port, `POST /upload HTTP/1.1\r\nHost: ${new URL(url).host}\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n${chunked('not gzip')}`)
  t.equal(answer.status, 501)
  t.match(answer.text, /Transfer-Encoding "gzip, chunked" is not implemented/)
  t.equal(answer.headers.connection, 'close')
  t.same(origin.seen, [], 'the origin was not asked')
})

// ---------------------------------------------------------------------------------------------
// 7. A GET body ("fat GET"): the origin would read it, the key does not include it.

t.test('a GET body never reaches the origin: a fat GET cannot choose what others get', async (t) => {
  const origin = await listen(t, async (req, res) => {
    const body = await bodyOf(req)
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(`results for ${body || 'everything'}`)
  })
  const { url, port } = await proxyTo(t, origin)
  const host = new URL(url).host
  await send(port, `GET /search HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil`)
  await send(port, `GET /chunked HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked('evil')}`)
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
  for (let i = 0; i < 2; i++) path = path.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
  return posix.normalize(path.replaceAll('\\', '/').split('/').map((segment) => segment.split(';')[0]).join('/'))
}

const ESCAPES = [
  '/../admin', '/%2e%2e/admin', '/%2E%2E/admin', '/x/../../admin', '/.%2e/admin', '/%2e./admin', '/..%2fadmin',
  '/..%2Fadmin', '/..\\admin', '/..%5cadmin', '/..;/admin', '/..;x=1/admin', '/%252e%252e/admin', '/x/..%2f..%2fadmin',
  '/...', '/..', '/..?q', '/x#/../../admin', 'http://example.com/../admin', 'HTTP://example.com/%2e%2e/admin',
]
/** Paths that stay under the prefix, however resolved. */
const INSIDE = ['/page', '/a/./b', '/projects/group%2Fproject', '/file..txt', '/..x/y', '/x/y..', '/%2e/x', '/?q=../..']

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
  for (const target of INSIDE) t.equal((await rawRequest(url, { target })).status, 200, `${target}: forwarded`)
  t.same(reached.filter((path) => !resolved(path).startsWith('/api/')), [], 'the origin resolved every path it got inside /api')
  t.same(reached.map(resolved), INSIDE.map((path) => resolved('/api' + path)))
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
  'Forwarded', 'X-Forwarded-Host', 'X-Forwarded-Proto', 'X-Forwarded-Port', 'X-Forwarded-Prefix', 'X-Forwarded-Scheme',
  'X-Forwarded-Ssl', 'X-Forwarded-Server', 'X-Forwarded-Uri', 'Front-End-Https', 'X-Url-Scheme', 'X-Host', 'X-Original-Host',
  'X-Original-URL', 'X-Rewrite-URL', 'X-Original-URI', 'X-Real-IP', 'True-Client-IP', 'X-Client-IP', 'X-Cluster-Client-IP',
  'CF-Connecting-IP', 'Fastly-Client-IP',
]
const METHOD_OVERRIDES = ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']

/** An origin that renders each header it got into the page (as frameworks fold them into URLs). */
async function reflectingOrigin(t: Test) {
  const evil: string[] = []
  const url = await listen(t, (req, res) => {
    for (const [name, value] of Object.entries(req.headers)) if (String(value).includes('evil')) evil.push(name)
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(JSON.stringify(req.headers))
  })
  return { url, evil }
}

t.test('a client\'s override headers never reach the origin, nor the page others get', async (t) => {
  const origin = await reflectingOrigin(t)
  const { url } = await proxyTo(t, origin.url)
  for (const name of [...OVERRIDES, ...METHOD_OVERRIDES]) {
    const target = `/page-${name}`
    await rawRequest(url, { target, lines: [[name, name === 'Forwarded' ? 'host=evil.example;proto=https' : 'evil.example']] })
    const victim = await rawRequest(url, { target })
    t.match(victim.headers['cache-status'], HIT, `${name}: the victim gets the stored page`)
    t.notMatch(victim.text, 'evil', `${name}: which the attacker did not choose`)
  }
  t.same(origin.evil, [], 'the origin never got one')
})

t.test('X-Forwarded-Scheme: http cannot store a redirect loop for an https site', async (t) => {
  // As a common nginx or Rails setup does: a request that arrived over http is sent to https.
  const origin = await listen(t, (req, res) => {
    const scheme = req.headers['x-forwarded-scheme'] ?? 'https'
    res.writeHead(scheme === 'http' ? 301 : 200, { 'cache-control': 'max-age=60', location: `https://${req.headers.host}${req.url}` })
    res.end(scheme === 'http' ? 'moved' : 'home')
  })
  const { url } = await proxyTo(t, origin)
  await rawRequest(url, { target: '/', lines: [['X-Forwarded-Scheme', 'http']] })
  const victim = await rawRequest(url, { target: '/' })
  t.equal(victim.status, 200)
  t.equal(victim.text, 'home')
})

t.test('X-Original-URL cannot route the origin to another page under this one\'s key', async (t) => {
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
  await request(url + '/form', { method: 'POST', headers: { 'x-http-method-override': 'PUT' }, body: 'x' })
  t.same(performed, ['GET', 'PUT'])
})

t.test('--trust-forwarded-headers: a front proxy\'s override headers reach the origin', async (t) => {
  const origin = await listen(t, (req, res) => res.end(JSON.stringify(req.headers)))
  const { url } = await proxyTo(t, origin, { trustForwardedHeaders: true })
  const front = [['Forwarded', 'for=192.0.2.1;host=www.example.com;proto=https'], ['X-Forwarded-Host', 'www.example.com'], ['X-Forwarded-Proto', 'https'], ['X-Forwarded-Prefix', '/shop'], ['X-Real-IP', '192.0.2.1'], ['X-HTTP-Method-Override', 'DELETE']] as const
  const seen = JSON.parse((await rawRequest(url, { target: '/', lines: front })).text) as Record<string, string>
  t.match(seen, { forwarded: 'for=192.0.2.1;host=www.example.com;proto=https', 'x-forwarded-host': 'www.example.com', 'x-forwarded-proto': 'https', 'x-forwarded-prefix': '/shop', 'x-real-ip': '192.0.2.1' })
  t.equal(seen['x-http-method-override'], undefined, 'a method override on a GET is never trusted')
})

// ---------------------------------------------------------------------------------------------
// 7. Vary: a header named in Connection is not forwarded, so it must not select the variant.

t.test('a Vary header named in Connection does not select a variant the origin did not render', async (t) => {
  // A CORS origin: Access-Control-Allow-Origin for the allowed Origin, Vary: Origin.
  const origin = await listen(t, (req, res) => {
    res.setHeader('cache-control', 'max-age=60')
    res.setHeader('vary', 'Origin')
    if (req.headers.origin === 'https://app.example') res.setHeader('access-control-allow-origin', 'https://app.example')
    res.end('data')
  })
  const { url } = await proxyTo(t, origin)
  await rawRequest(url, { target: '/api', lines: [['Origin', 'https://app.example'], ['Connection', 'Origin']] })
  const victim = await rawRequest(url, { target: '/api', lines: [['Origin', 'https://app.example']] })
  t.equal(victim.headers['access-control-allow-origin'], 'https://app.example', 'the app\'s own requests still pass CORS')
  t.match((await rawRequest(url, { target: '/api' })).headers['cache-status'], HIT, 'the attacker\'s request filled the variant without Origin')
})

// ---------------------------------------------------------------------------------------------
// 8. The Host: one, canonical, and the one the cache keyed on.

t.test('two Host lines are a 400: an origin that reads the last cannot render for it', async (t) => {
  let asked = 0
  const origin = await listen(t, (req, res) => {
    asked++
    const hosts = req.rawHeaders.filter((_, i) => req.rawHeaders[i - 1]?.toLowerCase() === 'host')
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(`rendered for ${hosts.at(-1)}`)
  })
  const { url } = await proxyTo(t, origin)
  const attack = await rawRequest(url, { target: '/p', host: 'example.com', lines: [['Host', 'evil.example']] })
  t.equal(attack.status, 400)
  t.match(attack.text, /two Host header lines/)
  t.equal(asked, 0, 'the origin was not asked')
  t.equal((await rawRequest(url, { target: '/p', host: 'example.com' })).text, 'rendered for example.com')
})

t.test('Connection: close, host does not take the Host away from the origin', async (t) => {
  const origin = await listenWith(t, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(`rendered for ${req.headers.host ?? 'the default site'}`)
  }, { requireHostHeader: false })
  const { url } = await proxyTo(t, origin)
  await rawRequest(url, { target: '/p', host: 'example.com', lines: [['Connection', 'close, host']] })
  t.equal((await rawRequest(url, { target: '/p', host: 'example.com' })).text, 'rendered for example.com')
})

t.test('the origin gets the Host the cache keyed on: canonical, and the absolute-form target\'s', async (t) => {
  const origin = await listen(t, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(`rendered for ${req.headers.host} ${req.headers['x-forwarded-host']} at ${req.url}`)
  })
  const { url } = await proxyTo(t, origin)
  await rawRequest(url, { target: '/p', host: 'EXAMPLE.com.:80' })
  const victim = await rawRequest(url, { target: '/p', host: 'example.com' })
  t.match(victim.headers['cache-status'], HIT, 'one entry')
  t.equal(victim.text, 'rendered for example.com example.com at /p')
  t.equal((await rawRequest(url, { target: '/p', host: 'example.com:8080' })).text, 'rendered for example.com:8080 example.com:8080 at /p', 'another port: another site')
  // RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host.
  const absolute = await rawRequest(url, { target: 'http://Other.example:80/q?x', host: 'example.com' })
  t.equal(absolute.text, 'rendered for other.example other.example at /q?x')
  t.match((await rawRequest(url, { target: '/q?x', host: 'other.example' })).headers['cache-status'], HIT, 'under other.example\'s key')
  t.equal((await rawRequest(url, { target: 'https://other.example?y' })).text, 'rendered for other.example other.example at /?y', 'no path: /')
  t.equal((await rawRequest(url, { target: '/v6', host: '[::1]:80' })).text, 'rendered for [::1] [::1] at /v6', 'an IPv6 literal')
  const old = await send(Number(new URL(url).port), 'GET http://example.com/r HTTP/1.0\r\n\r\n')
  t.equal(old.text, 'rendered for example.com example.com at /r', 'HTTP/1.0 without a Host line')
  const none = await send(Number(new URL(url).port), 'GET /r HTTP/1.0\r\n\r\n')
  t.equal(none.text, `rendered for ${new URL(origin).host} undefined at /r`, 'HTTP/1.0 without any Host: the upstream\'s')
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
  ['an absolute-form target with a bad port', { target: 'http://example.com:99999/x' }, /invalid Host/],
  ['an absolute-form target with an unclosed IPv6 literal', { target: 'http://[bad/' }, /invalid Host/],
  ['an absolute-form target with no host', { target: 'http:///x' }, /invalid Host/],
  ['an absolute-form target with userinfo', { target: 'http://user:pass@example.com/' }, /userinfo/],
  ['an absolute-form target of another scheme', { target: 'ftp://example.com/x' }, /not a path, an http\(s\) URL/],
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
  t.equal((await rawRequest(url, { method: 'OPTIONS', target: '*' })).text, 'OPTIONS /*', 'OPTIONS * goes on')
  t.equal((await request(url + '/after')).text, 'GET /after', 'still serving')
})
