// Cache keys: Host normalisation and request-target forms; the keys invalidation derives.
import t from 'tap'
import { defaultKey, namespacePrefix, type KeyRequest } from '../src/core/key.js'
import { isReservedTag, isTag } from '../src/http/tags.js'
import { normalizeHost, splitAbsolute } from '../src/http/target.js'
import {
  changedKeys,
  ownTags,
  pathKeyOf,
  pathTag,
  sameOriginPath,
  urlPurge,
  userTags,
} from '../src/core/invalidation.js'

t.test('defaultKey: host + path + query, method-independent', async (t) => {
  const rows: Array<
    [string, { method?: string; url?: string; host?: string }, string | undefined]
  > = [
    ['origin-form', { url: '/a/b?c=d', host: 'example.com' }, 'example.com/a/b?c=d'],
    ['GET and HEAD share it', { method: 'HEAD', url: '/a', host: 'example.com' }, 'example.com/a'],
    [
      'absolute-form with its own Host (RFC 9112 §3.2.2)',
      { url: 'http://Other.Example:80/p?q=1', host: 'other.example' },
      'other.example/p?q=1',
    ],
    [
      'absolute-form naming another authority than the Host: not cached',
      { url: 'http://example.com/p', host: 'evil.example' },
      undefined,
    ],
    [
      "a Host with a path in it: not cached (it would share another path's key)",
      { url: '/y', host: 'example.com/x' },
      undefined,
    ],
    ['a Host with userinfo: not cached', { url: '/', host: 'user@example.com' }, undefined],
    ['a Host with a space: not cached', { url: '/', host: 'a b' }, undefined],
    ['an IPv6 literal Host', { url: '/', host: '[::1]:8080' }, '[::1]:8080/'],
    [
      'a malformed target is keyed as sent',
      { url: 'not a url', host: 'example.com' },
      'example.comnot a url',
    ],
    ['asterisk-form', { url: '*', host: 'example.com' }, 'example.com*'],
    ['no Host (HTTP/1.0)', { url: '/x' }, '/x'],
    ['no url at all', { host: 'example.com' }, 'example.com/'],
    // Issue 22, item 3: an absolute-form target is keyed by its path as written, never resolved.
    [
      'absolute-form with dot-segments: keyed as sent',
      { url: 'http://example.com/files/../profile', host: 'example.com' },
      'example.com/files/../profile',
    ],
    [
      'absolute-form with %2e%2e and ./',
      { url: 'http://example.com/a/%2e%2e/./b', host: 'example.com' },
      'example.com/a/%2e%2e/./b',
    ],
    [
      'absolute-form with characters WHATWG would encode',
      { url: "http://example.com/search?q=o'reilly&x={1}", host: 'example.com' },
      "example.com/search?q=o'reilly&x={1}",
    ],
    [
      'absolute-form with an empty path: "/" (RFC 9112 §3.2.1)',
      { url: 'http://example.com', host: 'example.com' },
      'example.com/',
    ],
    [
      'absolute-form with a query and no path',
      { url: 'http://example.com?q=1', host: 'example.com' },
      'example.com/?q=1',
    ],
    [
      'absolute-form with userinfo: not cached',
      { url: 'http://user@example.com/p', host: 'user@example.com' },
      undefined,
    ],
    [
      'absolute-form https:// over plain HTTP: not cached',
      { url: 'https://example.com/p', host: 'example.com' },
      undefined,
    ],
    [
      'absolute-form of another scheme: not cached',
      { url: 'ftp://example.com/p', host: 'example.com' },
      undefined,
    ],
    [
      'one slash is not absolute-form: keyed as sent',
      { url: 'http:/example.com/p', host: 'example.com' },
      'example.comhttp:/example.com/p',
    ],
    // Issue 22, item 8: a default port is dropped only for its own scheme.
    [
      ':443 over plain HTTP is another origin',
      { url: '/p', host: 'example.com:443' },
      'example.com:443/p',
    ],
    [':80 over plain HTTP is the origin', { url: '/p', host: 'example.com:80' }, 'example.com/p'],
    [
      'absolute-form :443 over plain HTTP',
      { url: 'http://example.com:443/p', host: 'example.com:443' },
      'example.com:443/p',
    ],
    [
      'absolute-form :80 naming the Host without a port',
      { url: 'http://example.com:80/p', host: 'example.com' },
      'example.com/p',
    ],
  ]
  for (const [name, { method = 'GET', url, host }, expected] of rows) {
    t.equal(
      defaultKey({ method, url, headers: host === undefined ? {} : { host } }),
      expected,
      name,
    )
  }
})

t.test(
  'defaultKey over TLS: :443 is the origin, :80 another; https:// absolute-form',
  async (t) => {
    const tls = (url: string, host: string): KeyRequest => ({
      method: 'GET',
      url,
      headers: { host },
      socket: { encrypted: true },
    })
    t.equal(defaultKey(tls('/p', 'example.com:443')), 'example.com/p')
    t.equal(defaultKey(tls('/p', 'example.com:80')), 'example.com:80/p')
    t.equal(defaultKey(tls('https://example.com:443/p', 'example.com')), 'example.com/p')
    t.equal(
      defaultKey(tls('http://example.com/p', 'example.com')),
      undefined,
      'http:// over TLS: not cached',
    )
  },
)

t.test('splitAbsolute: as written, no resolution', async (t) => {
  t.same(splitAbsolute('HTTP://Host:1/a/../b?c#d'), {
    scheme: 'http',
    authority: 'Host:1',
    path: '/a/../b?c#d',
  })
  t.same(splitAbsolute('http://[bad'), { scheme: 'http', authority: '[bad', path: '/' })
  t.equal(splitAbsolute('/p'), undefined)
  t.equal(splitAbsolute('//host/p'), undefined)
  t.equal(splitAbsolute('mailto:a@b'), undefined)
})

t.test('tags: well-formed strings, but not the reserved \\0name\\0 shape', async (t) => {
  for (const tag of [
    '',
    'post:1',
    '\u0000',
    '\u0000\u0001binary',
    '\u0000Path\u0000/x',
    '\u0000path',
    'a\u0000path\u0000',
  ])
    t.ok(isTag(tag), JSON.stringify(tag))
  for (const tag of ['\u0000path\u0000/x', '\u0000variants\u0000k', '\u0000x\u0000']) {
    t.notOk(isTag(tag), JSON.stringify(tag))
    t.ok(isReservedTag(tag))
  }
  t.notOk(isTag('\ud800'))
  t.notOk(isTag(42))
  t.equal(pathTag('/x'), '\u0000path\u0000/x')
  t.ok(isReservedTag(pathTag('/x')), 'the path tag is reserved')
  t.same(userTags(['a', pathTag('/x'), 'b']), ['a', 'b'])
  const plain = ['a', 'b']
  t.equal(userTags(plain), plain, 'unchanged: the same array')
})

t.test(
  "normalizeHost: case, trailing dot, the scheme's default port (RFC 9110 §4.2.3)",
  async (t) => {
    t.equal(normalizeHost('Example.COM'), 'example.com')
    t.equal(normalizeHost('example.com.'), 'example.com')
    t.equal(normalizeHost('example.com:80'), 'example.com')
    t.equal(
      normalizeHost('example.com:443'),
      'example.com:443',
      'over plain HTTP, :443 is another port',
    )
    t.equal(normalizeHost('example.com:443', true), 'example.com', 'over TLS, the default')
    t.equal(
      normalizeHost('example.com:80', true),
      'example.com:80',
      'over TLS, :80 is another port',
    )
    t.equal(normalizeHost('example.com:8080'), 'example.com:8080')
    t.equal(normalizeHost(' [::1]:80 '), '[::1]')
    t.equal(normalizeHost(undefined), '')
    t.equal(normalizeHost(''), '')
  },
)

t.test('namespacePrefix', async (t) => {
  t.equal(namespacePrefix(''), '')
  t.equal(namespacePrefix('blog'), 'blog\u0000')
})

const opts = { key: defaultKey, namespace: '' }

t.test(
  'urlPurge: an absolute URL is one resource on its own host; a path alone every host',
  async (t) => {
    t.same(
      urlPurge(opts, 'http://Example.com/a/./b?q'),
      { base: 'example.com/a/./b?q' },
      'as written: not resolved',
    )
    t.same(
      urlPurge(opts, 'http://b.example/p', { host: 'a.example' }),
      { base: 'b.example/p' },
      'its host wins over options.host',
    )
    t.same(urlPurge(opts, 'https://example.com:443/p'), { base: 'example.com/p' })
    t.same(urlPurge(opts, 'http://example.com:443/p'), { base: 'example.com:443/p' })
    t.same(urlPurge(opts, '/p?q', { host: 'example.com:8080' }), { base: 'example.com:8080/p?q' })
    t.same(urlPurge(opts, "/search?q=o'reilly"), { tag: pathTag("/search?q=o'reilly") })
    t.same(
      urlPurge({ key: defaultKey, namespace: 'blog' }, '/p'),
      { tag: pathTag('blog\u0000/p') },
      'within its namespace',
    )
    t.same(urlPurge({ key: defaultKey, namespace: 'blog' }, 'http://h/p'), {
      base: 'blog\u0000h/p',
    })
    const refused: Array<[unknown, object?, string?]> = [
      [42, undefined, 'expected url to be a well-formed string, got 42'],
      ['/\ud800', undefined, 'expected url to be a well-formed string, got "/\\ud800"'],
      ['/p', { host: 7 }, 'expected options.host to be a well-formed string, got 7'],
      [
        'ftp://example.com/p',
        undefined,
        'expected an http: or https: URL or a path, got "ftp://example.com/p"',
      ],
      [
        'http://[bad/',
        undefined,
        'expected a URL the key function keys, got "http://[bad/" on Host "[bad" (its key: undefined)',
      ],
      ['http://user@host/', undefined, undefined],
      [
        '/p',
        { host: 'a b' },
        'expected a URL the key function keys, got "/p" on Host "a b" (its key: undefined)',
      ],
    ]
    for (const [url, options, message] of refused)
      t.throws(
        () => urlPurge(opts, url, options as never),
        message === undefined ? TypeError : { name: 'TypeError', message },
        String(url),
      )
    const throwing = {
      key: () => {
        throw new Error('no')
      },
      namespace: '',
    }
    t.throws(() => urlPurge(throwing, '/p'), {
      name: 'TypeError',
      message: 'the key function threw for "/p": no',
    })
    t.throws(
      () =>
        urlPurge(
          {
            key: () => {
              throw 'odd'
            },
            namespace: '',
          },
          '/p',
        ),
      { name: 'TypeError', message: 'the key function threw for "/p": odd' },
    )
  },
)

t.test("pathKeyOf: the key of the path with no header; ownTags adds the entry's own", async (t) => {
  t.equal(pathKeyOf(opts, '/p?q'), '/p?q')
  t.equal(pathKeyOf(opts, 'http://h/a/../b'), '/a/../b', 'absolute-form: its path as written')
  t.equal(pathKeyOf({ key: () => undefined, namespace: '' }, '/p'), undefined)
  t.equal(
    pathKeyOf(
      {
        key: () => {
          throw new Error('x')
        },
        namespace: '',
      },
      '/p',
    ),
    undefined,
  )
  const req = { url: '/p', headers: {} }
  t.same(ownTags(opts, req, 'h/p', 'h/p', ['a']), ['a', pathTag('/p')])
  t.same(ownTags(opts, req, 'h/p', 'h/p\u0000vary\u0000x', ['a']), [
    'a',
    '\u0000variants\u0000h/p',
    pathTag('/p'),
  ])
  const already = ['a', pathTag('/p')]
  t.equal(ownTags(opts, req, 'h/p', 'h/p', already), already, 'nothing missing: the same array')
  t.same(ownTags(opts, { headers: {} }, 'h/', 'h/', []), [], 'a request without a url: no path tag')
  t.same(
    ownTags({ key: () => undefined, namespace: '' }, req, 'h/p', 'h/p', ['a']),
    ['a'],
    'a key that keys no path: no path tag',
  )
})

t.test('sameOriginPath: RFC 3986 §5.2 resolution without dot-segment removal', async (t) => {
  const req = { headers: { host: 'example.com' } }
  const tls = { headers: { host: 'example.com' }, socket: { encrypted: true } }
  const rows: Array<[string, string, typeof req, string | undefined]> = [
    ['/items/7', '/items', req, '/items/7'],
    ['/a/./b', '/x', req, '/a/./b'],
    ["/search?q=o'reilly#top", '/x', req, "/search?q=o'reilly"],
    ['http://EXAMPLE.com:80/c', '/x', req, '/c'],
    ['http://example.com:443/c', '/x', req, undefined],
    ['https://example.com/c', '/x', req, undefined],
    ['https://example.com:443/c', '/x', tls, '/c'],
    ['//example.com/c', '/x', req, '/c'],
    ['//other.example/c', '/x', req, undefined],
    ['//example.com/c', '/x', tls, '/c'],
    ['//example.com:443/c', '/x', tls, '/c'],
    ['http://other.example/c', '/x', req, undefined],
    ['http://[bad/', '/x', req, undefined],
    ['mailto:a@example.com', '/x', req, undefined],
    ['c', '/a/b?q', req, '/a/c'],
    ['../c', '/a/b', req, '/a/../c'],
    ['?p=2', '/a/b?q', req, '/a/b?p=2'],
    ['', '/a/b?q', req, '/a/b?q'],
    ['', '*', req, '/'],
    ['c', '*', req, '/c'],
  ]
  for (const [ref, base, from, expected] of rows)
    t.equal(sameOriginPath(ref, base, from), expected, `${JSON.stringify(ref)} from ${base}`)
  t.equal(
    sameOriginPath('http://example.com/c', '/x', { headers: {} }),
    undefined,
    'a request without a Host has no origin to compare',
  )
})

t.test(
  'changedKeys: the target, Location and Content-Location, as written and as a browser asks',
  async (t) => {
    const req = (url: string, host = 'example.com'): KeyRequest => ({
      method: 'POST',
      url,
      headers: { host },
    })
    t.same(changedKeys(opts, req("/search?q=o'reilly"), {}), [
      "example.com/search?q=o'reilly",
      'example.com/search?q=o%27reilly',
    ])
    t.same(changedKeys(opts, req('/items/{1}'), {}), [
      'example.com/items/{1}',
      'example.com/items/%7B1%7D',
    ])
    t.same(changedKeys(opts, req('/a/./b'), {}), ['example.com/a/./b', 'example.com/a/b'])
    t.same(
      changedKeys(opts, req('/items'), { location: '/items/7', 'content-location': 'created' }),
      ['example.com/items', 'example.com/items/7', 'example.com/created'],
    )
    t.same(
      changedKeys(opts, req('http://example.com/a/../b'), {}),
      ['example.com/a/../b', 'example.com/b'],
      'absolute-form: as sent, and its browser form',
    )
    t.same(
      changedKeys(opts, req('/x'), {
        location: 'http://other.example/x',
        'content-location': ['/array'],
      }),
      ['example.com/x'],
      'another origin, or a value that is not one string: nothing',
    )
    t.same(
      changedKeys(opts, req('//'), { location: 'http://[bad/' }),
      ['example.com//'],
      'POST // and a Location that does not parse',
    )
    t.same(
      changedKeys(opts, req('/x', 'a:99999'), { location: '/y' }),
      ['a:99999/x', 'a:99999/y'],
      'a port WHATWG refuses',
    )
    t.same(changedKeys(opts, req('/x', ''), {}), ['/x'], 'an empty Host')
    t.same(
      changedKeys(opts, req('/x', 'a b'), { location: '/y' }),
      [],
      'a Host the key refuses: nothing to drop',
    )
    t.same(changedKeys(opts, req('*'), {}), ['example.com*'])
    t.same(
      changedKeys(opts, { headers: { host: 'example.com' } }, { location: 'x' }),
      ['example.com/', 'example.com/x'],
      'a request without a url: "/"',
    )
    const throwing = {
      key: (r: KeyRequest) => {
        if (r.url === '/boom') throw new Error('boom')
        return r.url
      },
      namespace: 'ns',
    }
    t.same(
      changedKeys(throwing, req('/boom'), { location: '/fine' }),
      ['ns\u0000/fine'],
      'a key function that throws for one URL',
    )
  },
)
