// Options: TypeErrors naming a bad option, unless, key, namespace, onError and fail-open
// stores, res.locals, close().
import t from 'tap'
import { accelerate, MemoryStore, NullStore } from '../../src/index.js'
import { logOncePerBurst } from '../../src/core/report.js'
import { FailingStore } from '../fixtures/failing-store.js'
import { counted, gate, listen, manualClock, request, settle } from '../fixtures/http.js'

const ok = () => 'x'

t.test('bad options throw a TypeError naming the option and what it got', async (t) => {
  const cases: Array<[unknown, string | RegExp]> = [
    [null, 'expected options to be an object, got null'],
    [{ store: {} }, 'expected options.store to have get(), got undefined'],
    [
      {
        store: {
          ...new MemoryStore(),
          get() {},
          checkpoint() {},
          set() {},
          delete() {},
          invalidateTags() {},
          clear() {},
        },
      },
      'expected options.store to have close(), got undefined',
    ],
    [{ namespace: 7 }, 'expected options.namespace to be a string without NUL characters, got 7'],
    [
      { namespace: 'a\u0000b' },
      'expected options.namespace to be a string without NUL characters, got "a\\u0000b"',
    ],
    [{ key: 'url' }, 'expected options.key to be a function, got "url"'],
    [{ unless: true }, 'expected options.unless to be a function, got true'],
    [{ onError: {} }, 'expected options.onError to be a function, got an object'],
    [{ now: 5 }, 'expected options.now to be a function, got 5'],
    [
      { defaultCacheFor: -1 },
      'expected options.defaultCacheFor to be a number of seconds >= 0, got -1',
    ],
    [
      { staleWhileRevalidate: '10' },
      'expected options.staleWhileRevalidate to be a number of seconds >= 0, got "10"',
    ],
    [
      { staleIfError: Infinity },
      'expected options.staleIfError to be a number of seconds >= 0, got Infinity',
    ],
    [{ honorCacheControl: 'yes' }, 'expected options.honorCacheControl to be a boolean, got "yes"'],
    [{ xCache: 1 }, 'expected options.xCache to be a boolean, got 1'],
    [{ maxEntryBytes: 1.5 }, 'expected options.maxEntryBytes to be a positive integer, got 1.5'],
    [{ maxEntryBytes: 0 }, 'expected options.maxEntryBytes to be a positive integer, got 0'],
    [
      { backgroundConcurrency: 0 },
      'expected options.backgroundConcurrency to be a positive integer, got 0',
    ],
    [
      { coalesceTimeoutMs: -1 },
      'expected options.coalesceTimeoutMs to be a whole number of milliseconds, got -1',
    ],
    [
      { cacheableStatuses: [200, 'x'] },
      'expected options.cacheableStatuses to be an iterable of status codes, got [200, "x"]',
    ],
    [
      { cacheableStatuses: 200 },
      'expected options.cacheableStatuses to be an iterable of status codes, got 200',
    ],
    [
      { cacheableStatuses: [99] },
      'expected options.cacheableStatuses to be an iterable of status codes, got [99]',
    ],
    [
      { statusHeader: 'Cache Status' },
      'expected options.statusHeader to be a header name or false, got "Cache Status"',
    ],
    [
      { statusHeader: true },
      'expected options.statusHeader to be a header name or false, got true',
    ],
    [
      { statusHeader: () => 'x' },
      'expected options.statusHeader to be a header name or false, got a function',
    ],
    // Unknown options: a misspelling would otherwise store nothing and say nothing.
    [
      { ttl: 60 },
      'unknown option "ttl" for accelerate(): did you mean res.cacheFor = seconds in the handler, or defaultCacheFor for every response?',
    ],
    [
      { max_bytes: 1e6 },
      'unknown option "max_bytes" for accelerate(): did you mean store: new MemoryStore({ maxBytes }) (the size is the store\'s)?',
    ],
    [
      { redis: 'redis://x' },
      'unknown option "redis" for accelerate(): did you mean store: new RedisStore({ url }) from node-accelerator/redis?',
    ],
    [
      { stale_if_error: 60 },
      'unknown option "stale_if_error" for accelerate(): did you mean staleIfError?',
    ],
    [
      { defaultCacheForEverything: 60 },
      /^unknown option "defaultCacheForEverything" for accelerate\(\): the options are store, namespace, key, unless, defaultCacheFor, /,
    ],
  ]
  for (const [options, message] of cases)
    t.throws(() => accelerate(ok, options as never), { name: 'TypeError', message })
  t.throws(() => accelerate('handler' as never), {
    name: 'TypeError',
    message: 'expected handler to be a function, got "handler"',
  })
  t.throws(() => accelerate(ok, { namespace: 'x'.repeat(50) + '\u0000' }), {
    message: /got "x{40}…"$/,
  })
  t.throws(() => accelerate(ok, { cacheableStatuses: [1, 2, 3, 4, 5, 6] }), {
    message: /got \[1, 2, 3, 4, 5, …\]$/,
  })
  t.doesNotThrow(() =>
    accelerate(ok, { cacheableStatuses: new Set([200]), statusHeader: false, namespace: 'n' }),
  )
})

t.test('unless(req) passes a request straight through', async (t) => {
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    res.end('x')
  })
  const app = accelerate(origin, { unless: (req) => req.url!.startsWith('/admin') })
  const url = await listen(t, app)
  const first = await request(url + '/admin/panel')
  await request(url + '/admin/panel')
  t.equal(origin.calls, 2)
  t.equal(first.headers['cache-status'], undefined)
  t.equal(app.stats().bypasses, 2)
})

t.test('key(req) decides which requests share a response', async (t) => {
  const origin = counted((req, res) => {
    res.cacheFor = 60
    res.end(req.url)
  })
  const url = await listen(
    t,
    accelerate(origin, { key: (req) => new URL(req.url!, 'http://x').pathname }),
  )
  await request(url + '/p?utm_source=a')
  t.equal(
    (await request(url + '/p?utm_source=b')).text,
    '/p?utm_source=a',
    'the query is not part of this key',
  )
  t.equal(origin.calls, 1)
})

t.test('the default key: Host normalised, path and query kept', async (t) => {
  const origin = counted((req, res) => {
    res.cacheFor = 60
    res.end(`${req.headers.host} ${req.url}`)
  })
  const url = await listen(t, accelerate(origin))
  await request(url + '/h', { headers: { host: 'Example.COM.:80' } })
  t.equal(
    (await request(url + '/h', { headers: { host: 'example.com' } })).text,
    'Example.COM.:80 /h',
  )
  t.equal(
    (await request(url + '/h', { headers: { host: 'other.example' } })).text,
    'other.example /h',
    'another host, another entry',
  )
  t.equal(
    (await request(url + '/h?q', { headers: { host: 'example.com' } })).text,
    'example.com /h?q',
  )
  t.equal(origin.calls, 3)
})

t.test(
  'a key function: undefined bypasses the cache; a throw or a non-string bypasses and is reported',
  async (t) => {
    const errors: string[] = []
    const origin = counted((_req, res) => {
      res.cacheFor = 60
      return 'x'
    })
    const app = accelerate(origin, {
      key: (req) => {
        if (req.url === '/throws') throw new Error('bad key')
        if (req.url === '/number') return 42 as never
        return req.url === '/private' ? undefined : req.url
      },
      onError: (err, { op }) => errors.push(`${op}: ${err.message}`),
    })
    const url = await listen(t, app)
    for (const path of ['/throws', '/number', '/private']) {
      t.equal((await request(url + path)).text, 'x')
      t.equal(
        (await request(url + path)).headers['cache-status'],
        undefined,
        `${path}: straight through`,
      )
    }
    t.equal(origin.calls, 6)
    t.same(errors, [
      'key: bad key',
      'key: bad key',
      'key: expected options.key to return a string or undefined, got 42',
      'key: expected options.key to return a string or undefined, got 42',
    ])
    await t.rejects(app.invalidate('/private'), {
      name: 'TypeError',
      message: 'expected a URL the key function keys, got "/private" (its key: undefined)',
    })
  },
)

t.test('store failures never reach the client: get, checkpoint, set each fail open', async (t) => {
  for (const method of ['get', 'checkpoint', 'set'] as const) {
    const store = new FailingStore(method)
    const errors: string[] = []
    const origin = counted((_req, res) => {
      res.cacheFor = 60
      res.end('served')
    })
    const url = await listen(
      t,
      accelerate(origin, {
        store,
        onError: (err, { op, key }) => errors.push(`${op} ${key?.split('/')[1]}: ${err.message}`),
      }),
    )
    for (let i = 0; i < 3; i++) {
      const reply = await request(url + '/f')
      t.equal(reply.status, 200, method)
      t.equal(reply.text, 'served', method)
    }
    await settle()
    t.equal(origin.calls, 3, `${method} failing: every request is a miss`)
    t.equal(errors[0], `${method} f: ${method} failed on purpose`)
    store.failing.clear()
    await request(url + '/f')
    t.match(
      (await request(url + '/f')).headers['cache-status'],
      /hit/,
      `${method} back: caching resumes`,
    )
    await store.close()
  }
})

t.test('a failing invalidation rejects to its caller, not to any request', async (t) => {
  const store = new FailingStore('invalidateTags')
  const app = accelerate(ok, { store })
  await t.rejects(app.invalidateTags(['x']), { message: 'invalidateTags failed on purpose' })
  await store.close()
})

t.test('onError: what it throws is swallowed; errors are counted', async (t) => {
  const app = accelerate(() => Promise.reject(new Error('handler')), {
    onError: () => {
      throw new Error('onError itself')
    },
  })
  const url = await listen(t, app)
  t.equal((await request(url + '/')).status, 500)
  t.equal((await request(url + '/')).status, 500, 'still serving')
  t.equal(app.stats().errors, 2)
})

t.test('the default onError logs the first error of a burst, then a count', async (t) => {
  const clock = manualClock()
  const lines: string[] = []
  const report = logOncePerBurst(clock.now, 10_000, (line) => lines.push(line))
  report(new Error('down'), { op: 'get', key: 'k' })
  report(new Error('down'), { op: 'get', key: 'k' })
  report(new Error('down'), { op: 'set' })
  clock.advance(10_000)
  const noStack = new Error('again')
  noStack.stack = undefined
  report(noStack, { op: 'checkpoint' })
  t.equal(lines.length, 2)
  t.match(lines[0], /^node-accelerator: get failed for "k": Error: down\n/)
  t.equal(
    lines[1],
    'node-accelerator: checkpoint failed: again (2 more errors in the previous burst were not logged)',
  )
})

t.test('the default onError writes to console.error', async (t) => {
  const logged = t.capture(console, 'error')
  const url = await listen(
    t,
    accelerate(() => Promise.reject(new Error('to the console'))),
  )
  await request(url + '/')
  t.match(logged()[0]?.args[0], /^node-accelerator: handler failed: Error: to the console/)
})

t.test('a non-Error thrown by the handler is reported as an Error', async (t) => {
  const errors: Error[] = []
  const url = await listen(
    t,
    accelerate(
      () => {
        throw 'a string'
      },
      { onError: (err) => errors.push(err) },
    ),
  )
  t.equal((await request(url + '/')).status, 500)
  t.ok(errors[0] instanceof Error)
  t.equal(errors[0]?.message, 'a string')
})

t.test('res.locals exists on every response, and an existing one is kept', async (t) => {
  const seen: unknown[] = []
  const app = accelerate((_req, res) => {
    seen.push(res.locals)
    return 'x'
  })
  const url = await listen(t, (req, res) => {
    if (req.url === '/framework')
      (res as unknown as { locals: object }).locals = { framework: true }
    app(req, res)
  })
  await request(url + '/raw')
  await request(url + '/framework')
  t.same(seen, [{}, { framework: true }])
})

t.test('close() waits for pending store writes, and leaves a store passed in open', async (t) => {
  const store = new FailingStore()
  const slowWrite = gate()
  store.hold = slowWrite.promise
  const app = accelerate(
    (_req, res) => {
      res.cacheFor = 60
      return 'x'
    },
    { store },
  )
  const url = await listen(t, app)
  await request(url + '/')
  let closed = false
  const closing = app.close().then(() => (closed = true))
  await settle()
  t.equal(closed, false, 'still writing')
  slowWrite.open()
  await closing
  t.equal(app.stats().stores, 1, 'the pending write landed before close() resolved')
  t.equal(store.closed, 0, "a store passed in is the caller's to close")
  t.equal(
    await store.inner.get('127.0.0.1:' + new URL(url).port + '/').then((e) => e?.body.toString()),
    'x',
  )
  await store.close()
})

t.test(
  'close() closes the store it created, leaves no timers, and then passes requests through',
  async (t) => {
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const origin = counted((_req, res) => {
      res.cacheFor = 60
      return 'x'
    })
    const app = accelerate(origin)
    const url = await listen(t, app)
    await request(url + '/')
    t.equal(app.stats().entries, 1)
    await app.close()
    await app.close()
    t.equal(app.stats().entries, 0, 'its own MemoryStore was closed (and emptied)')
    t.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timersBefore)
    t.equal((await request(url + '/')).text, 'x', 'after close, requests pass straight through')
    await request(url + '/')
    t.equal(origin.calls, 3)
    t.equal(app.stats().bypasses, 2)
  },
)

t.test('NullStore stores nothing: every request is a miss', async (t) => {
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    return 'x'
  })
  const url = await listen(t, accelerate(origin, { store: new NullStore() }))
  await request(url + '/')
  await request(url + '/')
  t.equal(origin.calls, 2)
})

t.test(
  'a store that returns a corrupt entry: reported, and the client gets a 500, not a hang',
  async (t) => {
    const store = new FailingStore()
    const errors: string[] = []
    store.inner.get = async () => ({
      status: 200,
      headers: { 'x-bad': 'line\nbreak' },
      body: Buffer.from('x'),
      tags: [],
      storedAt: 0,
      initialAge: 0,
      staleAt: Infinity,
      expiresAt: Infinity,
    })
    const url = await listen(
      t,
      accelerate(ok, {
        store,
        onError: (err, { op }) => errors.push(`${op}: ${(err as NodeJS.ErrnoException).code}`),
      }),
    )
    const reply = await request(url + '/')
    t.equal(reply.status, 500)
    t.same(errors, ['accelerate: ERR_INVALID_CHAR'])
    await store.close()
  },
)
