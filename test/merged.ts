import t from 'tap'
import { merged } from '../src/http/merged.js'
import { accelerate } from '../src/index.js'
import { listen, request } from './fixtures/http.js'

t.test('later records win, every name is kept', async (t) => {
  t.strictSame(merged({ a: '1', b: '2' }, { b: '3' }, { c: '4' }), { a: '1', b: '3', c: '4' })
  t.strictSame(merged({}, { only: 'b' }), { only: 'b' })
})

t.test('a __proto__ name is copied as data, as a spread would', async (t) => {
  const hostile = JSON.parse('{"__proto__": "x", "etag": "\\"1\\""}') as Record<string, string>
  const out = merged(hostile, { age: '0' })
  t.ok(Object.hasOwn(out, '__proto__'))
  t.equal(Object.getPrototypeOf(out), Object.prototype, 'the prototype is untouched')
  t.strictSame(Object.keys(out), ['__proto__', 'etag', 'age'])
})

t.test(
  'a response with a __proto__ header is stored and replayed as sent, 304s included',
  async (t) => {
    const url = await listen(
      t,
      accelerate((_req, res) => {
        res.cacheFor = 60
        res.setHeader('__proto__', 'x')
        res.setHeader('etag', '"v1"')
        res.end('body')
      }),
    )
    const miss = await request(url + '/')
    t.ok(miss.rawHeaders.includes('__proto__'), 'the miss sends it')
    const hit = await request(url + '/')
    t.equal(hit.text, 'body')
    t.ok(hit.rawHeaders.includes('__proto__'), 'a hit sends it')
    const notModified = await request(url + '/', { headers: { 'if-none-match': '"v1"' } })
    t.equal(notModified.status, 304)
    t.ok(notModified.rawHeaders.includes('__proto__'), 'a 304 from the cache sends it')
  },
)

t.test('a __proto__ header given to writeHead is stored as data too', async (t) => {
  const url = await listen(
    t,
    accelerate((_req, res) => {
      res.cacheFor = 60
      res.writeHead(200, ['__proto__', 'a', 'content-type', 'text/plain'])
      res.end('body')
    }),
  )
  await request(url + '/')
  const hit = await request(url + '/')
  const values = hit.rawHeaders.filter((_, i, all) => i % 2 === 1 && all[i - 1] === '__proto__')
  t.strictSame(values, ['a'], 'one value, the one sent')
})
