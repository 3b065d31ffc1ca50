// Tracing through node:diagnostics_channel, tested by subscribing: one response message per
// response with its key and outcome, a trace around each generation (its async context reaching the
// handler), traces around store calls and invalidations, MemoryStore evictions, each message
// naming its accelerator; and the OpenTelemetry-style subscriber of docs/operations.md.
import t, { type Test } from 'tap'
import { AsyncLocalStorage } from 'node:async_hooks'
import { createRequire } from 'node:module'
import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { accelerate, MemoryStore, type Accelerator } from '../src/index.js'
import {
  CHANNELS,
  type EvictMessage,
  type GenerateContext,
  type InvalidateContext,
  type ResponseMessage,
  type StoreContext,
} from '../src/core/diagnostics.js'
import { counted, eventually, gate, listen, manualClock, request } from './fixtures/http.js'
import { FailingStore } from './fixtures/failing-store.js'
import { startProxy } from '../src/proxy/cli.js'

/** Every message published on a channel while the test runs. */
function collect<M>(t: Test, name: string, each?: (message: M) => void): M[] {
  const messages: M[] = []
  const onMessage = (message: unknown) => {
    each?.(message as M)
    messages.push(message as M)
  }
  subscribe(name, onMessage)
  t.teardown(() => void unsubscribe(name, onMessage))
  return messages
}

type Event = 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error'

/** Every event of a TracingChannel while the test runs, in order, with its context. */
function trace<C>(t: Test, name: string): Array<{ event: Event; context: C }> {
  const events: Array<{ event: Event; context: C }> = []
  const on = (event: Event) => (context: unknown) =>
    void events.push({ event, context: context as C })
  const handlers = {
    start: on('start'),
    end: on('end'),
    asyncStart: on('asyncStart'),
    asyncEnd: on('asyncEnd'),
    error: on('error'),
  }
  tracingChannel(name).subscribe(handlers as never)
  t.teardown(() => void tracingChannel(name).unsubscribe(handlers as never))
  return events
}

/** What a response message says, without the objects. */
const said = ({ key, outcome }: ResponseMessage) => ({ key, outcome })

t.test('one response message per response: its key and its Cache-Status outcome', async (t) => {
  const clock = manualClock()
  const slow = gate()
  const origin = counted(async (req, res) => {
    res.cacheFor = 10
    if (req.url === '/slow') await slow.promise
    // /etag must be revalidated once stale (no stale window): the handler keeps its ETag.
    if (req.url === '/etag') res.setHeader('cache-control', 'must-revalidate')
    res.setHeader('etag', '"v1"')
    return `body of ${req.url}`
  })
  const app = accelerate(origin, {
    now: clock.now,
    key: (req) => req.url,
    staleWhileRevalidate: 30,
  })
  const other = accelerate(() => 'other', { key: (req) => req.url })
  // Published before the response's headers go out: a subscriber can still add to its span.
  const headersSent: boolean[] = []
  const messages = collect<ResponseMessage>(t, CHANNELS.response, ({ res }) =>
    headersSent.push(res.headersSent),
  )
  const url = await listen(t, app)
  const otherUrl = await listen(t, other)

  const statuses: Array<string | undefined> = []
  const send = async (path: string, options?: Parameters<typeof request>[1]) => {
    const reply = await request(url + path, options)
    statuses.push(reply.headers['cache-status'] as string | undefined)
    return reply
  }
  await send('/page')
  await send('/etag')
  await send('/page')
  await send('/page', { headers: { 'if-none-match': '"v1"' } })
  await send('/page', { headers: { range: 'bytes=0-3' } })
  await send('/page', { method: 'POST' })
  await send('/none', { headers: { 'cache-control': 'only-if-cached' } })
  clock.advance(15_000)
  await send('/page')
  await eventually(
    () => app.stats().refreshes === 1 && app.stats().stores === 3,
    'the background refresh stored /page',
  )
  await send('/etag')
  // Two requests for /slow at once: the second waits on the first's generation and is served from it.
  const leader = send('/slow')
  // After /page, /etag, the refresh of /page and the revalidation of /etag:
  await eventually(() => origin.calls === 5, 'the leader runs the handler')
  const waiter = send('/slow')
  await eventually(() => app.stats().coalesced === 1, 'the second request waits')
  slow.open()
  await Promise.all([leader, waiter])
  await request(otherUrl + '/x')

  const mine = messages.filter((message) => message.accelerator === app)
  t.same(mine.map(said), [
    { key: '/page', outcome: 'miss' },
    { key: '/etag', outcome: 'miss' },
    { key: '/page', outcome: 'hit' },
    { key: '/page', outcome: 'not-modified' },
    { key: '/page', outcome: 'hit' },
    { key: undefined, outcome: 'bypass' },
    { key: '/none', outcome: 'only-if-cached' },
    { key: '/page', outcome: 'stale' },
    { key: '/etag', outcome: 'revalidated' },
    { key: '/slow', outcome: 'miss' },
    { key: '/slow', outcome: 'hit' },
  ])
  t.same(
    statuses.slice(0, 9),
    [
      'node-accelerator; fwd=miss; stored',
      'node-accelerator; fwd=miss; stored',
      'node-accelerator; hit; ttl=10',
      'node-accelerator; hit; ttl=10',
      'node-accelerator; hit; ttl=10',
      undefined,
      'node-accelerator; detail=only-if-cached',
      'node-accelerator; hit; ttl=-5; detail=stale-while-revalidate',
      'node-accelerator; fwd=stale; fwd-status=304; stored; ttl=10',
    ],
    'each outcome is what Cache-Status says',
  )
  const others = messages.filter((message) => message.accelerator === other)
  t.same(others.map(said), [{ key: '/x', outcome: 'miss' }], "the other accelerator's own")
  t.equal(messages.length, mine.length + 1, 'the background refresh answers no client: no message')
  t.ok(
    mine.every(({ req, res }) => req.url !== undefined && res.req === req),
    'with its req and res',
  )
  t.same(
    headersSent,
    messages.map(() => false),
    'each before its headers were sent',
  )
})

t.test(
  'stale-if-error: the stale entry served when the handler fails is a stale outcome',
  async (t) => {
    const clock = manualClock()
    const origin = counted((_req, res) => {
      if (origin.calls > 1) throw new Error('down')
      res.cacheFor = 10
      return 'v1'
    })
    const app = accelerate(origin, {
      now: clock.now,
      key: (req) => req.url,
      staleIfError: 60,
      onError: () => {},
    })
    const headersSent: boolean[] = []
    const messages = collect<ResponseMessage>(t, CHANNELS.response, ({ res }) =>
      headersSent.push(res.headersSent),
    )
    const url = await listen(t, app)
    await request(url + '/')
    clock.advance(20_000)
    const reply = await request(url + '/')
    t.equal(reply.text, 'v1')
    t.same(messages.map(said), [
      { key: '/', outcome: 'miss' },
      { key: '/', outcome: 'stale' },
    ])
    t.same(headersSent, [false, false])
  },
)

t.test(
  'a trace around each generation: its context reaches the handler, background refreshes say so',
  async (t) => {
    const clock = manualClock()
    const seen: Array<string | undefined> = []
    const context = new AsyncLocalStorage<GenerateContext>()
    const { start } = tracingChannel<unknown, GenerateContext>(CHANNELS.generate)
    // As an OpenTelemetry subscriber would make a generation's span the active one for the handler.
    start.bindStore(context, (generation) => generation)
    t.teardown(() => void start.unbindStore(context))
    const events = trace<GenerateContext>(t, CHANNELS.generate)
    const app = accelerate(
      (req, res) => {
        seen.push(context.getStore()?.key)
        res.cacheFor = 10
        return 'body'
      },
      { now: clock.now, key: (req) => req.url, staleWhileRevalidate: 30 },
    )
    const url = await listen(t, app)
    await request(url + '/a')
    await request(url + '/a')
    clock.advance(15_000)
    await request(url + '/a')
    await eventually(
      () => events.filter(({ event }) => event === 'asyncEnd').length === 2,
      'the refresh is over',
    )
    t.same(
      seen,
      ['/a', '/a'],
      "the handler runs inside its generation's context, twice: the hit runs nothing",
    )
    t.same(
      events.map(({ event, context: { key, background } }) => ({ event, key, background })),
      [
        { event: 'start', key: '/a', background: false },
        { event: 'end', key: '/a', background: false },
        { event: 'asyncStart', key: '/a', background: false },
        { event: 'asyncEnd', key: '/a', background: false },
        { event: 'start', key: '/a', background: true },
        { event: 'end', key: '/a', background: true },
        { event: 'asyncStart', key: '/a', background: true },
        { event: 'asyncEnd', key: '/a', background: true },
      ],
    )
    t.ok(events.every(({ context }) => context.accelerator === app && context.req !== undefined))
    t.equal(app.stats().stores, 2, 'the generation was over (stored) by its asyncEnd')
  },
)

t.test(
  'a trace around each store call: operation, key, result, and the errors of a failing store',
  async (t) => {
    const store = new FailingStore()
    const errors: string[] = []
    const app = accelerate(
      (_req, res) => {
        res.cacheFor = 10
        res.tags = ['t']
        return 'body'
      },
      {
        store,
        key: (req) => req.url,
        onError: (err, { op }) => errors.push(`${op}: ${err.message}`),
      },
    )
    const events = trace<StoreContext>(t, CHANNELS.store)
    const url = await listen(t, app)
    await request(url + '/a')
    await request(url + '/a')
    store.failing.add('get')
    await request(url + '/a')
    store.failing.clear()
    await app.invalidateTags(['t'])
    await app.invalidateTags(['t'], { soft: true })
    await app.clear()
    const ends = events.filter(({ event }) => event === 'asyncEnd').map(({ context }) => context)
    t.same(
      ends.map(({ op, key, result, error }) => ({ op, key, result, failed: error !== undefined })),
      [
        { op: 'get', key: '/a', result: undefined, failed: false },
        { op: 'checkpoint', key: undefined, result: 0, failed: false },
        { op: 'set', key: '/a', result: true, failed: false },
        { op: 'get', key: '/a', result: ends[3]!.result, failed: false },
        { op: 'get', key: '/a', result: undefined, failed: true }, // a miss without the store: nothing more asked
        { op: 'invalidateTags', key: undefined, result: 1, failed: false },
        { op: 'invalidateTags', key: undefined, result: 0, failed: false },
        { op: 'clear', key: undefined, result: undefined, failed: false },
      ],
    )
    t.equal(ends[2]!.entry?.body.toString(), 'body', 'set carries the entry')
    t.same(
      [ends[5]!.tags, ends[5]!.soft, ends[6]!.soft, ends[7]!.keyPrefix],
      [['t'], false, true, ''],
    )
    t.same(
      events.filter(({ event }) => event === 'error').map(({ context }) => context.op),
      ['get'],
    )
    t.same(
      errors,
      ['get: get failed on purpose'],
      'the failure went to onError too; the request was served',
    )
    t.ok(events.every(({ context }) => context.accelerator === app))
    t.equal(
      app.stats().entries,
      undefined,
      'a store without size() has none through the accelerator either',
    )
  },
)

t.test('a trace around each invalidation: its kind, what it names, how many entries', async (t) => {
  const app = accelerate(
    (_req, res) => {
      res.cacheFor = 10
      res.tags = ['t', 'u']
      return 'body'
    },
    { key: (req) => req.url },
  )
  const events = trace<InvalidateContext>(t, CHANNELS.invalidate)
  const url = await listen(t, app)
  await request(url + '/a')
  await request(url + '/b')
  t.equal(await app.invalidateTags(['t'], { soft: true }), 2)
  t.equal(await app.invalidateTags(['u']), 2)
  await request(url + '/a')
  t.equal(await app.invalidate('/a'), 1)
  await app.clear()
  await t.rejects(app.invalidateTags(42 as never), TypeError)
  const ends = events.filter(({ event }) => event === 'asyncEnd').map(({ context }) => context)
  t.same(
    ends.map(({ kind, tags, url, result }) => ({ kind, tags, url, result })),
    [
      { kind: 'soft-tags', tags: ['t'], url: undefined, result: 2 },
      { kind: 'tags', tags: ['u'], url: undefined, result: 2 },
      { kind: 'url', tags: undefined, url: '/a', result: 1 },
      { kind: 'clear', tags: undefined, url: undefined, result: undefined },
      { kind: 'tags', tags: 42, url: undefined, result: undefined },
    ],
  )
  t.type(ends[4]!.error, TypeError, 'a refused invalidation is an error event')
  t.ok(events.every(({ context }) => context.accelerator === app))
})

t.test(
  'MemoryStore evictions: each entry dropped for room, for bytes or for entries',
  async (t) => {
    const messages = collect<EvictMessage>(t, CHANNELS.evict)
    const byCount = new MemoryStore({ maxEntries: 1 })
    const handler = (_req: IncomingMessage, res: ServerResponse & { cacheFor?: number }) => {
      res.cacheFor = 10
      return 'x'.repeat(1000)
    }
    const counting = await listen(t, accelerate(handler, { store: byCount, key: (req) => req.url }))
    // Room for two entries of this size (each counts its body, headers and overhead: see memory.ts).
    const probe = new MemoryStore()
    await request(
      (await listen(t, accelerate(handler, { store: probe, key: (req) => req.url }))) + '/a',
    )
    const byBytes = new MemoryStore({ maxBytes: Math.floor(probe.size().bytes * 2.5) })
    const sizing = await listen(t, accelerate(handler, { store: byBytes, key: (req) => req.url }))
    for (const path of ['/a', '/b', '/c']) await request(counting + path)
    for (const path of ['/a', '/b', '/c']) await request(sizing + path)
    t.same(
      messages.map(({ store, key }) => ({ byCount: store === byCount, key })),
      [
        { byCount: true, key: '/a' },
        { byCount: true, key: '/b' },
        { byCount: false, key: '/a' },
      ],
    )
    t.ok(
      messages.every(({ bytes }) => bytes > 1000),
      'with the bytes each counted for',
    )
  },
)

t.test('nobody subscribing: nothing is traced, the store is called as it is', async (t) => {
  const store = new FailingStore()
  const app = accelerate(
    (_req, res) => {
      res.cacheFor = 10
      return 'body'
    },
    { store },
  )
  const url = await listen(t, app)
  t.notOk(tracingChannel(CHANNELS.store).hasSubscribers)
  await request(url + '/')
  t.equal((await request(url + '/')).text, 'body')
  t.match(app.stats(), { hits: 1, misses: 1, stores: 1 })
})

t.test(
  "docs/operations.md: the cache outcome on each request's HTTP server span, waiters included",
  async (t) => {
    // What OpenTelemetry's HTTP instrumentation gives: a span per incoming request (its requestHook
    // is where docs/operations.md's example keeps the span by request).
    const spans = new WeakMap<IncomingMessage, { attributes: Record<string, unknown> }>()
    const onResponse = (message: unknown) => {
      const { req, outcome } = message as ResponseMessage
      const span = spans.get(req)
      if (span) span.attributes['http.cache.outcome'] ??= outcome
    }
    subscribe(CHANNELS.response, onResponse)
    t.teardown(() => void unsubscribe(CHANNELS.response, onResponse))
    const slow = gate()
    const origin = counted(async (_req, res) => {
      res.cacheFor = 10
      await slow.promise
      return 'body'
    })
    const app: Accelerator = accelerate(origin)
    const recorded: Array<{ attributes: Record<string, unknown> }> = []
    const url = await listen(t, (req, res) => {
      const span = { attributes: {} }
      recorded.push(span)
      spans.set(req, span)
      app(req, res)
    })
    const first = request(url + '/')
    await eventually(() => origin.calls === 1, 'the first request runs the handler')
    const second = request(url + '/')
    await eventually(() => app.stats().coalesced === 1, 'the second waits on it')
    slow.open()
    await Promise.all([first, second])
    await request(url + '/', { method: 'DELETE' })
    await request(url + '/')
    t.same(
      recorded.map(({ attributes }) => attributes['http.cache.outcome']),
      ['miss', 'hit', 'bypass', 'hit'],
    )
  },
)

t.test('neither the core nor the proxy without --metrics loads prom-client', async (t) => {
  const origin = await listen(t, (_req, res) => res.end('origin'))
  const config = { upstream: new URL(origin), port: 0, host: '127.0.0.1', maxBytes: 1 << 20 }
  const proxy = await startProxy({ ...config, keepSurrogateHeaders: false, log: false }, () => {})
  t.teardown(() => proxy.close())
  t.equal((await request(proxy.url + '/metrics')).text, 'origin', "/metrics is the origin's")
  // prom-client is CommonJS: loading it, from ESM too, puts it in require's cache.
  const loaded = Object.keys(createRequire(import.meta.url).cache)
  t.notOk(
    loaded.some((path) => path.includes('prom-client')),
    'not loaded',
  )
  t.ok(loaded.length > 0, 'the cache is where CommonJS modules show')
})
