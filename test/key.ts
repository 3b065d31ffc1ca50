// Cache keys: Host normalisation and request-target forms.
import t from 'tap'
import { defaultKey, normalizeHost, keyRequestFor, namespacePrefix } from '../src/key.js'

t.test('defaultKey: host + path + query, method-independent', async (t) => {
  const rows: Array<[string, { method?: string; url?: string; host?: string }, string | undefined]> = [
    ['origin-form', { url: '/a/b?c=d', host: 'example.com' }, 'example.com/a/b?c=d'],
    ['GET and HEAD share it', { method: 'HEAD', url: '/a', host: 'example.com' }, 'example.com/a'],
    ['absolute-form with its own Host (RFC 9112 §3.2.2)', { url: 'http://Other.Example:80/p?q=1', host: 'other.example' }, 'other.example/p?q=1'],
    ['absolute-form naming another authority than the Host: not cached', { url: 'http://example.com/p', host: 'evil.example' }, undefined],
    ['a Host with a path in it: not cached (it would share another path\'s key)', { url: '/y', host: 'example.com/x' }, undefined],
    ['a Host with userinfo: not cached', { url: '/', host: 'user@example.com' }, undefined],
    ['a Host with a space: not cached', { url: '/', host: 'a b' }, undefined],
    ['an IPv6 literal Host', { url: '/', host: '[::1]:8080' }, '[::1]:8080/'],
    ['a malformed target is keyed as sent', { url: 'not a url', host: 'example.com' }, 'example.comnot a url'],
    ['asterisk-form', { url: '*', host: 'example.com' }, 'example.com*'],
    ['no Host (HTTP/1.0)', { url: '/x' }, '/x'],
    ['no url at all', { host: 'example.com' }, 'example.com/'],
  ]
  for (const [name, { method = 'GET', url, host }, expected] of rows) {
    t.equal(defaultKey({ method, url, headers: host === undefined ? {} : { host } } as never), expected, name)
  }
})

t.test('normalizeHost: case, trailing dot, default ports (RFC 9110 §4.2.3)', async (t) => {
  t.equal(normalizeHost('Example.COM'), 'example.com')
  t.equal(normalizeHost('example.com.'), 'example.com')
  t.equal(normalizeHost('example.com:80'), 'example.com')
  t.equal(normalizeHost('example.com:443'), 'example.com')
  t.equal(normalizeHost('example.com:8080'), 'example.com:8080')
  t.equal(normalizeHost(' [::1]:80 '), '[::1]')
  t.equal(normalizeHost(undefined), '')
  t.equal(normalizeHost(''), '')
})

t.test('keyRequestFor builds the request invalidate(url) hands to the key function', async (t) => {
  t.same(keyRequestFor('https://Example.com/p?q', 'GET', undefined, true), { method: 'GET', url: '/p?q', headers: { host: 'example.com' } })
  t.same(keyRequestFor('/p', 'HEAD', 'example.com:8080', true), { method: 'HEAD', url: '/p', headers: { host: 'example.com:8080' } })
  t.same(keyRequestFor('/p', 'GET', undefined, false), { method: 'GET', url: '/p', headers: {} })
  t.throws(() => keyRequestFor('/p', 'GET', undefined, true), TypeError)
})

t.test('namespacePrefix', async (t) => {
  t.equal(namespacePrefix(''), '')
  t.equal(namespacePrefix('blog'), 'blog\u0000')
})
