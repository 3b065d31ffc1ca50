// Hits: served without calling the handler, with the stored status, headers and body, plus Age
// and Cache-Status; HEAD from the GET entry without a body.
import t from 'tap'
import { channel } from 'node:diagnostics_channel'
import { accelerate, CHANNELS, MemoryStore, type CacheEntry } from '../../src/index.js'
import { counted, listen, manualClock, request } from '../fixtures/http.js'

t.test('a stored response is served again without calling the handler', async (t) => {
  const handler = counted((_req, res) => {
    res.cacheFor = 60
    res.setHeader('content-type', 'text/html; charset=utf-8')
    res.setHeader('x-powered-by', 'test')
    res.setHeader('link', ['</a.css>; rel=preload', '</b.js>; rel=preload'])
    res.statusCode = 203
    res.end('<h1>hello</h1>')
  })
  const url = await listen(t, accelerate(handler))
  const first = await request(url + '/page')
  t.equal(first.status, 203)
  t.equal(first.headers['cache-status'], 'node-accelerator; fwd=miss; stored')
  t.equal(first.headers.age, undefined, 'a miss has no Age')
  const second = await request(url + '/page')
  t.equal(handler.calls, 1, 'the handler ran once')
  t.equal(second.status, 203)
  t.equal(second.text, '<h1>hello</h1>')
  t.equal(second.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(second.headers['x-powered-by'], 'test')
  t.same(
    second.rawHeaders.filter((_, i, all) => i % 2 === 1 && all[i - 1]!.toLowerCase() === 'link'),
    ['</a.css>; rel=preload', '</b.js>; rel=preload'],
    'repeated headers keep every value, in order',
  )
  t.equal(second.headers['content-length'], '14')
  t.equal(second.headers.age, '0')
  t.match(second.headers['cache-status'], /^node-accelerator; hit; ttl=(59|60)$/)
  t.equal(second.headers.date, first.headers.date, "Date is the original response's")
  t.match(second.headers.etag, /^"e-[\w+/]{27}"$/, 'a strong ETag computed from the body')
})

t.test('Age and ttl follow the clock; an entry past its freshness is regenerated', async (t) => {
  const clock = manualClock()
  let version = 0
  const handler = counted((_req, res) => {
    res.cacheFor = 10
    res.end(`v${++version}`)
  })
  const url = await listen(t, accelerate(handler, { now: clock.now }))
  await request(url + '/')
  clock.advance(4_500)
  const aged = await request(url + '/')
  t.equal(aged.headers.age, '4')
  t.equal(aged.headers['cache-status'], 'node-accelerator; hit; ttl=5')
  clock.advance(5_500) // exactly at staleAt: stale
  const regenerated = await request(url + '/')
  t.equal(regenerated.text, 'v2')
  t.equal(
    regenerated.headers['cache-status'],
    'node-accelerator; fwd=stale; stored',
    'a stale entry is revalidated: here the handler sent a new body',
  )
  t.equal(handler.calls, 2)
})

t.test('Age includes the age the handler declared', async (t) => {
  const clock = manualClock()
  const url = await listen(
    t,
    accelerate(
      (_req, res) => {
        res.setHeader('cache-control', 'public, max-age=100')
        res.setHeader('age', '30')
        res.end('from upstream')
      },
      { now: clock.now },
    ),
  )
  await request(url + '/')
  clock.advance(2_000)
  const hit = await request(url + '/')
  t.equal(hit.headers.age, '32')
  t.equal(
    hit.headers['cache-status'],
    'node-accelerator; hit; ttl=68',
    'freshness counts the declared age too',
  )
})

t.test(
  'HEAD is answered from the GET entry, without a body, with its Content-Length',
  async (t) => {
    const handler = counted((_req, res) => {
      res.cacheFor = 60
      res.end('0123456789')
    })
    const url = await listen(t, accelerate(handler))
    await request(url + '/x')
    const head = await request(url + '/x', { method: 'HEAD' })
    t.equal(handler.calls, 1)
    t.equal(head.status, 200)
    t.equal(head.body.length, 0)
    t.equal(head.headers['content-length'], '10')
    t.match(head.headers['cache-status'], /; hit;/)
  },
)

t.test(
  "a HEAD miss runs the handler as the cache's own GET: the entry is stored, the client gets headers only",
  async (t) => {
    const handler = counted((req, res) => {
      res.cacheFor = 60
      res.end(`body for a ${req.method}`)
    })
    const url = await listen(t, accelerate(handler))
    const head = await request(url + '/y', { method: 'HEAD' })
    t.equal(head.headers['cache-status'], 'node-accelerator; fwd=miss; stored')
    t.equal(head.headers['content-length'], '14')
    t.equal(head.body.length, 0)
    const get = await request(url + '/y')
    t.equal(get.text, 'body for a GET')
    t.match(get.headers['cache-status'], /; hit;/)
    t.equal(handler.calls, 1)
  },
)

t.test('GET and HEAD share one entry; other methods pass straight through', async (t) => {
  const handler = counted((req, res) => {
    res.cacheFor = 60
    res.end(`${req.method} ${handler.calls}`)
  })
  const app = accelerate(handler)
  const url = await listen(t, app)
  const post = await request(url + '/z', { method: 'POST', body: 'x' })
  t.equal(post.text, 'POST 1')
  t.equal(post.headers['cache-status'], undefined, 'a bypass is untouched')
  await request(url + '/z')
  const again = await request(url + '/z', { method: 'DELETE' })
  t.equal(again.text, 'DELETE 3')
  t.equal((await request(url + '/z')).text, 'GET 2')
  t.equal(app.stats().bypasses, 2)
})

t.test('statusHeader renames or removes Cache-Status; xCache adds X-Cache', async (t) => {
  const renamed = await listen(
    t,
    accelerate(
      (req, res) => {
        res.cacheFor = 60
        // A handler (or the origin behind it) using the same header name for its own report.
        if (req.url === '/own') res.setHeader('x-accel-status', 'origin-cache; hit')
        res.end('x')
      },
      { statusHeader: 'X-Accel-Status', xCache: true },
    ),
  )
  const miss = await request(renamed + '/')
  t.equal(miss.headers['x-accel-status'], 'node-accelerator; fwd=miss; stored')
  t.equal(miss.headers['x-cache'], 'MISS')
  t.equal(miss.headers['cache-status'], undefined)
  const hit = await request(renamed + '/')
  t.equal(hit.headers['x-cache'], 'HIT')
  await request(renamed + '/own')
  const own = await request(renamed + '/own')
  const statusLines = own.rawHeaders.filter(
    (_, i, all) => i % 2 === 1 && all[i - 1]!.toLowerCase() === 'x-accel-status',
  )
  t.equal(statusLines.length, 1, 'a hit sends one status line, in place of the stored one...')
  t.match(statusLines[0], /^node-accelerator; hit; ttl=\d+$/, '...its own')
  const none = await listen(
    t,
    accelerate(
      (_req, res) => {
        res.cacheFor = 60
        res.end('x')
      },
      { statusHeader: false },
    ),
  )
  await request(none + '/')
  const quiet = await request(none + '/')
  t.equal(quiet.headers['cache-status'], undefined)
  t.equal(quiet.headers.age, '0', 'a hit still says its Age')
})

t.test(
  "a Cache-Status from the handler's own caches is kept, ours appended (RFC 9211)",
  async (t) => {
    const url = await listen(
      t,
      accelerate((_req, res) => {
        res.cacheFor = 60
        res.setHeader('cache-status', 'upstream; hit')
        res.end('x')
      }),
    )
    const miss = await request(url + '/')
    t.equal(miss.headers['cache-status'], 'upstream; hit, node-accelerator; fwd=miss; stored')
    const hit = await request(url + '/')
    t.match(
      hit.headers['cache-status'],
      /^node-accelerator; hit; ttl=\d+$/,
      "a hit reports only this cache: the upstream's report is history",
    )
  },
)

t.test('stats count hits, misses, stores and bytes', async (t) => {
  const app = accelerate((_req, res) => {
    res.cacheFor = 60
    res.end('12345')
  })
  const url = await listen(t, app)
  await request(url + '/a')
  await request(url + '/a')
  await request(url + '/a')
  await request(url + '/b')
  const stats = app.stats()
  t.match(stats, {
    hits: 2,
    misses: 2,
    stores: 2,
    bytesStored: 10,
    entries: 2,
    notModified: 0,
    errors: 0,
  })
  t.ok(stats.bytes! > 10, 'the store counts headers and keys too')
})

t.test(
  'a store that answers at once (MemoryStore.peek): a hit is written before the listener returns',
  async (t) => {
    const clock = manualClock()
    const store = new MemoryStore({ now: clock.now })
    const app = accelerate(
      (_req, res) => {
        res.cacheFor = 60
        return 'body'
      },
      { store, now: clock.now },
    )
    const sentAtOnce: boolean[] = []
    const url = await listen(t, (req, res) => {
      app(req, res)
      sentAtOnce.push(res.headersSent)
    })
    t.equal((await request(url + '/p')).text, 'body')
    t.equal((await request(url + '/p')).text, 'body')
    t.same(sentAtOnce, [false, true], 'the miss waits for the handler; the hit waits for nothing')
    // What peek answers is what get resolves: fresh, absent, and past expiresAt.
    const page = {
      status: 200,
      headers: {},
      body: Buffer.from('x'),
      tags: [],
      storedAt: clock.now(),
      initialAge: 0,
      staleAt: clock.now() + 1000,
      expiresAt: clock.now() + 2000,
    }
    t.ok(await store.set('k', page, await store.checkpoint()))
    t.same(store.peek('k'), await store.get('k'))
    t.equal(store.peek('absent'), undefined)
    clock.advance(2000)
    t.equal(store.peek('k'), undefined, 'past expiresAt')
    t.equal(await store.get('k'), undefined)
  },
)

t.test(
  'a store whose peek throws: reported like a failed get, the request is a miss, nothing breaks',
  async (t) => {
    const inner = new MemoryStore()
    const errors: string[] = []
    const store = Object.assign(Object.create(inner) as MemoryStore, {
      get: (key: string) => inner.get(key),
      checkpoint: () => inner.checkpoint(),
      set: (key: string, entry: CacheEntry, since: never) => inner.set(key, entry, since),
      peek(): CacheEntry | undefined {
        throw new Error('peek failed')
      },
    })
    const handler = counted((_req, res) => {
      res.cacheFor = 60
      return 'fresh'
    })
    const url = await listen(
      t,
      accelerate(handler, {
        store,
        onError: (err, { op }) => void errors.push(`${op}: ${err.message}`),
      }),
    )
    t.equal((await request(url + '/x')).text, 'fresh')
    t.equal((await request(url + '/x')).text, 'fresh')
    t.equal(handler.calls, 2, 'no hit without a lookup')
    t.same(errors, ['get: peek failed', 'get: peek failed'])
  },
)

t.test(
  'while store calls are traced, lookups go through get (a trace is asynchronous)',
  async (t) => {
    const store = new MemoryStore()
    const ops: string[] = []
    const onStart = (message: unknown) => void ops.push((message as { op: string }).op)
    const start = channel(`tracing:${CHANNELS.store}:start`)
    start.subscribe(onStart)
    t.teardown(() => void start.unsubscribe(onStart))
    const url = await listen(
      t,
      accelerate(
        (_req, res) => {
          res.cacheFor = 60
          return 'x'
        },
        { store },
      ),
    )
    await request(url + '/t')
    t.equal((await request(url + '/t')).text, 'x')
    t.equal(ops.filter((op) => op === 'get').length, 2, 'each lookup traced as a get')
  },
)
