// Issue 15: purge by URL hits exactly what it names, on MemoryStore, RedisStore and a Redis
// Cluster. A path without a host drops that path and query under every Host it was stored under,
// with all its variants (one reserved tag per path: no scan); an absolute URL drops that URL, its
// host winning over `host`; unsafe methods and purges derive keys as the store did, from the
// request-target as sent (`/search?q=o'reilly`, `/items/{1}`, `/a/./b`), Location and
// Content-Location included. Requests go over raw sockets so that targets and Hosts are exact.
import t, { type Test } from 'tap'
import { Cluster } from 'ioredis'
import {
  accelerate,
  MemoryStore,
  type AccelerateOptions,
  type CacheStore,
  type Handler,
} from '../../src/index.js'
import { forward } from '../../src/proxy/index.js'
import { RedisStore } from '../../stores/redis.js'
import { startCluster, startRedis, PATIENT_MS } from '../fixtures/redis-server.js'
import { eventually, gate, listen } from '../fixtures/http.js'
import { rawRequest, type RawReply } from '../fixtures/hostile-http.js'
import { pathTag } from '../../src/core/invalidation.js'

const HIT = /^node-accelerator; hit; ttl=/
const MISS = /fwd=miss/

let redisUrl!: string
let cluster!: Cluster
t.before(async () => {
  redisUrl = (await startRedis(t)).url
  cluster = new Cluster(await startCluster(t))
  t.teardown(() => cluster.disconnect())
})

let run = 0
const STORES: Array<[string, (t: Test) => Promise<CacheStore>]> = [
  ['MemoryStore', async () => new MemoryStore()],
  [
    'RedisStore',
    async (t) =>
      redis(t, new RedisStore({ timeoutMs: PATIENT_MS, url: redisUrl, prefix: `paths${run++}:` })),
  ],
  [
    'RedisStore on a Cluster',
    async (t) =>
      redis(
        t,
        new RedisStore({ timeoutMs: PATIENT_MS, client: cluster, prefix: `paths${run++}:` }),
      ),
  ],
]

async function redis(t: Test, store: RedisStore): Promise<CacheStore> {
  await store.ready()
  t.teardown(async () => {
    await store.clear()
    await store.close()
  })
  return store
}

/** `store`, counting the writes started and settled (stored or refused). */
function counting(store: CacheStore) {
  const writes = { started: 0, settled: 0 }
  const counted: CacheStore = {
    get: (key) => store.get(key),
    checkpoint: () => store.checkpoint(),
    set: (key, entry, since) => {
      writes.started++
      return store.set(key, entry, since).finally(() => writes.settled++)
    },
    delete: (key) => store.delete(key),
    invalidateTags: (tags, options) => store.invalidateTags(tags, options),
    clear: (prefix) => store.clear(prefix),
    close: () => store.close(),
  }
  return { store: counted, writes }
}

/**
 * An accelerated site on `store`: every GET is stored for 60 s and says which render it was;
 * `/lang` varies on Accept-Language. `get` sends a raw request and, when the response is to be
 * stored, waits until the store has settled its writes (a Redis store writes a few round trips
 * after the response), so that the next request of the same URL sees the outcome on every store.
 */
async function site(
  t: Test,
  store: CacheStore,
  options: AccelerateOptions = {},
  handler?: Handler,
) {
  let renders = 0
  const { store: counted, writes } = counting(store)
  const app = accelerate(
    handler ??
      ((req, res) => {
        res.cacheFor = 60
        if (req.url!.startsWith('/lang')) res.setHeader('vary', 'accept-language')
        return `${req.headers.host} ${req.url} ${req.headers['accept-language'] ?? ''} #${++renders}`
      }),
    { store: counted, ...options },
  )
  const url = await listen(t, app)
  const send = async (
    method: string,
    target: string,
    host: string,
    lines: Array<[string, string]> = [],
    wait = true,
  ): Promise<RawReply> => {
    const started = writes.started
    const reply = await rawRequest(url, { method, target, host, lines })
    if (wait && /; stored/.test(String(reply.headers['cache-status']))) {
      await eventually(
        () => writes.started > started && writes.settled === writes.started,
        `${target}: its writes settled`,
      )
    }
    return reply
  }
  const get = (target: string, host: string, lines?: Array<[string, string]>) =>
    send('GET', target, host, lines)
  /** A GET that does not wait for a write (none is coming: its tags are refused). */
  const peek = (target: string, host: string) => send('GET', target, host, [], false)
  return { app, url, get, peek, send }
}

for (const [name, makeStore] of STORES) {
  t.test(name, async (t) => {
    t.test(
      'a path alone drops that path and query under every Host, with every variant',
      async (t) => {
        const { app, get } = await site(t, await makeStore(t))
        const hosts = ['example.com', 'www.example.com', '10.0.0.5:3000']
        for (const host of hosts)
          for (const target of ['/one?z=1', '/one?z=2', '/two']) await get(target, host)
        for (const lang of ['fr', 'de'])
          await get('/lang?x', 'example.com', [['Accept-Language', lang]])
        await get('/lang?x', 'www.example.com', [['Accept-Language', 'fr']])
        t.equal(await app.invalidate('/one?z=1'), 3, 'one entry under each Host')
        for (const host of hosts) {
          t.match(
            (await get('/one?z=1', host)).headers['cache-status'],
            MISS,
            `${host}/one?z=1 dropped`,
          )
          t.match(
            (await get('/one?z=2', host)).headers['cache-status'],
            HIT,
            `${host}/one?z=2 kept: another query`,
          )
          t.match((await get('/two', host)).headers['cache-status'], HIT, `${host}/two kept`)
        }
        t.equal(await app.invalidate('/lang?x'), 3, 'every variant, under every Host')
        t.match(
          (await get('/lang?x', 'example.com', [['Accept-Language', 'de']])).headers[
            'cache-status'
          ],
          MISS,
        )
        t.match(
          (await get('/lang?x', 'www.example.com', [['Accept-Language', 'fr']])).headers[
            'cache-status'
          ],
          MISS,
        )
        t.equal(await app.invalidate('/never'), 0)
      },
    )

    t.test(
      'paths are the targets as sent: no re-encoding, no dot-segment resolution',
      async (t) => {
        const { app, get } = await site(t, await makeStore(t))
        // Each as written, beside the spelling a WHATWG URL would turn it into.
        const pairs: Array<[string, string]> = [
          ["/search?q=o'reilly", '/search?q=o%27reilly'],
          ['/items/{1}', '/items/%7B1%7D'],
          ['/a/./b', '/a/b'],
        ]
        const targets = pairs.flat()
        for (const target of targets) await get(target, 'example.com')
        for (const [written, sibling] of pairs) {
          t.equal(await app.invalidate(written), 1, `${written}: exactly its entry`)
          t.match(
            (await get(written, 'example.com')).headers['cache-status'],
            MISS,
            `${written} dropped`,
          )
          t.match(
            (await get(sibling, 'example.com')).headers['cache-status'],
            HIT,
            `${sibling} is another key: kept`,
          )
        }
        for (const target of targets)
          t.match(
            (await get(target, 'example.com')).headers['cache-status'],
            HIT,
            `${target} is a hit again`,
          )
        t.equal(await app.invalidate('http://example.com/a/./b'), 1, 'an absolute URL, as written')
        t.match(
          (await get('/a/b', 'example.com')).headers['cache-status'],
          HIT,
          '/a/b is another resource',
        )
        t.match((await get('/a/./b', 'example.com')).headers['cache-status'], MISS)
      },
    )

    t.test('an absolute URL drops that URL: its host wins over options.host', async (t) => {
      const { app, get } = await site(t, await makeStore(t))
      for (const host of ['site1.test', 'site2.test']) await get('/a.txt', host)
      t.equal(await app.invalidate('http://site2.test/a.txt', { host: 'site1.test' }), 1)
      t.match((await get('/a.txt', 'site1.test')).headers['cache-status'], HIT, 'site1 kept')
      t.match((await get('/a.txt', 'site2.test')).headers['cache-status'], MISS, 'site2 dropped')
      t.equal(
        await app.invalidate('/a.txt', { host: 'site1.test' }),
        1,
        'a path with a host: that host only',
      )
      t.match((await get('/a.txt', 'site2.test')).headers['cache-status'], HIT)
      t.equal(
        await app.invalidate('http://site1.test:443/a.txt'),
        0,
        ':443 over http: is another origin',
      )
    })

    t.test("namespaces: a path drops only its own accelerator's entries", async (t) => {
      const store = await makeStore(t)
      const blog = await site(t, store, { namespace: 'blog' })
      const shop = await site(t, store, { namespace: 'shop' })
      await blog.get('/same', 'example.com')
      await shop.get('/same', 'example.com')
      t.equal(await blog.app.invalidate('/same'), 1)
      t.match((await shop.get('/same', 'example.com')).headers['cache-status'], HIT)
      t.match((await blog.get('/same', 'example.com')).headers['cache-status'], MISS)
    })

    t.test(
      'a path purge during a slow generation keeps the old page out of the store',
      async (t) => {
        const started = gate()
        const finish = gate()
        let version = 1
        const { app, get } = await site(t, await makeStore(t), {}, async (_req, res) => {
          res.cacheFor = 60
          const seen = version
          if (seen === 1) {
            started.open()
            await finish.promise
          }
          return `v${seen}`
        })
        const slow = get('/race', 'example.com')
        await started.promise
        version = 2
        await app.invalidate('/race')
        finish.open()
        t.equal((await slow).text, 'v1')
        t.equal((await get('/race', 'example.com')).text, 'v2', 'not resurrected')
      },
    )

    t.test('the reserved path tags cannot be set or purged as tags', async (t) => {
      const errors: string[] = []
      const { app, get, peek } = await site(
        t,
        await makeStore(t),
        { onError: (err, { op }) => errors.push(`${op}: ${err.message}`) },
        (req, res) => {
          res.cacheFor = 60
          if (req.url === '/claims') res.tags = [pathTag('/victim')]
          return `page ${req.url}`
        },
      )
      await get('/victim', 'example.com')
      await peek('/claims', 'example.com')
      t.match((await peek('/claims', 'example.com')).headers['cache-status'], MISS, 'not stored')
      t.match(errors[0], /^tags: expected res\.tags to be an array of well-formed strings/)
      await t.rejects(app.invalidateTags([pathTag('/victim')]), TypeError)
      t.match((await get('/victim', 'example.com')).headers['cache-status'], HIT)
    })

    t.test('with a custom key, a path is what key(req) gives it with no header', async (t) => {
      // A key that sorts the query: the path key of /s?b=2&a=1 is that of /s?a=1&b=2.
      const sorted = (url: string) => {
        const [path, query] = url.split('?')
        return query === undefined ? path! : `${path}?${query.split('&').sort().join('&')}`
      }
      const { app, get } = await site(t, await makeStore(t), {
        key: (req) => `${req.headers.host ?? '*'}|${sorted(req.url!)}`,
      })
      await get('/s?a=1&b=2', 'one.example')
      await get('/s?b=2&a=1', 'two.example')
      t.match(
        (await get('/s?b=2&a=1', 'one.example')).headers['cache-status'],
        HIT,
        'one key for both spellings',
      )
      t.equal(await app.invalidate('/s?b=2&a=1'), 2, 'both hosts, whichever spelling stored them')
      t.match((await get('/s?a=1&b=2', 'two.example')).headers['cache-status'], MISS)
      // A key that keys nothing without a Host: no path tag on its entries, and no path purges.
      const strict = await site(t, await makeStore(t), {
        key: (req) => (req.headers.host ? req.headers.host + req.url : undefined),
      })
      await strict.get('/p', 'example.com')
      await t.rejects(strict.app.invalidate('/p'), {
        name: 'TypeError',
        message: 'expected a URL the key function keys, got "/p" (its key: undefined)',
      })
      t.equal(await strict.app.invalidate('/p', { host: 'example.com' }), 1)
    })

    t.test(
      'a handler that rewrites req.url: its entry is purged by the path the client sent',
      async (t) => {
        const { app, get } = await site(t, await makeStore(t), {}, (req, res) => {
          res.cacheFor = 60
          req.url = '/index.html' // a router's rewrite
          return 'the index'
        })
        await get('/', 'example.com')
        t.equal(await app.invalidate('/index.html'), 0, 'not the rewritten path')
        t.equal(await app.invalidate('/'), 1, 'the path as sent')
      },
    )

    t.test(
      'through the proxy: a POST drops its target, Location and Content-Location as written',
      async (t) => {
        let renders = 0
        const originUrl = await listen(t, (req, res) => {
          if (req.method === 'POST') {
            const headers: Record<string, string> =
              req.url === '/items'
                ? { location: '/items/{2}', 'content-location': 'http://example.com/a/./c' }
                : {}
            res.writeHead(req.url === '/items' ? 201 : 200, headers)
            return void res.end('done')
          }
          res.writeHead(200, { 'cache-control': 'max-age=60' })
          res.end(`${req.url} #${++renders}`)
        })
        const upstream = forward(originUrl)
        t.teardown(() => upstream.close())
        const { get, send } = await site(t, await makeStore(t), { sharedCache: true }, upstream)
        const targets = [
          "/search?q=o'reilly",
          '/items/{1}',
          '/a/./b',
          '/items/{2}',
          '/a/./c',
          '/untouched',
        ]
        for (const target of targets) await get(target, 'example.com')
        for (const target of targets.slice(0, 3)) {
          t.equal((await send('POST', target, 'example.com')).status, 200)
          t.match(
            (await get(target, 'example.com')).headers['cache-status'],
            MISS,
            `POST ${target} dropped it`,
          )
        }
        t.equal((await send('POST', '/items', 'example.com')).status, 201)
        t.match(
          (await get('/items/{2}', 'example.com')).headers['cache-status'],
          MISS,
          'its Location, as written',
        )
        t.match(
          (await get('/a/./c', 'example.com')).headers['cache-status'],
          MISS,
          'its Content-Location, as written',
        )
        t.match((await get('/untouched', 'example.com')).headers['cache-status'], HIT)
      },
    )
  })
}
