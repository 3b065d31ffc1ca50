// Prometheus metrics (node-accelerator/metrics, accelerator --metrics): a scrape over a real socket
// after known traffic, each value checked; store errors; registering and unregistering; the proxy.
import t from 'tap'
import { Gauge } from 'prom-client'
import {
  accelerate,
  MemoryStore,
  type CacheEntry,
  type Checkpoint,
  type InvalidateOptions,
} from '../src/index.js'
import { metricsListener, registerMetrics, Registry } from '../src/metrics.js'
import { loadMetrics, parseFlags, startProxy, USAGE } from '../src/proxy/cli.js'
import { counted, eventually, gate, listen, manualClock, request } from './fixtures/http.js'
import { FailingStore } from './fixtures/failing-store.js'
import { startRedis } from './fixtures/redis-server.js'
import { RedisStore } from '../stores/redis.js'

/** A scrape: each sample by its name and labels (sorted, `le` included), e.g. `x_total{op="get"}`. */
async function scrape(url: string): Promise<Map<string, number>> {
  const reply = await request(url)
  if (reply.status !== 200) throw new Error(`scrape answered ${reply.status}: ${reply.text}`)
  const samples = new Map<string, number>()
  for (const line of reply.text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match) throw new Error(`not a sample line: ${line}`)
    const labels = (match[2] ?? '').split(',').filter(Boolean).sort().join(',')
    samples.set(labels ? `${match[1]}{${labels}}` : match[1]!, Number(match[3]))
  }
  return samples
}

/** The samples of `name` (and its `_bucket`, `_sum`, `_count`), as an object for t.same. */
function family(samples: Map<string, number>, name: string): Record<string, number> {
  const found: Record<string, number> = {}
  for (const [sample, value] of samples) {
    if (sample === name || sample.startsWith(name + '{') || sample.startsWith(name + '_'))
      found[sample] = value
  }
  return found
}

/** A MemoryStore whose every call takes 1 ms on the metrics clock. */
class TimedStore extends MemoryStore {
  constructor(
    private readonly clock: { elapsed: number },
    options: ConstructorParameters<typeof MemoryStore>[0],
  ) {
    super(options)
  }
  override get(key: string) {
    this.clock.elapsed++
    return super.get(key)
  }
  override checkpoint() {
    this.clock.elapsed++
    return super.checkpoint()
  }
  override set(key: string, entry: CacheEntry, since: Checkpoint) {
    this.clock.elapsed++
    return super.set(key, entry, since)
  }
  override invalidateTags(tags: readonly string[], options?: InvalidateOptions) {
    this.clock.elapsed++
    return super.invalidateTags(tags, options)
  }
  override clear(prefix?: string) {
    this.clock.elapsed++
    return super.clear(prefix)
  }
}

const close = (a: number, b: number) => Math.abs(a - b) < 1e-9

t.test(
  'a scrape after known traffic: outcomes, handler and store seconds, stores, evictions, purges',
  async (t) => {
    const cacheClock = manualClock()
    // The metrics' clock: a handler run takes 250 ms on it, a store call 1 ms, nothing else any time.
    const metricsClock = { elapsed: 0 }
    const store = new TimedStore(metricsClock, { maxEntries: 4, now: cacheClock.now })
    const slow = gate()
    const origin = counted(async (req, res) => {
      if (req.url === '/slow') await slow.promise
      metricsClock.elapsed += 250
      res.cacheFor = 10
      // /e must be revalidated once stale (no stale window); every response keeps its ETag.
      if (req.url === '/e') res.setHeader('cache-control', 'must-revalidate')
      res.setHeader('etag', '"v1"')
      res.tags = ['all']
      return `body of ${req.url}`
    })
    const app = accelerate(origin, {
      store,
      now: cacheClock.now,
      key: (req) => req.url,
      staleWhileRevalidate: 30,
    })
    const registry = new Registry()
    t.teardown(registerMetrics(app, registry, { now: () => metricsClock.elapsed }))
    const url = await listen(t, app)
    const metrics = (await listen(t, metricsListener(registry))) + '/metrics'

    await request(url + '/a') // miss: get, checkpoint, set (10 body bytes)
    await request(url + '/e') // miss: get, checkpoint, set
    await request(url + '/a') // hit: get
    await request(url + '/a', { headers: { 'if-none-match': '"v1"' } }) // not-modified: get
    await request(url + '/a', { method: 'POST' }) // bypass: no store call
    await request(url + '/none', { headers: { 'cache-control': 'only-if-cached' } }) // 504: get
    cacheClock.advance(15_000)
    // stale: get; its background refresh revalidates (the ETag matches): checkpoint, set.
    await request(url + '/a')
    await eventually(() => app.stats().stores === 3, 'the background refresh renewed /a')
    await request(url + '/e') // revalidated in the foreground: get, checkpoint, set
    const leader = request(url + '/slow') // miss: get, checkpoint, set (13 bytes)
    await eventually(() => origin.calls === 5, 'the leader runs the handler')
    const waiter = request(url + '/slow') // waits on the leader: get, then a hit from its generation
    await eventually(() => app.stats().coalesced === 1, 'the second request waits')
    slow.open()
    await Promise.all([leader, waiter])
    await request(url + '/b') // miss: get, checkpoint, set; 4 entries now
    await request(url + '/c') // miss: get, checkpoint, set, evicting /a (the least recently used)

    const before = await scrape(metrics)
    t.same(family(before, 'accelerator_responses_total'), {
      'accelerator_responses_total{outcome="hit"}': 2,
      'accelerator_responses_total{outcome="not-modified"}': 1,
      'accelerator_responses_total{outcome="stale"}': 1,
      'accelerator_responses_total{outcome="miss"}': 5,
      'accelerator_responses_total{outcome="revalidated"}': 1,
      'accelerator_responses_total{outcome="bypass"}': 1,
      'accelerator_responses_total{outcome="only-if-cached"}': 1,
    })
    const handler = family(before, 'accelerator_handler_duration_seconds')
    // Each run: 250 ms in the handler, 1 ms each for its checkpoint and set; the leader of /slow
    // also spans its waiter's lookup (1 ms).
    t.equal(
      handler['accelerator_handler_duration_seconds_count{kind="request"}'],
      6,
      'six runs for requests',
    )
    t.ok(
      close(
        handler['accelerator_handler_duration_seconds_sum{kind="request"}']!,
        5 * 0.252 + 0.253,
      ),
      'their seconds',
    )
    t.equal(handler['accelerator_handler_duration_seconds_bucket{kind="request",le="0.25"}'], 0)
    t.equal(handler['accelerator_handler_duration_seconds_bucket{kind="request",le="0.5"}'], 6)
    t.equal(
      handler['accelerator_handler_duration_seconds_count{kind="refresh"}'],
      1,
      'one background refresh',
    )
    t.ok(close(handler['accelerator_handler_duration_seconds_sum{kind="refresh"}']!, 0.252))
    const storeCalls = family(before, 'accelerator_store_duration_seconds')
    const calls = { get: 11, checkpoint: 7, set: 7, delete: 0, invalidateTags: 0, clear: 0 }
    for (const [op, count] of Object.entries(calls)) {
      t.equal(
        storeCalls[`accelerator_store_duration_seconds_count{op="${op}"}`],
        count,
        `${op}: ${count} calls`,
      )
      t.ok(
        close(storeCalls[`accelerator_store_duration_seconds_sum{op="${op}"}`]!, count * 0.001),
        `${op}: 1 ms each`,
      )
      t.equal(storeCalls[`accelerator_store_duration_seconds_bucket{le="0.001",op="${op}"}`], count)
      t.equal(storeCalls[`accelerator_store_duration_seconds_bucket{le="0.0005",op="${op}"}`], 0)
      t.equal(before.get(`accelerator_store_errors_total{op="${op}"}`), 0)
    }
    // Stored: /a, /e, /a renewed, /e renewed, /slow, /b, /c.
    t.equal(before.get('accelerator_stored_total'), 7)
    t.equal(before.get('accelerator_stored_bytes_total'), 6 * 10 + 13)
    t.equal(before.get('accelerator_evictions_total'), 1)
    t.equal(before.get('accelerator_coalesced_total'), 1)
    t.equal(before.get('accelerator_errors_total'), 0)
    t.equal(before.get('accelerator_store_entries'), 4)
    t.equal(before.get('accelerator_store_bytes'), store.size().bytes)
    t.ok(before.get('accelerator_store_bytes')! > 4 * 10, 'bodies, headers, keys and tags')
    for (const kind of ['tags', 'soft-tags', 'url', 'clear']) {
      t.equal(before.get(`accelerator_invalidations_total{kind="${kind}"}`), 0)
    }

    t.equal(await app.invalidateTags(['all'], { soft: true }), 4)
    t.equal(await app.invalidateTags(['all']), 4)
    t.equal(await app.invalidate('/b'), 0, 'already dropped')
    await app.clear()
    await t.rejects(app.invalidateTags(42 as never), TypeError, 'refused: not counted')
    const after = await scrape(metrics)
    t.same(family(after, 'accelerator_invalidations_total'), {
      'accelerator_invalidations_total{kind="tags"}': 1,
      'accelerator_invalidations_total{kind="soft-tags"}': 1,
      'accelerator_invalidations_total{kind="url"}': 1,
      'accelerator_invalidations_total{kind="clear"}': 1,
    })
    t.same(family(after, 'accelerator_invalidated_entries_total'), {
      'accelerator_invalidated_entries_total{kind="tags"}': 4,
      'accelerator_invalidated_entries_total{kind="soft-tags"}': 4,
      'accelerator_invalidated_entries_total{kind="url"}': 0,
      'accelerator_invalidated_entries_total{kind="clear"}': 0,
    })
    // A path alone is one tag invalidation in the store (docs/invalidation.md, "Invalidating by URL").
    t.equal(after.get('accelerator_store_duration_seconds_count{op="invalidateTags"}'), 3)
    t.equal(after.get('accelerator_store_duration_seconds_count{op="clear"}'), 1)
    t.equal(after.get('accelerator_store_entries'), 0)
    t.equal(after.get('accelerator_store_bytes'), 0)
    t.equal(after.get('accelerator_stored_total'), 7, 'a counter read again is not counted twice')
  },
)

t.test(
  'store errors by operation; a store that does not know its size has no size metrics',
  async (t) => {
    const store = new FailingStore()
    const app = accelerate(
      (_req, res) => {
        res.cacheFor = 10
        return 'body'
      },
      { store, onError: () => {} },
    )
    const registry = new Registry()
    t.teardown(registerMetrics(app, registry))
    const url = await listen(t, app)
    store.failing.add('get')
    await request(url + '/')
    store.failing.clear()
    store.failing.add('set')
    await request(url + '/')
    const samples = await scrape((await listen(t, metricsListener(registry))) + '/metrics')
    t.equal(samples.get('accelerator_store_errors_total{op="get"}'), 1)
    t.equal(samples.get('accelerator_store_errors_total{op="set"}'), 1)
    t.equal(samples.get('accelerator_store_errors_total{op="checkpoint"}'), 0)
    t.equal(
      samples.get('accelerator_store_duration_seconds_count{op="get"}'),
      2,
      'failed calls are timed too',
    )
    t.equal(samples.get('accelerator_errors_total'), 2, 'both reported to onError')
    t.equal(samples.get('accelerator_responses_total{outcome="miss"}'), 2, 'both served')
    t.notOk(samples.has('accelerator_store_entries'))
    t.notOk(samples.has('accelerator_store_bytes'))
  },
)

t.test('on a real Redis: its calls, their failures once it is gone, no size metrics', async (t) => {
  const server = await startRedis(t)
  const store = new RedisStore({ url: server.url })
  t.teardown(() => store.close())
  await store.ready()
  const errors: string[] = []
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    return 'body'
  })
  const app = accelerate(origin, { store, onError: (_err, { op }) => errors.push(op) })
  const registry = new Registry()
  t.teardown(registerMetrics(app, registry))
  const url = await listen(t, app)
  await request(url + '/') // miss: get, checkpoint, set
  await eventually(() => app.stats().stores === 1, 'stored in Redis')
  await request(url + '/') // hit: get
  await server.kill()
  t.equal(
    (await request(url + '/')).text,
    'body',
    'served without the store: get fails, nothing more asked',
  )
  const samples = await scrape((await listen(t, metricsListener(registry))) + '/metrics')
  t.same(errors, ['get'])
  t.equal(origin.calls, 2)
  t.equal(samples.get('accelerator_store_duration_seconds_count{op="get"}'), 3)
  t.equal(samples.get('accelerator_store_duration_seconds_count{op="checkpoint"}'), 1)
  t.equal(samples.get('accelerator_store_duration_seconds_count{op="set"}'), 1)
  t.equal(samples.get('accelerator_store_errors_total{op="get"}'), 1)
  t.equal(samples.get('accelerator_store_errors_total{op="set"}'), 0)
  t.same(
    ['miss', 'hit'].map((outcome) =>
      samples.get(`accelerator_responses_total{outcome="${outcome}"}`),
    ),
    [2, 1],
  )
  t.equal(samples.get('accelerator_stored_total'), 1)
  t.notOk(samples.has('accelerator_store_entries'), 'Redis does not say its size')
})

t.test(
  'metrics keep to their accelerator; unregistering stops counting and removes them',
  async (t) => {
    const handler = () => 'body'
    const one = accelerate(handler)
    const two = accelerate(handler)
    const registry = new Registry()
    const unregister = registerMetrics(one, registry)
    const otherRegistry = new Registry()
    t.teardown(registerMetrics(two, otherRegistry))
    const oneUrl = await listen(t, one)
    const twoUrl = await listen(t, two)
    const scrapeUrl = (await listen(t, metricsListener(registry))) + '/metrics'
    await request(oneUrl + '/')
    await request(twoUrl + '/')
    await request(twoUrl + '/')
    t.equal((await scrape(scrapeUrl)).get('accelerator_responses_total{outcome="miss"}'), 1)
    const already = /registry already has an accelerator's metrics; give each .* new Registry\(\)/
    t.throws(() => registerMetrics(two, registry), already)
    unregister()
    unregister()
    t.equal((await scrape(scrapeUrl)).size, 0, 'removed from the registry')
    await request(oneUrl + '/')
    const again = registerMetrics(one, registry)
    t.teardown(again)
    t.equal(
      (await scrape(scrapeUrl)).get('accelerator_responses_total{outcome="miss"}'),
      0,
      'registered anew, from zero',
    )
    t.equal(
      (await scrape(scrapeUrl)).get('accelerator_stored_total'),
      0,
      'nothing was stored (no opt-in)',
    )
  },
)

t.test('bad arguments are TypeErrors naming them', async (t) => {
  t.throws(() => registerMetrics({} as never), {
    name: 'TypeError',
    message: /^expected accelerator to be what accelerate\(\) returns, got /,
  })
  t.throws(
    () =>
      registerMetrics(
        accelerate(() => 'x'),
        'default' as never,
      ),
    {
      name: 'TypeError',
      message: /^expected registry to be a prom-client Registry, got .*default/,
    },
  )
  t.throws(
    () =>
      registerMetrics(
        accelerate(() => 'x'),
        new Registry(),
        { now: 5 as never },
      ),
    {
      name: 'TypeError',
      message: 'expected options.now to be a function returning milliseconds, got 5',
    },
  )
  const app = accelerate(() => 'x')
  t.throws(() => registerMetrics(app, new Registry(), { prefix: 'x' } as never), {
    message: 'unknown option "prefix" for registerMetrics(): the only option is now',
  })
  t.throws(() => registerMetrics(app, new Registry(), 5 as never), {
    message: "expected registerMetrics()'s options to be an object, got 5",
  })
})

t.test('the default registry; HEAD; a collector that throws is a 500 that says so', async (t) => {
  const app = accelerate(() => 'x')
  t.teardown(registerMetrics(app))
  const url = (await listen(t, metricsListener())) + '/metrics'
  const get = await request(url)
  t.equal(get.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  t.equal(get.headers['cache-control'], 'no-store')
  t.match(get.text, /^accelerator_responses_total\{outcome="hit"\} 0$/m)
  const head = await request(url, { method: 'HEAD' })
  t.same([head.status, head.body.length], [200, 0])
  const registry = new Registry()
  new Gauge({
    name: 'broken',
    help: 'fails',
    registers: [registry],
    collect: () => {
      throw new Error('no value')
    },
  })
  const broken = await request((await listen(t, metricsListener(registry))) + '/metrics')
  t.same([broken.status, broken.text], [500, 'collecting metrics failed: no value\n'])
})

t.test('accelerator --metrics: the flag, and its help', async (t) => {
  const without = parseFlags(['--upstream', 'http://x']) as object
  t.same(parseFlags(['--upstream', 'http://x', '--metrics']), { ...without, metrics: true })
  t.match(USAGE, /--metrics +serve Prometheus metrics at GET \/metrics/, 'what --help prints')
})

t.test(
  'accelerator --metrics: GET /metrics on the proxy, other requests to the origin',
  async (t) => {
    const seen: string[] = []
    const origin = await listen(t, (req, res) => {
      seen.push(`${req.method} ${req.url}`)
      res.setHeader('cache-control', 's-maxage=60')
      res.end('from the origin')
    })
    const config = { upstream: new URL(origin), port: 0, host: '127.0.0.1', maxBytes: 1 << 20 }
    const proxy = await startProxy(
      { ...config, keepSurrogateHeaders: false, log: false, metrics: true },
      () => {},
    )
    t.teardown(() => proxy.close())
    await request(proxy.url + '/page')
    await request(proxy.url + '/page')
    await request(proxy.url + '/metrics', { method: 'POST' })
    await request(proxy.url + '/metrics/x')
    const samples = await scrape(proxy.url + '/metrics?x=1')
    t.equal(samples.get('accelerator_responses_total{outcome="miss"}'), 2, '/page, /metrics/x')
    t.equal(samples.get('accelerator_responses_total{outcome="hit"}'), 1)
    t.equal(samples.get('accelerator_responses_total{outcome="bypass"}'), 1, 'the POST')
    t.same(seen, ['GET /page', 'POST /metrics', 'GET /metrics/x'])
  },
)

t.test('--metrics without prom-client says what to install', async (t) => {
  const missing = Object.assign(new Error("Cannot find package 'prom-client'"), {
    code: 'ERR_MODULE_NOT_FOUND',
  })
  await t.rejects(
    loadMetrics(() => Promise.reject(missing)),
    {
      message:
        '--metrics needs prom-client (an optional peer dependency): run "npm install prom-client" ' +
        "(Cannot find package 'prom-client')",
    },
  )
  t.type((await loadMetrics()).registerMetrics, 'function')
})
