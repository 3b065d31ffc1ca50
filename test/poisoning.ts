// Cache poisoning (issue 7, part 3). What the default key includes: the normalised Host, and the
// path and query exactly as sent. What it does not: every other part of the request ("unkeyed":
// X-Forwarded-Host, X-Original-URL, cookies, a GET's body, ...), which a handler reads at its own
// risk, and which key(req), Vary or unless can key or bypass. How paths that name one resource
// are keyed. What Node's parser refuses before the cache sees it. Responses never shared.
import type { IncomingHttpHeaders } from 'node:http'
import t, { type Test } from 'tap'
import { accelerate, defaultKey, type AccelerateOptions, type Handler } from '../src/index.js'
import { normalizeHost } from '../src/http/index.js'
import { forward } from '../src/proxy/index.js'
import { listen } from './fixtures/http.js'
import { listenWith, rawRequest, type RawRequest } from './fixtures/hostile-http.js'

const HIT = /^node-accelerator; hit; ttl=/
const STORED = /^node-accelerator; fwd=miss; stored$/
// Not stored, with why (RFC 9211 §2.8 detail).
const MISS = /^node-accelerator; fwd=miss; detail=[a-z-]+$/

/** An accelerated handler on a server, with a raw client (exact Host and request-target). */
async function serve(t: Test, handler: Handler, options: AccelerateOptions = {}) {
  let calls = 0
  const app = accelerate((req, res) => {
    calls++
    return handler(req, res)
  }, options)
  const url = await listenWith(t, app)
  const get = (target: string, rest: Omit<RawRequest, 'target'> = {}) =>
    rawRequest(url, { target, ...rest })
  return { app, url, get, calls: () => calls }
}

// ---------------------------------------------------------------------------------------------
// The Host is in the key.

/** A page that shows the Host it was rendered for (absolute links, canonical URLs, ...). */
const hostPage: Handler = (req, res) => {
  res.cacheFor = 60
  return `<a href="https://${req.headers.host}/">home</a>`
}

t.test('Host: evil.example neither gets nor fills the entry of Host: example.com', async (t) => {
  const { get, calls } = await serve(t, hostPage)
  const evil = await get('/p', { host: 'evil.example' })
  t.equal(evil.text, '<a href="https://evil.example/">home</a>')
  t.match(evil.headers['cache-status'], STORED)
  const clean = await get('/p', { host: 'example.com' })
  t.match(clean.headers['cache-status'], STORED, 'example.com is a miss of its own')
  t.equal(clean.text, '<a href="https://example.com/">home</a>')
  t.equal((await get('/p', { host: 'evil.example' })).text, evil.text, 'each host its own hit')
  t.equal((await get('/p', { host: 'example.com' })).text, clean.text)
  t.equal(calls(), 2)
})

t.test(
  'the Host is normalised: case, a trailing dot and a default port name one origin',
  async (t) => {
    const { get, calls } = await serve(t, hostPage)
    t.match((await get('/p', { host: 'example.com' })).headers['cache-status'], STORED)
    // RFC 9110 §4.2.3: the scheme's own default port only. Over plain HTTP ':443' names another
    // origin (test/security/keys.ts has TLS, where ':443' is the default and ':80' is not).
    for (const host of [
      'EXAMPLE.COM',
      'Example.COM.:80',
      'example.com.',
      'example.com:80',
      ' example.com',
    ]) {
      const reply = await get('/p', { host })
      t.match(reply.headers['cache-status'], HIT, `${JSON.stringify(host)} shares the entry`)
      t.equal(
        reply.text,
        '<a href="https://example.com/">home</a>',
        'rendered for the first Host that asked',
      )
    }
    for (const host of [
      'example.com:8080',
      'www.example.com',
      'example.com:080',
      'example.com..',
      'example.com:443',
    ]) {
      t.match(
        (await get('/p', { host })).headers['cache-status'],
        STORED,
        `${JSON.stringify(host)} is another origin`,
      )
    }
    t.equal(calls(), 6)
  },
)

t.test('no Host (HTTP/1.0) and an empty Host share a key of their own', async (t) => {
  const { get } = await serve(t, hostPage)
  t.match((await get('/p', { host: null, version: 'HTTP/1.0' })).headers['cache-status'], STORED)
  t.match((await get('/p', { host: '' })).headers['cache-status'], HIT)
  t.match((await get('/p', { host: 'example.com' })).headers['cache-status'], STORED)
})

t.test('Node accepts Host values RFC 9112 §3.2 says to refuse: the cache sees them', async (t) => {
  // Node answers 400 only for an HTTP/1.1 request without a Host. Spaces, slashes and a second
  // Host line pass its parser (it keeps the first line), and reach the key and the handler.
  const { get } = await serve(t, (req, res) => {
    res.cacheFor = 60
    return `host=${req.headers.host} raw=${JSON.stringify(req.rawHeaders.filter((_, i) => req.rawHeaders[i - 1]?.toLowerCase() === 'host'))}`
  })
  t.equal((await get('/p', { host: null })).status, 400, 'HTTP/1.1 without a Host: 400')
  t.equal((await get('/p', { host: 'a b' })).text, 'host=a b raw=["a b"]')
  t.equal((await get('/p', { host: 'a/b' })).text, 'host=a/b raw=["a/b"]')
  t.equal((await get('/p', { host: 'a@b' })).text, 'host=a@b raw=["a@b"]')
  const two = await get('/q', { host: 'first.example', lines: [['Host', 'second.example']] })
  t.equal(
    two.text,
    'host=first.example raw=["first.example","second.example"]',
    'two Host lines: Node keeps the first',
  )
  t.match(
    (await get('/q', { host: 'first.example' })).headers['cache-status'],
    HIT,
    'keyed by the first',
  )
})

t.test('a Host with a slash cannot fill the entry of another path', async (t) => {
  // The attacker asks for /y with Host "example.com/x": its key is "example.com/x/y", the key of
  // /x/y on example.com. A handler that serves by path (most ignore the Host) answers /y.
  const { get } = await serve(t, (req, res) => {
    res.cacheFor = 60
    return `page ${req.url}`
  })
  t.equal((await get('/y', { host: 'example.com/x' })).text, 'page /y')
  const victim = await get('/x/y', { host: 'example.com' })
  t.equal(victim.text, 'page /x/y', 'a clean client of /x/y gets /x/y')
})

t.test(
  'an absolute-form target whose authority is not the Host cannot poison that authority',
  async (t) => {
    // GET http://example.com/p with Host: evil.example. The key is example.com/p; the handler sees
    // Host: evil.example and renders its links for it.
    const { get } = await serve(t, hostPage)
    const attack = await get('http://example.com/p', { host: 'evil.example' })
    t.equal(attack.status, 200)
    const victim = await get('/p', { host: 'example.com' })
    t.equal(
      victim.text,
      '<a href="https://example.com/">home</a>',
      'a clean client gets links to example.com',
    )
  },
)

t.test('through the proxy: an absolute-form target whose authority is not the Host', async (t) => {
  const origin = await listen(t, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(`rendered for ${req.headers.host}`)
  })
  const upstream = forward(origin)
  t.teardown(() => upstream.close())
  const url = await listen(t, accelerate(upstream, { sharedCache: true }))
  await rawRequest(url, { target: 'http://example.com/p', host: 'evil.example' })
  t.equal(
    (await rawRequest(url, { target: '/p', host: 'example.com' })).text,
    'rendered for example.com',
  )
})

// ---------------------------------------------------------------------------------------------
// Unkeyed inputs: everything but the Host, the path and the query. A handler that reflects one
// into a stored response lets whoever sends it choose what everyone else gets. That is documented
// behaviour (docs/security.md, "unkeyed" headers): keying them is the handler's responsibility.

/** Reflects X-Forwarded-Host into an absolute link, as apps behind a load balancer do. */
const forwardedHostPage: Handler = (req, res) => {
  res.cacheFor = 60
  return `<script src="https://${req.headers['x-forwarded-host'] ?? req.headers.host}/app.js"></script>`
}
const CLEAN_SCRIPT = '<script src="https://example.com/app.js"></script>'
const EVIL_SCRIPT = '<script src="https://evil.example/app.js"></script>'

t.test(
  'unkeyed: a reflected X-Forwarded-Host poisons the entry under the default key (documented)',
  async (t) => {
    const { get } = await serve(t, forwardedHostPage)
    const attack = await get('/', {
      host: 'example.com',
      lines: [['X-Forwarded-Host', 'evil.example']],
    })
    t.equal(attack.text, EVIL_SCRIPT)
    t.match(attack.headers['cache-status'], STORED, "the attacker's response fills the entry")
    const victim = await get('/', { host: 'example.com' })
    t.match(victim.headers['cache-status'], HIT)
    t.equal(victim.text, EVIL_SCRIPT, 'and a clean client gets it: the header is not in the key')
  },
)

t.test('fix (a): key(req) includes the header', async (t) => {
  const { get } = await serve(t, forwardedHostPage, {
    key: (req) => `${defaultKey(req)}|${req.headers['x-forwarded-host'] ?? ''}`,
  })
  t.equal(
    (await get('/', { host: 'example.com', lines: [['X-Forwarded-Host', 'evil.example']] })).text,
    EVIL_SCRIPT,
  )
  const victim = await get('/', { host: 'example.com' })
  t.match(victim.headers['cache-status'], STORED, 'a key of its own')
  t.equal(victim.text, CLEAN_SCRIPT)
  t.equal((await get('/', { host: 'example.com' })).text, CLEAN_SCRIPT)
  t.match(
    (await get('/', { host: 'example.com', lines: [['X-Forwarded-Host', 'evil.example']] }))
      .headers['cache-status'],
    HIT,
    'the attacker only poisons their own entry',
  )
})

t.test('fix (b): the handler sends Vary: X-Forwarded-Host', async (t) => {
  const { get } = await serve(t, (req, res) => {
    res.setHeader('vary', 'X-Forwarded-Host')
    return forwardedHostPage(req, res)
  })
  t.equal(
    (await get('/', { host: 'example.com', lines: [['X-Forwarded-Host', 'evil.example']] })).text,
    EVIL_SCRIPT,
  )
  const victim = await get('/', { host: 'example.com' })
  t.match(victim.headers['cache-status'], STORED, 'another variant')
  t.equal(victim.text, CLEAN_SCRIPT)
  t.equal(
    (await get('/', { host: 'example.com' })).text,
    CLEAN_SCRIPT,
    'and the clean variant is what clean clients get',
  )
})

t.test('fix (c): unless(req) passes such requests straight through', async (t) => {
  const { get, calls } = await serve(t, forwardedHostPage, {
    unless: (req) => req.headers['x-forwarded-host'] !== undefined,
  })
  const attack = await get('/', {
    host: 'example.com',
    lines: [['X-Forwarded-Host', 'evil.example']],
  })
  t.equal(attack.text, EVIL_SCRIPT)
  t.equal(attack.headers['cache-status'], undefined, 'bypassed: not even looked up')
  const victim = await get('/', { host: 'example.com' })
  t.equal(victim.text, CLEAN_SCRIPT)
  t.match(victim.headers['cache-status'], STORED)
  t.equal(calls(), 2)
})

t.test('unkeyed: X-Original-URL, for handlers that route on it', async (t) => {
  // Some frameworks let X-Original-URL (or X-Rewrite-URL) override the path they route on.
  const route: Handler = (req, res) => {
    res.cacheFor = 60
    const path = String(req.headers['x-original-url'] ?? req.url)
    return path === '/admin' ? 'admin panel' : `public page ${path}`
  }
  const poisoned = await serve(t, route)
  await poisoned.get('/public', { lines: [['X-Original-URL', '/admin']] })
  t.equal(
    (await poisoned.get('/public')).text,
    'admin panel',
    'default key: /public now serves the admin panel (documented)',
  )
  const routedPath = (req: { url?: string; headers: IncomingHttpHeaders }) =>
    String(req.headers['x-original-url'] ?? req.url)
  const keyed = await serve(t, route, {
    key: (req) => defaultKey({ method: req.method, headers: req.headers, url: routedPath(req) }),
  })
  await keyed.get('/public', { lines: [['X-Original-URL', '/admin']] })
  const publicPage = await keyed.get('/public')
  t.equal(
    publicPage.text,
    'public page /public',
    'keyed on the path the handler routes on: no poisoning',
  )
  t.match(publicPage.headers['cache-status'], STORED, 'the routed path is a key of its own')
  t.match(
    (await keyed.get('/public')).headers['cache-status'],
    HIT,
    'and the custom key still caches',
  )
})

t.test('unkeyed: X-Forwarded-Scheme turning a page into a cached redirect', async (t) => {
  // A handler redirecting "plain HTTP" requests to HTTPS stores the 301 (a cacheable status): every
  // client, HTTPS ones included, then gets the redirect, a loop.
  const page: Handler = (req, res) => {
    res.cacheFor = 60
    if (req.headers['x-forwarded-scheme'] === 'http') {
      res.writeHead(301, { location: `https://${req.headers.host}${req.url}` })
      return res.end()
    }
    return 'the page'
  }
  const poisoned = await serve(t, page)
  t.equal((await poisoned.get('/p', { lines: [['X-Forwarded-Scheme', 'http']] })).status, 301)
  const victim = await poisoned.get('/p')
  t.equal(victim.status, 301, 'default key: the redirect is served to everyone (documented)')
  t.match(victim.headers['cache-status'], HIT)
  const varied = await serve(t, (req, res) => {
    res.setHeader('vary', 'X-Forwarded-Scheme')
    return page(req, res)
  })
  await varied.get('/p', { lines: [['X-Forwarded-Scheme', 'http']] })
  t.equal((await varied.get('/p')).text, 'the page', 'with Vary: its own variant')
})

t.test(
  'the query is keyed; a key that drops parameters must drop only those the handler ignores',
  async (t) => {
    const reflect: Handler = (req, res) => {
      res.cacheFor = 60
      return `campaign=${new URL(req.url!, 'http://x').searchParams.get('utm_content') ?? '-'}`
    }
    const byDefault = await serve(t, reflect)
    await byDefault.get('/page?utm_content=%3Cscript%3E')
    t.equal(
      (await byDefault.get('/page')).text,
      'campaign=-',
      'default key: the query is part of the key',
    )
    t.equal((await byDefault.get('/page?utm_content=x&a=1')).text, 'campaign=x')
    t.match(
      (await byDefault.get('/page?a=1&utm_content=x')).headers['cache-status'],
      STORED,
      'parameters in another order: another key',
    )
    // A key that strips utm_* for a better hit ratio, while the handler reflects one: poisoned.
    const stripping = await serve(t, reflect, {
      key: (req) => {
        const url = new URL(req.url!, 'http://x')
        for (const name of [...url.searchParams.keys()])
          if (name.startsWith('utm_')) url.searchParams.delete(name)
        return normalizeHost(req.headers.host) + url.pathname + url.search
      },
    })
    await stripping.get('/page?utm_content=%3Cscript%3E')
    t.equal(
      (await stripping.get('/page')).text,
      'campaign=<script>',
      'the stripped parameter is unkeyed: reflected to everyone',
    )
  },
)

t.test('unkeyed: the body of a GET', async (t) => {
  // A GET body (some search APIs read one) is not keyed: a handler that reads it is poisoned.
  const { get } = await serve(t, async (req, res) => {
    res.cacheFor = 60
    let body = ''
    for await (const chunk of req) body += String(chunk)
    return `results for ${body || 'everything'}`
  })
  await get('/search', { lines: [['Content-Length', '4']], body: 'evil' })
  t.equal(
    (await get('/search')).text,
    'results for evil',
    "a clean client gets the attacker's results (documented: unkeyed)",
  )
})

t.test(
  "through the proxy: a client's X-Forwarded-Host and X-Forwarded-Proto reach the origin",
  async (t) => {
    const origin = await listen(t, (req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end(`${req.headers['x-forwarded-proto']}://${req.headers['x-forwarded-host']}/app.js`)
    })
    const upstream = forward(origin)
    t.teardown(() => upstream.close())
    const url = await listen(t, accelerate(upstream, { sharedCache: true }))
    await rawRequest(url, {
      target: '/',
      host: 'example.com',
      lines: [
        ['X-Forwarded-Host', 'evil.example'],
        ['X-Forwarded-Proto', 'gopher'],
      ],
    })
    t.equal(
      (await rawRequest(url, { target: '/', host: 'example.com' })).text,
      'http://example.com/app.js',
      "a clean client gets the origin's page for example.com",
    )
  },
)

t.test(
  'through the proxy: header lines past the 1,000th reach the origin but not the variant key',
  async (t) => {
    // Node keeps the first 1,000 lines in req.headers, and more in req.rawHeaders. The origin here
    // keeps every line (as a non-Node origin would).
    const origin = await listenWith(
      t,
      (req, res) => {
        res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'X-Variant' })
        res.end(`variant ${req.headers['x-variant'] ?? 'default'}`)
      },
      { maxHeadersCount: 0 },
    )
    const upstream = forward(origin)
    t.teardown(() => upstream.close())
    const url = await listen(t, accelerate(upstream, { sharedCache: true }))
    const filler = Array.from({ length: 999 }, (): [string, string] => ['X-Filler', '1'])
    await rawRequest(url, { target: '/', lines: [...filler, ['X-Variant', 'evil']] })
    t.equal(
      (await rawRequest(url, { target: '/' })).text,
      'variant default',
      'a client without X-Variant gets the default variant',
    )
  },
)

// ---------------------------------------------------------------------------------------------
// Paths: the key is the request-target as sent. Node does not normalise req.url.

/** Paths that may name one resource, and the raw forms an attacker picks from. */
const PATHS = [
  '/b',
  '/a/../b',
  '/a/%2E%2E/b',
  '/./b',
  '//b',
  '/b/',
  '/%62',
  '/B',
  '/a/b',
  '/a%2Fb',
  '/a//b',
  '/a\\b',
  '/b?',
  '/b#x',
]

t.test('each raw path is its own key, and the handler sees it as sent', async (t) => {
  const { get, calls } = await serve(t, (req, res) => {
    res.cacheFor = 60
    return `path=${req.url}`
  })
  for (const path of PATHS) {
    const reply = await get(path)
    t.match(reply.headers['cache-status'], STORED, `${path}: a miss of its own`)
    t.equal(reply.text, `path=${path}`)
  }
  for (const path of PATHS) t.equal((await get(path)).text, `path=${path}`, `${path}: its own hit`)
  t.equal(calls(), PATHS.length)
})

t.test('a handler that tells /a%2Fb from /a/b gets each right, in either order', async (t) => {
  const route: Handler = (req, res) => {
    res.cacheFor = 60
    return req.url === '/a%2Fb'
      ? 'the file named "a/b"'
      : req.url === '/a/b'
        ? 'b in directory a'
        : 'not found'
  }
  for (const order of [
    ['/a%2Fb', '/a/b'],
    ['/a/b', '/a%2Fb'],
  ]) {
    const { get } = await serve(t, route)
    for (const path of [...order, ...order])
      t.equal(
        (await get(path)).text,
        path === '/a%2Fb' ? 'the file named "a/b"' : 'b in directory a',
        `${order.join(' then ')}: ${path}`,
      )
  }
})

/** A key that resolves dot-segments: the WHATWG URL parser on the target, against a base. */
const urlKey = (req: { url?: string | undefined; headers: { host?: string | undefined } }) => {
  const url = new URL(req.url!, 'http://x')
  return normalizeHost(req.headers.host) + url.pathname + url.search
}
/** The same, with the target appended to an origin: a target starting with // stays a path. */
const safeUrlKey = (req: { url?: string | undefined; headers: { host?: string | undefined } }) => {
  const url = new URL(`http://x${req.url}`)
  return normalizeHost(req.headers.host) + url.pathname + url.search
}

t.test('a key(req) that normalises with new URL(req.url, base): which paths share', async (t) => {
  // new URL resolves "." and ".." segments, %2E%2E included, and reads "\" as "/" (http is a
  // special scheme); it keeps "%2F", "%62", a trailing slash, case, and "//" inside a path. A
  // target starting with "//" is a scheme-relative URL: "//b" is host b, path "/".
  const expected: Record<string, string> = {
    '/b': '/b',
    '/a/../b': '/b',
    '/a/%2E%2E/b': '/b',
    '/./b': '/b',
    '//b': '/',
    '/b/': '/b/',
    '/%62': '/%62',
    '/B': '/B',
    '/a/b': '/a/b',
    '/a%2Fb': '/a%2Fb',
    '/a//b': '/a//b',
    '/a\\b': '/a/b',
    '/b?': '/b',
    '/b#x': '/b',
  }
  const { get } = await serve(
    t,
    (req, res) => {
      res.cacheFor = 60
      return `first asked as ${req.url}`
    },
    { key: urlKey },
  )
  const firstFor = new Map<string, string>()
  for (const path of PATHS) {
    const reply = await get(path)
    const shared = expected[path]!
    t.equal(reply.text, `first asked as ${firstFor.get(shared) ?? path}`, `${path} → ${shared}`)
    firstFor.set(shared, firstFor.get(shared) ?? path)
  }
  t.same([...firstFor.keys()].sort(), ['/', '/%62', '/B', '/a%2Fb', '/a//b', '/a/b', '/b', '/b/'])
})

t.test('such a key must agree with the router: //evil is not /', async (t) => {
  // A router that reads the raw path 404s "//evil"; under new URL(req.url, base) its key is "/".
  // With 404s stored (defaultCacheFor), one request takes the home page down for everyone.
  const router: Handler = (req, res) => {
    if (req.url !== '/') res.statusCode = 404
    return req.url === '/' ? 'home' : 'not found'
  }
  const naive = await serve(t, router, { key: urlKey, defaultCacheFor: 60 })
  t.equal((await naive.get('//evil')).status, 404)
  const victim = await naive.get('/')
  t.equal(victim.status, 404, 'new URL(req.url, base): the home page is now a cached 404')
  t.match(victim.headers['cache-status'], HIT)
  const safe = await serve(t, router, { key: safeUrlKey, defaultCacheFor: 60 })
  await safe.get('//evil')
  t.equal(
    (await safe.get('/')).text,
    'home',
    'new URL(origin + req.url): "//evil" stays a path of its own',
  )
  t.equal((await safe.get('/a/../')).text, 'home', 'while dot-segments still resolve')
})

// ---------------------------------------------------------------------------------------------
// Smuggling-ish requests: Node's parser refuses them (400) before any code of ours runs.

t.test(
  'ambiguous framing and malformed heads: 400 from Node, never seen by the cache',
  async (t) => {
    const { get, calls } = await serve(t, (req, res) => {
      res.cacheFor = 60
      return `page ${req.url}`
    })
    await get('/canary')
    const rows: Array<[string, RawRequest]> = [
      [
        'Content-Length and Transfer-Encoding',
        {
          lines: [
            ['Content-Length', '5'],
            ['Transfer-Encoding', 'chunked'],
          ],
          body: '0\r\n\r\n',
        },
      ],
      [
        'two different Content-Lengths',
        {
          lines: [
            ['Content-Length', '0'],
            ['Content-Length', '5'],
          ],
        },
      ],
      [
        'Transfer-Encoding: chunked, identity',
        { lines: [['Transfer-Encoding', 'chunked, identity']], body: '0\r\n\r\n' },
      ],
      [
        'Transfer-Encoding with a space before the colon',
        { lines: [['Transfer-Encoding ', 'chunked']], body: '0\r\n\r\n' },
      ],
      ['a folded header line', { lines: [['X-A', 'a\r\n b']] }],
      ['HTTP/1.1 without a Host', { host: null }],
      ['a bare LF in a header value', { lines: [['X-A', 'a\nTransfer-Encoding: chunked']] }],
    ]
    for (const [name, req] of rows) {
      const reply = await get('/canary', req)
      t.equal(reply.status, 400, name)
      t.equal(reply.headers['cache-status'], undefined, `${name}: the cache never saw it`)
    }
    t.equal(calls(), 1, 'the handler never ran for them')
    const canary = await get('/canary')
    t.match(canary.headers['cache-status'], HIT)
    t.equal(canary.text, 'page /canary')
  },
)

t.test('a request hidden in a GET body is a body, not a request', async (t) => {
  const { get, calls } = await serve(t, (req, res) => {
    res.cacheFor = 60
    return `page ${req.url}`
  })
  const hidden = 'GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n'
  const reply = await get('/outer', {
    lines: [['Content-Length', String(hidden.length)]],
    body: hidden,
  })
  t.equal(reply.text, 'page /outer')
  t.equal(calls(), 1, 'one request')
  t.match((await get('/hidden')).headers['cache-status'], STORED, 'nothing stored for /hidden')
})

// ---------------------------------------------------------------------------------------------
// Responses that must never be shared.

t.test("Set-Cookie for clients without a cookie: nobody ever gets another's", async (t) => {
  // The handler starts a session for a client without one: that response carries its cookie and
  // is not stored. A client with a session gets a storable page.
  const { get, calls } = await serve(t, (req, res) => {
    res.cacheFor = 60
    if (req.headers.cookie === undefined)
      res.setHeader('set-cookie', `sid=${req.headers['x-client']}`)
    return 'the page'
  })
  const client = (i: number, cookie?: string) =>
    get('/', {
      lines: [['X-Client', String(i)], ...(cookie ? [['Cookie', cookie] as [string, string]] : [])],
    })
  const cold = await Promise.all(Array.from({ length: 10 }, (_, i) => client(i)))
  for (const [i, reply] of cold.entries()) {
    t.equal(reply.headers['set-cookie'], `sid=${i}`, `concurrent client ${i} gets its own cookie`)
    t.match(reply.headers['cache-status'], MISS)
  }
  t.equal(calls(), 10, 'waiters are released, each runs the handler')
  const withSession = await client(10, 'sid=3')
  t.match(withSession.headers['cache-status'], STORED, 'no Set-Cookie: stored')
  const later = await Promise.all(Array.from({ length: 5 }, (_, i) => client(20 + i)))
  for (const reply of later) {
    t.match(reply.headers['cache-status'], HIT)
    t.equal(
      reply.headers['set-cookie'],
      undefined,
      'a hit never carries a Set-Cookie (and a new client gets no session from it)',
    )
  }
})

t.test('Cache-Control: private for logged-in users', async (t) => {
  const page: Handler = (req, res) => {
    res.cacheFor = 60
    const user = /user=(\w+)/.exec(String(req.headers.cookie ?? ''))?.[1]
    if (user) res.setHeader('cache-control', 'private')
    return `hello ${user ?? 'anonymous'}`
  }
  const { get } = await serve(t, page)
  const alice = await get('/', { lines: [['Cookie', 'user=alice']] })
  t.equal(alice.text, 'hello alice')
  t.match(alice.headers['cache-status'], MISS, 'private: not stored')
  t.equal((await get('/')).text, 'hello anonymous', 'never served to anyone else')
  const bob = await get('/', { lines: [['Cookie', 'user=bob']] })
  t.equal(
    bob.text,
    'hello anonymous',
    'but a logged-in user gets the stored anonymous page: Cookie is unkeyed (documented)',
  )
  t.match(bob.headers['cache-status'], HIT)
  const bypassed = await serve(t, page, {
    unless: (req) => /user=/.test(String(req.headers.cookie ?? '')),
  })
  await bypassed.get('/')
  t.equal(
    (await bypassed.get('/', { lines: [['Cookie', 'user=bob']] })).text,
    'hello bob',
    'unless(req) sends logged-in users to the handler',
  )
})

t.test('a request with Authorization: not stored, unless the response says public', async (t) => {
  const page =
    (cacheControl?: string): Handler =>
    (req, res) => {
      res.cacheFor = 60
      if (cacheControl) res.setHeader('cache-control', cacheControl)
      return `for ${req.headers.authorization ?? 'nobody'}`
    }
  const { get } = await serve(t, page())
  t.match(
    (await get('/', { lines: [['Authorization', 'Bearer alice']] })).headers['cache-status'],
    MISS,
    'res.cacheFor is not enough (RFC 9111 §3.5)',
  )
  t.equal((await get('/')).text, 'for nobody')
  t.equal(
    (await get('/', { lines: [['Authorization', 'Bearer bob']] })).text,
    'for nobody',
    'a stored anonymous page is served to an authorized request',
  )
  const shared = await serve(t, page('public'))
  await shared.get('/', { lines: [['Authorization', 'Bearer alice']] })
  t.equal(
    (await shared.get('/')).text,
    'for Bearer alice',
    'public: the handler said it may be shared, and it is',
  )
})

t.test('Vary: Cookie keys the response per cookie', async (t) => {
  const { get, calls } = await serve(t, (req, res) => {
    res.cacheFor = 60
    res.setHeader('vary', 'Cookie')
    return `hello ${/user=(\w+)/.exec(String(req.headers.cookie ?? ''))?.[1] ?? 'anonymous'}`
  })
  const as = (cookie?: string) => get('/', { lines: cookie ? [['Cookie', cookie]] : [] })
  for (let round = 0; round < 2; round++) {
    t.equal((await as('user=alice')).text, 'hello alice')
    t.equal((await as('user=bob')).text, 'hello bob')
    t.equal((await as()).text, 'hello anonymous')
    t.equal(
      (await as('user=alice; theme=dark')).text,
      'hello alice',
      'another cookie string: another variant',
    )
  }
  t.equal(calls(), 4, 'four variants, each generated once')
})
