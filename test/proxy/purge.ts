// The purge API of the proxy: PURGE /path and POST /.accelerator/purge, with a Bearer token;
// without a token configured, both go to the origin like any request.
import t, { type Test } from 'tap'
import { startProxy, type ProxyConfig } from '../../src/cli.js'
import { eventually, listen, request } from '../fixtures/http.js'

async function setup(t: Test, config: Partial<ProxyConfig> = {}) {
  const seen: string[] = []
  const origin = await listen(t, (req, res) => {
    seen.push(`${req.method} ${req.url}`)
    res.writeHead(200, { 'cache-control': 'max-age=60', 'surrogate-key': `page:${req.url}` })
    res.end(`origin ${seen.length}`)
  })
  const proxy = await startProxy({ upstream: new URL(origin), port: 0, host: '127.0.0.1', maxBytes: 1 << 20, keepSurrogateHeaders: false, log: false, ...config }, () => {})
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
  const reply = await request(url + '/.accelerator/purge', { method: 'POST', headers: { ...bearer('s3cret'), 'content-type': 'application/json' }, body: JSON.stringify({ tags: ['page:/a', 'page:/b'], urls: ['/c', '/never'] }) })
  t.equal(reply.status, 200)
  t.same(JSON.parse(reply.text), { tags: 2, urls: 1 })
  await request(url + '/a')
  const soft = await request(url + '/.accelerator/purge', { method: 'POST', headers: bearer('s3cret'), body: JSON.stringify({ tags: ['page:/a'], soft: true }) })
  t.same(JSON.parse(soft.text), { tags: 1, urls: 0 })
  t.match((await request(url + '/a')).headers['cache-status'], /detail=stale-while-revalidate/, 'served stale once, while refreshed')
  // Let the background refresh land before the proxy is closed.
  await eventually(async () => /hit; ttl=\d/.test(String((await request(url + '/a')).headers['cache-status'])), 'the refresh landed')
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
    t.equal((await request(url + '/.accelerator/purge', { method: 'POST', headers: bearer('s3cret'), body })).status, 400, body)
  }
  const huge = await request(url + '/.accelerator/purge', { method: 'POST', headers: bearer('s3cret'), body: 'x'.repeat(2 * 1024 * 1024) }).catch(() => ({ status: 413 }))
  t.equal(huge.status, 413)
})

t.test('without a token configured, PURGE and the purge path go to the origin', async (t) => {
  const { url, seen } = await setup(t)
  await request(url + '/a', { method: 'PURGE', headers: bearer('anything') })
  await request(url + '/.accelerator/purge', { method: 'POST', body: '{}' })
  t.same(seen, ['PURGE /a', 'POST /.accelerator/purge'])
})

t.test('purgeApi directly: a token is required; a failing store is a 500; URLs alone', async (t) => {
  const { purgeApi } = await import('../../src/purge.js')
  t.throws(() => purgeApi({ invalidate: async () => 0, invalidateTags: async () => 0 }, ''), { name: 'TypeError', message: 'expected a purge token, got ""' })
  const purge = purgeApi({
    invalidate: async (url) => (url === '/broken' ? Promise.reject(new Error('store down')) : 1),
    invalidateTags: async () => 0,
  }, 't')
  const url = await listen(t, (req, res) => purge(req, res) || res.end('not a purge'))
  const broken = await request(url + '/broken', { method: 'PURGE', headers: bearer('t') })
  t.equal(broken.status, 500)
  t.same(JSON.parse(broken.text), { error: 'store down' })
  const urls = await request(url + '/.accelerator/purge', { method: 'POST', headers: bearer('t'), body: '{"urls":["/a","/b"]}' })
  t.same(JSON.parse(urls.text), { tags: 0, urls: 2 })
  t.equal((await request(url + '/.accelerator/purge?x', { method: 'GET' })).text, 'not a purge')
})

t.test('a PURGE without a Host (HTTP/1.0) purges the localhost URL', async (t) => {
  const { purgeApi } = await import('../../src/purge.js')
  const asked: unknown[] = []
  const purge = purgeApi({ invalidate: async (url, options) => (asked.push([url, options]), 0), invalidateTags: async () => 0 }, 't')
  const url = await listen(t, (req, res) => void purge(req, res))
  const net = await import('node:net')
  await new Promise<void>((resolve) => {
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1', () => socket.write('PURGE /x HTTP/1.0\r\nAuthorization: Bearer t\r\n\r\n'))
    socket.on('data', () => {})
    socket.on('close', () => resolve())
  })
  t.same(asked, [['/x', { host: 'localhost' }]])
})

t.test('the proxy on Redis, and on a Redis that does not answer (it serves anyway)', async (t) => {
  const { startRedis, freePort } = await import('../fixtures/redis-server.js')
  const redis = await startRedis(t)
  const { url, seen } = await setup(t, { redis: redis.url })
  await request(url + '/r')
  await eventually(async () => /hit/.test(String((await request(url + '/r', { headers: { 'cache-control': 'only-if-cached' } })).headers['cache-status'])), 'stored in Redis')
  t.match((await request(url + '/r')).headers['cache-status'], /hit/, 'stored in Redis')
  t.same(seen, ['GET /r'])
  const lines: string[] = []
  const origin = await listen(t, (_req, res) => res.end('uncached'))
  const down = await startProxy({ upstream: new URL(origin), port: 0, host: '127.0.0.1', maxBytes: 1 << 20, keepSurrogateHeaders: false, log: false, redis: `redis://127.0.0.1:${await freePort()}` }, (line) => lines.push(line))
  t.teardown(() => down.close())
  t.match(lines[0], /^Redis at redis:\/\/127\.0\.0\.1:\d+ is not answering \(Redis was not ready within 2000 ms\); proxying uncached until it is$/)
  t.equal((await request(down.url + '/')).text, 'uncached')
})
