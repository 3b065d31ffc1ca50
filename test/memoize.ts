// memoize(): results cached by arguments in a CacheStore, on MemoryStore and RedisStore alike:
// hits, argument keys, tags shared with a real page, single-flight, rejections, TTL, no stale
// resurrection, delete/clear, value round trips and refusals, fail-open, option errors.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { memoize, MEMOIZED_TYPE, type MemoizeOptions } from '../src/memoize/memoize.js'
import { accelerate, MemoryStore, type CacheStore, type ErrorContext } from '../src/index.js'
import { RedisStore } from '../stores/redis.js'
import { eventually, gate, listen, manualClock, request, settle } from './fixtures/http.js'
import { FailingStore } from './fixtures/failing-store.js'
import { redisUrl, startRedis, PATIENT_MS } from './fixtures/redis-server.js'

/** A fresh store for one subtest, emptied and closed at its teardown; `now` is its clock. */
type MakeStore = (t: Test, now?: () => number) => Promise<CacheStore>

/** A function that records the arguments of each run and returns them as a string. */
function recorded() {
  const runs: unknown[][] = []
  const fn = async function query(...args: unknown[]) {
    runs.push(args)
    return `run ${runs.length}`
  }
  return { fn, runs }
}

/** An onError that collects `op: message`. */
function collector() {
  const errors: string[] = []
  const onError = (err: Error, { op }: ErrorContext) => void errors.push(`${op}: ${err.message}`)
  return { errors, onError }
}

/** A page entry as the accelerator stores one. */
function page(body = 'page'): Parameters<CacheStore['set']>[1] {
  const now = Date.now()
  return {
    status: 200,
    headers: { 'content-type': 'text/plain' },
    body: Buffer.from(body),
    tags: ['post:1'],
    storedAt: now,
    initialAge: 0,
    staleAt: now + 60_000,
    expiresAt: now + 60_000,
  }
}

const roundTrips: Array<[string, unknown]> = [
  ['an object', { title: 'Hello', id: 7, draft: false, author: null }],
  ['an array', [1, 'two', [3], { four: 4 }]],
  ['nested data', { a: { b: { c: [{ d: [[], {}] }] } }, 'odd key': 1, '': 2, __proto__x: 3 }],
  ['a unicode string', 'h\u00e9llo \u{1F600} \u4e16\u754c \ud800 \u0000 "quoted" \\'],
  [
    'numbers',
    [0, -1.5, 1e-300, Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 53 + 2, 123456789012345680000],
  ],
  ['true', true],
  ['false', false],
  ['null', null],
  ['undefined', undefined],
  ['the empty string', ''],
  ['a number', 42],
]

function suite(t: Test, makeStore: MakeStore): void {
  t.test('a hit: the function runs once for two calls with the same arguments', async (t) => {
    const store = await makeStore(t)
    const { fn, runs } = recorded()
    const m = memoize(fn, { store })
    t.equal(await m(1), 'run 1')
    t.equal(await m(1), 'run 1')
    t.equal(runs.length, 1)
  })

  t.test('argument keying', async (t) => {
    const store = await makeStore(t)
    // A fresh function (namespace) per comparison: each starts with nothing stored.
    const compare = async (a: unknown[], b: unknown[], what: string, shared: boolean) => {
      const { fn, runs } = recorded()
      const m = memoize(fn, { store, namespace: what })
      t.equal(await m(...a), 'run 1', what)
      t.equal(await m(...b), shared ? 'run 1' : 'run 2', what)
      t.equal(await m(...a), 'run 1', `${what}: the first is still stored`)
      t.equal(runs.length, shared ? 1 : 2)
    }
    const same = (a: unknown[], b: unknown[], what: string) => compare(a, b, what, true)
    const differ = (a: unknown[], b: unknown[], what: string) => compare(a, b, what, false)
    await differ([1], [2], 'different arguments')
    await same([{ a: 1, b: 2 }], [{ b: 2, a: 1 }], 'object keys in any order')
    await differ([3], ['3'], 'a number is not its string')
    await differ([undefined], [null], 'undefined is not null')
    await differ([], [undefined], 'missing is not undefined')
    await differ([{ a: undefined }], [{}], 'an undefined property is not a missing one')
    await differ([{ a: null }], [{ a: undefined }], 'a null property is not an undefined one')
    await same(
      [Buffer.from('bytes')],
      [new Uint8Array(Buffer.from('bytes'))],
      'bytes by value, Buffer or Uint8Array',
    )
    await differ([Buffer.from('bytes')], [Buffer.from('bytez')], 'other bytes')
    await differ([Buffer.from('bytes')], ['bytes'], 'bytes are not a string')
    await same([new Date(5)], [new Date(5)], 'Dates by time')
    await differ([new Date(5)], [5], 'a Date is not its time')
    await same(
      [
        new Map([
          [1, 'a'],
          [2, 'b'],
        ]),
      ],
      [
        new Map([
          [2, 'b'],
          [1, 'a'],
        ]),
      ],
      'Map entries in any order',
    )
    await same([new Set(['x', 'y'])], [new Set(['y', 'x'])], 'Set members in any order')
    await differ([new Set([1])], [[1]], 'a Set is not an array')
    await differ([1n], [1], 'a bigint is not a number')
    await same([-0], [0], '-0 is 0')
    await same([NaN], [NaN], 'NaN is a key')
    await differ([Infinity], [-Infinity], 'infinities')
    await differ([true], [false], 'booleans')
    await differ([1, 2], [[1, 2]], 'two arguments are not one array')
    await differ(['a,b'], ['a', 'b'], 'a comma inside a string')
    await same(
      [Object.assign(Object.create(null) as object, { n: 1 })],
      [{ n: 1 }],
      'a null-prototype object is a plain object',
    )
    const shared = { x: 1 }
    await same(
      [[shared, shared]],
      [[{ x: 1 }, { x: 1 }]],
      'a shared (not cyclic) reference is fine',
    )
    await same(['x'.repeat(1000)], ['x'.repeat(1000)], 'a long argument (hashed)')
    await differ(
      ['x'.repeat(1000)],
      ['x'.repeat(999) + 'y'],
      'long arguments that differ at the end',
    )
  })

  t.test('tags shared with a real page: invalidating the tag drops both', async (t) => {
    const store = await makeStore(t)
    const queries: number[] = []
    const getPost = memoize(
      async function getPost(id: number) {
        queries.push(id)
        return { id, title: `post ${id}, query ${queries.length}` }
      },
      { store, tags: (id) => [`post:${id}`] },
    )
    let renders = 0
    const app = accelerate(
      async (req, res) => {
        const post = await getPost(Number(req.url!.slice(1)))
        renders++
        res.cacheFor = 60
        res.tags = [`post:${post.id}`]
        res.end(`${post.title}, render ${renders}`)
      },
      { store },
    )
    const url = await listen(t, app)
    t.equal((await request(url + '/1')).text, 'post 1, query 1, render 1')
    t.equal((await request(url + '/1')).text, 'post 1, query 1, render 1', 'the page is a hit')
    t.same(await getPost(1), { id: 1, title: 'post 1, query 1' }, 'the query is a hit')
    t.equal((await request(url + '/2')).text, 'post 2, query 2, render 2')
    t.equal(await app.invalidateTags(['post:1']), 2, 'the page and the memoized query')
    t.equal(
      (await request(url + '/1')).text,
      'post 1, query 3, render 3',
      're-rendered, the query ran again',
    )
    t.equal((await request(url + '/2')).text, 'post 2, query 2, render 2', 'post 2 untouched')
    t.equal(await store.invalidateTags(['post:2']), 2, 'through the store too')
    t.same(await getPost(2), { id: 2, title: 'post 2, query 4' })
    t.same(queries, [1, 2, 1, 2])
  })

  t.test('tags as an array; a soft invalidation also makes the function run again', async (t) => {
    const store = await makeStore(t)
    const { fn, runs } = recorded()
    const m = memoize(fn, { store, tags: ['posts'] })
    await m(1)
    await m(2)
    t.equal(await store.invalidateTags(['posts'], { soft: true }), 2)
    t.equal(await m(1), 'run 3', 'memoized values are never served stale')
    t.equal(await m(1), 'run 3')
    t.equal(runs.length, 3)
  })

  t.test('single-flight: concurrent calls share one run', async (t) => {
    const store = await makeStore(t)
    const open = gate()
    let runs = 0
    const m = memoize(
      async function slow(id: number) {
        const run = ++runs
        await open.promise
        return { id, run }
      },
      { store },
    )
    const calls = Array.from({ length: 5 }, () => m(1))
    const other = m(2)
    await eventually(() => runs === 2, 'both runs started')
    await settle()
    t.equal(runs, 2, 'one run per argument list')
    open.open()
    const results = await Promise.all(calls)
    for (const result of results) t.equal(result, results[0], 'the same value')
    t.same(results[0], { id: 1, run: 1 })
    t.same(await other, { id: 2, run: 2 })
    t.same(await m(1), { id: 1, run: 1 }, 'then stored')
    t.equal(runs, 2)
  })

  t.test('a rejection rejects every waiter with the same error and is not stored', async (t) => {
    const store = await makeStore(t)
    const open = gate()
    const err = new Error('the database is down')
    let runs = 0
    const m = memoize(
      async function flaky() {
        if (++runs === 1) {
          await open.promise
          throw err
        }
        return 'ok'
      },
      { store },
    )
    const calls = [m(), m(), m()].map((p) =>
      p.then(
        () => undefined,
        (e: unknown) => e,
      ),
    )
    open.open()
    for (const caught of await Promise.all(calls)) t.equal(caught, err, 'the same error object')
    t.equal(runs, 1)
    t.equal(await m(), 'ok', 'not cached: the next call runs again')
    t.equal(await m(), 'ok')
    t.equal(runs, 2)
    const thrower = memoize(
      function throws(): number {
        throw err
      },
      { store },
    )
    await t.rejects(thrower(), err, 'a synchronous throw rejects too')
  })

  t.test('cacheFor, with an injected clock (ttl, its old name, still works)', async (t) => {
    const clock = manualClock()
    const store = await makeStore(t, clock.now)
    const { fn, runs } = recorded()
    const m = memoize(fn, { store, cacheFor: 10, now: clock.now })
    const old = memoize(
      async function oldName(n: number) {
        return `old ${n} ${clock.now()}`
      },
      { store, ttl: 10, now: clock.now },
    )
    const first = await old(1)
    const d = memoize(
      async function byDefault() {
        return runs.push([]) // counts on the same list
      },
      { store, now: clock.now },
    )
    await m(1)
    await d()
    clock.advance(9_999)
    t.equal(await m(1), 'run 1', 'fresh until ttl')
    t.equal(runs.length, 2)
    clock.advance(1)
    t.equal(await m(1), 'run 3', 'expired at cacheFor: runs again')
    t.not(await old(1), first, 'ttl: 10 expired at 10 s as well')
    clock.advance(300_000 - 10_000 - 1)
    t.equal(await d(), 2, 'the default ttl is 300 s')
    clock.advance(1)
    t.equal(await d(), 4)
  })

  t.test('no stale resurrection: an invalidation while the function runs', async (t) => {
    const store = await makeStore(t)
    let runs = 0
    let started = gate()
    let open = gate()
    const m = memoize(
      async function racing(_id: number) {
        const n = ++runs
        started.open()
        await open.promise
        return `run ${n}`
      },
      { store, tags: ['t'] },
    )
    for (const [i, [name, invalidate]] of (
      [
        ['its tag', () => store.invalidateTags(['t'])],
        ['delete(args)', () => m.delete(1)],
        ['clear()', () => m.clear()],
      ] as const
    ).entries()) {
      runs = 0
      started = gate()
      open = gate()
      const result = m(1)
      await started.promise
      await invalidate()
      // After delete/clear a call starts a run of its own; after a tag invalidation (which
      // memoize cannot see) it shares the run under way, as any caller that came during it.
      const late = m(1)
      open.open()
      t.equal(await result, 'run 1', `${name}: the caller gets its result`)
      t.equal(await late, i === 0 ? 'run 1' : 'run 2', `${name}: a call made after it`)
      t.equal(await m(1), 'run 2', `${name}: the result of the run it interrupted was not stored`)
      t.equal(runs, 2)
      await m.clear()
    }
  })

  t.test('delete and clear', async (t) => {
    const store = await makeStore(t)
    const a = recorded()
    const b = recorded()
    const ma = memoize(a.fn, { store, namespace: 'a' })
    const mb = memoize(b.fn, { store, namespace: 'b' })
    t.ok(await store.set('example.com/page', page(), await store.checkpoint()))
    await Promise.all([ma(1), ma(2), ma({ deep: [1] }), mb(1)])
    t.equal(await ma.delete(1), 1)
    t.equal(await ma.delete(1), 0)
    t.equal(await ma(1), 'run 4', 'deleted: runs again')
    t.equal(await ma(2), 'run 2', 'the other arguments are kept')
    await ma.clear()
    t.equal(await ma(2), 'run 5')
    t.equal(await ma({ deep: [1] }), 'run 6')
    t.equal(await mb(1), 'run 1', "another function's results are kept")
    t.equal((await store.get('example.com/page'))?.body.toString(), 'page', 'pages are kept')
    await t.rejects(
      ma.delete(() => 1),
      { name: 'TypeError' },
      'delete keys its arguments the same way',
    )
  })

  t.test('values round-trip exactly', async (t) => {
    const store = await makeStore(t)
    let runs = 0
    const m = memoize(
      async function value(i: number) {
        runs++
        return roundTrips[i]![1]
      },
      { store, onError: (err) => t.fail(err.message) },
    )
    for (const [i, [name, value]] of roundTrips.entries()) {
      t.equal(await m(i), value, `${name}: the first call gets the value itself`)
      t.strictSame(await m(i), value, `${name}: the hit is equal`)
    }
    t.equal(runs, roundTrips.length, 'every one was a hit')
    const bytes = Buffer.alloc(512)
    for (let i = 0; i < 256; i++) bytes[i] = bytes[511 - i] = i
    const b = memoize(
      async function bytesOf(which: string) {
        runs++
        if (which === 'uint8') return new Uint8Array([1, 2, 3])
        return which === 'all' ? bytes : Buffer.alloc(0)
      },
      { store },
    )
    for (const [which, expected] of [
      ['all', bytes],
      ['empty', Buffer.alloc(0)],
      ['uint8', Buffer.from([1, 2, 3])],
    ] as const) {
      await b(which)
      const hit = (await b(which)) as Buffer
      t.ok(Buffer.isBuffer(hit), `${which}: a Buffer`)
      t.ok(hit.equals(expected), `${which}: the same bytes`)
      hit.fill(9)
      t.ok(
        ((await b(which)) as Buffer).equals(expected),
        `${which}: a copy, mutating it changes nothing stored`,
      )
    }
    t.equal(runs, roundTrips.length + 3)
    const zero = memoize(
      async function negativeZero() {
        return -0
      },
      { store },
    )
    t.ok(Object.is(await zero(), -0))
    t.ok(Object.is(await zero(), 0), '-0 comes back as 0, as JSON has it')
  })

  t.test(
    'values that would not round-trip are returned but not stored, and reported',
    async (t) => {
      const store = await makeStore(t)
      class Post {
        id = 1
      }
      const cyclic: Record<string, unknown> = { a: 1 }
      cyclic.self = { again: cyclic }
      const refused: Array<[unknown, string]> = [
        [new Date(0), '$ is an instance of Date'],
        [{ post: { createdAt: new Date(0) } }, '$.post.createdAt is an instance of Date'],
        [NaN, '$ is NaN'],
        [[1, Infinity], '$[1] is Infinity'],
        [new Post(), '$ is an instance of Post'],
        [{ a: 1, b: undefined }, '$.b is undefined'],
        [[1, , 3], '$[1] is undefined'],
        [{ 'odd key': () => 1 }, '$["odd key"] is a function'],
        [{ n: 1n }, '$.n is a bigint'],
        [Symbol('s'), '$ is a symbol'],
        [new Map(), '$ is an instance of Map'],
        [{ b: Buffer.from('x') }, '$.b is an instance of Buffer'],
        [cyclic, '$.self.again is a cycle'],
        [{ [Symbol('s')]: 1 }, '$ has symbol keys'],
        [
          Object.create(Object.create(null) as object) as object,
          '$ is an instance of an anonymous class',
        ],
      ]
      const { errors, onError } = collector()
      let runs = 0
      const m = memoize(
        async function value(i: number) {
          runs++
          return refused[i]![0]
        },
        { store, onError },
      )
      for (const [i, [value, why]] of refused.entries()) {
        t.ok(Object.is(await m(i), value), `${why}: the caller gets the value`)
        t.ok(Object.is(await m(i), value), `${why}: runs again`)
        t.equal(
          errors.at(-1),
          `value: cannot store the result: ${why}; results must be JSON data (plain objects, arrays, strings, finite numbers, booleans, null), bytes or undefined`,
        )
      }
      t.equal(runs, refused.length * 2, 'nothing was stored')
    },
  )

  t.test('an entry at its key that is not a memoized value is a miss, reported', async (t) => {
    const store = await makeStore(t)
    const { errors, onError } = collector()
    const { fn, runs } = recorded()
    const m = memoize(fn, { store, namespace: 'ns', onError })
    const key = '\0memo\0ns\0' + '1'
    t.ok(await store.set(key, page(), await store.checkpoint()))
    t.equal(await m(1), 'run 1')
    t.equal(await m(1), 'run 1', 'then replaced by the memoized value')
    t.ok(
      await store.set(
        key,
        { ...page(), headers: { 'content-type': MEMOIZED_TYPE }, body: Buffer.from('x') },
        await store.checkpoint(),
      ),
    )
    t.equal(await m(1), 'run 2')
    t.ok(
      await store.set(
        key,
        { ...page(), headers: { 'content-type': MEMOIZED_TYPE }, body: Buffer.from('j{') },
        await store.checkpoint(),
      ),
    )
    t.equal(await m(1), 'run 3')
    t.equal(runs.length, 3)
    t.same(errors.slice(0, 2), [
      'get: the entry at this key is not a memoized value',
      'get: the entry at this key is not a memoized value',
    ])
    t.match(errors[2], /^get: .*JSON/)
  })
}

t.test('MemoryStore', async (t) => suite(t, async (_t, now) => new MemoryStore({ now })))

let prefixes = 0
t.test('RedisStore', async (t) => {
  const url = await redisUrl(t)
  suite(t, async (t, now) => {
    const store = new RedisStore({
      timeoutMs: PATIENT_MS,
      url,
      prefix: `memo:${process.pid}:${prefixes++}:`,
      now,
    })
    await store.ready()
    t.teardown(async () => {
      await store.clear()
      await store.close()
    })
    return store
  })

  t.test('Redis itself expires results after ttl, by real time', async (t) => {
    const prefix = `memo:${process.pid}:${prefixes++}:`
    const store = new RedisStore({ timeoutMs: PATIENT_MS, url, prefix })
    const raw = new Redis(url)
    await store.ready()
    t.teardown(async () => {
      await store.clear()
      await store.close()
      raw.disconnect()
    })
    const { fn, runs } = recorded()
    const m = memoize(fn, { store, ttl: 0.2 })
    await m(1)
    const entries = () => raw.keys(`${prefix}{k:*}v`)
    t.equal((await entries()).length, 1)
    t.ok(Number(await raw.pttl((await entries())[0]!)) <= 200, 'a Redis TTL of ttl')
    // Redis's own clock expires it: ask until it is gone (KEYS skips expired keys), with no
    // fixed sleep to guess how long a busy machine takes.
    while ((await entries()).length > 0) await new Promise((resolve) => setTimeout(resolve, 20))
    t.pass('gone from Redis')
    t.equal(await m(1), 'run 2')
    t.equal(runs.length, 2)
  })

  t.test('fails open when Redis is down: the function runs, errors are reported', async (t) => {
    const server = await startRedis(t)
    const store = new RedisStore({ timeoutMs: PATIENT_MS, url: server.url })
    await store.ready()
    t.teardown(() => store.close())
    const { errors, onError } = collector()
    const { fn, runs } = recorded()
    const m = memoize(fn, { store, onError })
    await m(1)
    await server.kill()
    t.equal(await m(1), 'run 2')
    t.equal(await m(1), 'run 3')
    t.equal(runs.length, 3)
    t.match(errors, [/^get: /, /^checkpoint: /, /^get: /, /^checkpoint: /])
    await t.rejects(m.delete(1), 'delete reports to its caller')
    await t.rejects(m.clear())
  })
})

t.test('fails open: a store whose get, checkpoint or set rejects', async (t) => {
  for (const method of ['get', 'checkpoint', 'set'] as const) {
    const store = new FailingStore(method)
    const { errors, onError } = collector()
    const { fn } = recorded()
    const m = memoize(fn, { store, onError })
    t.equal(await m(1), 'run 1', `${method}: the result is returned`)
    t.equal(await m(1), 'run 2', `${method}: the function runs again`)
    t.same(errors, [
      `${method}: ${method} failed on purpose`,
      `${method}: ${method} failed on purpose`,
    ])
    store.failing.clear()
    // With only get failing, the second run was stored.
    const stored = method === 'get' ? 'run 2' : 'run 3'
    t.equal(await m(1), stored, `${method}: nothing was stored while checkpoint or set failed`)
    t.equal(await m(1), stored, `${method}: stored once the store is back`)
  }
  const store = new FailingStore('get')
  const m = memoize(recorded().fn, {
    store,
    onError: () => {
      throw new Error('a broken onError')
    },
  })
  t.equal(await m(1), 'run 1', 'an onError that throws changes nothing')
})

t.test('the default onError logs the first error of a burst', async (t) => {
  const logged = t.capture(console, 'error')
  const m = memoize(recorded().fn, { store: new FailingStore('get') })
  await m(1)
  await m(2)
  const calls = logged()
  t.equal(calls.length, 1)
  t.match(
    String(calls[0]!.args[0]),
    /^node-accelerator: get failed for "\\u0000memo\\u0000query\\u00001": Error: get failed on purpose/,
  )
})

t.test(
  'arguments that cannot be keyed: the call rejects with a TypeError naming them',
  async (t) => {
    const store = new MemoryStore()
    const { fn, runs } = recorded()
    const m = memoize(fn, { store })
    class Point {
      x = 1
    }
    const author: Record<string, unknown> = { name: 'a' }
    author.self = author
    const cases: Array<[unknown[], string]> = [
      [[() => 1], 'argument 0 ($): it is a function'],
      [[1, Symbol('s')], 'argument 1 ($): it is a symbol'],
      [[{ author }], 'argument 0 ($.author.self): it is a cycle'],
      [[new Point()], 'argument 0 ($): it is an instance of Point'],
      [[[1, { 'a b': new RegExp('x') }]], 'argument 0 ($[1]["a b"]): it is an instance of RegExp'],
      [[new Map([['k', new WeakMap()]])], 'argument 0 ($[0][1]): it is an instance of WeakMap'],
      [[new Set([1, Symbol.iterator])], 'argument 0 ($[1]): it is a symbol'],
      [[{ [Symbol('s')]: 1 }], 'argument 0 ($): it has symbol keys'],
      [[new Float64Array(1)], 'argument 0 ($): it is an instance of Float64Array'],
    ]
    for (const [args, message] of cases) {
      await t.rejects(
        m(...args),
        { name: 'TypeError', message: `cannot key argument ${message.slice(9)}; pass options.key` },
        message,
      )
    }
    t.equal(runs.length, 0, 'the function never ran')
  },
)

t.test('options.key replaces the argument key', async (t) => {
  const store = new MemoryStore()
  const { fn } = recorded()
  const m = memoize(fn, { store, key: (post: { id: number }) => String(post.id) })
  t.equal(await m({ id: 1 }), 'run 1')
  t.equal(
    await m(Object.assign(new (class Row {})(), { id: 1 })),
    'run 1',
    'anything the key function can read',
  )
  t.ok(await store.get('\0memo\0query\0' + '1'), 'stored under the key it returned')
  const long = memoize(fn, { store, namespace: 'long', key: (s: string) => s })
  await long('k'.repeat(201))
  t.ok(
    await store.get(
      '\0memo\0long\0#' +
        (await import('node:crypto'))
          .createHash('sha256')
          .update('k'.repeat(201))
          .digest('base64url'),
    ),
    'long keys hashed',
  )
  const bad = memoize(fn, { store, namespace: 'bad', key: () => 42 as unknown as string })
  await t.rejects(bad(), {
    name: 'TypeError',
    message: 'expected options.key to return a string, got 42',
  })
})

t.test('tags that are not strings reject the call before the function runs', async (t) => {
  const { fn, runs } = recorded()
  const m = memoize(fn, {
    store: new MemoryStore(),
    tags: (id: unknown) => (id === 1 ? ['ok', 2] : 7) as string[],
  })
  const calls = [m(1), m(1)]
  for (const call of calls)
    await t.rejects(call, {
      name: 'TypeError',
      message: 'expected options.tags to return strings (an iterable or one), got ["ok", 2]',
    })
  await t.rejects(m(2), {
    message: 'expected options.tags to return strings (an iterable or one), got 7',
  })
  t.equal(runs.length, 0)
})

t.test('namespaces keep functions apart', async (t) => {
  const store = new MemoryStore()
  const one = memoize(
    async function load(id: number) {
      return `one ${id}`
    },
    { store },
  )
  t.throws(
    () =>
      memoize(
        async function load(id: number) {
          return `two ${id}`
        },
        { store },
      ),
    {
      name: 'TypeError',
      message:
        'another function named "load" is memoized on this store; give one of them options.namespace',
    },
  )
  const two = memoize(
    async function load(id: number) {
      return `two ${id}`
    },
    { store, namespace: 'load two' },
  )
  const again = memoize(
    async function load(id: number) {
      return `one ${id}`
    },
    { store, ttl: 5 },
  )
  t.equal(await one(1), 'one 1')
  t.equal(await two(1), 'two 1')
  t.equal(await again(1), 'one 1', 'the same function (same source) may be memoized twice')
  const elsewhere = memoize(
    async function load(id: number) {
      return `three ${id}`
    },
    { store: new MemoryStore() },
  )
  t.equal(await elsewhere(1), 'three 1', 'names are per store')
  t.throws(() => memoize(async () => 1, { store }), {
    name: 'TypeError',
    message: 'expected options.namespace, or a named function, got an anonymous function',
  })
  t.equal(await memoize(async () => 1, { store, namespace: 'anonymous' })(), 1)
})

t.test('tags as any iterable of strings, or one string, given or returned', async (t) => {
  const store = new MemoryStore()
  const app = accelerate(() => 'page', { store })
  const { fn, runs } = recorded()
  function* once() {
    yield 'gen:a'
    yield 'gen:b'
  }
  const bySet = memoize(fn, { store, namespace: 'set', tags: new Set(['set:a']) })
  const byString = memoize(fn, { store, namespace: 'string', tags: 'one' })
  const byGenerator = memoize(fn, { store, namespace: 'generator', tags: once() })
  const returned = memoize(fn, { store, namespace: 'returned', tags: (id) => `id:${id}` })
  for (const m of [bySet, byString, byGenerator, returned]) await m(1)
  await byGenerator(2) // the generator was read once, when memoize() was called
  t.same((await store.get('\0memo\0generator\0' + '2'))?.tags, ['gen:a', 'gen:b'])
  t.equal(runs.length, 5)
  for (const tag of ['set:a', 'one', 'gen:b', 'id:1']) await app.invalidateTags(tag)
  for (const m of [bySet, byString, byGenerator, returned]) await m(1)
  t.equal(runs.length, 9, 'each dropped by its tag')
})

t.test(
  'keyPrefix is not an option: app.memoize keeps its results under its namespace',
  async (t) => {
    const store = new MemoryStore()
    const { fn } = recorded()
    t.throws(() => memoize(fn, { store, keyPrefix: 'app\0' } as never), {
      name: 'TypeError',
      message: 'unknown option "keyPrefix" for memoize(): did you mean namespace?',
    })
  },
)

t.test(
  "app.memoize: the accelerator's store and namespace, dropped by its tags and its clear()",
  async (t) => {
    const store = new MemoryStore()
    let pages = 0
    const app = accelerate(
      (_req, res) => {
        pages++
        res.cacheFor = 60
        res.tags = ['post:1']
        return 'page'
      },
      { store, namespace: 'site' },
    )
    const { fn, runs } = recorded()
    const query = app.memoize(fn, { tags: (id) => [`post:${id}`] })
    t.equal(await query(1), 'run 1')
    t.equal(await query(1), 'run 1', 'a hit')
    t.ok(await store.get('site\0\0memo\0query\0' + '1'), "under the accelerator's namespace")
    const url = await listen(t, app)
    await request(url + '/')
    t.equal(await app.invalidateTags(['post:1']), 2, 'the page and the query result, by one tag')
    t.equal(await query(1), 'run 2')
    await app.clear()
    t.equal(await query(1), 'run 3', 'clear() drops memoized results of the namespace too')
    t.equal(runs.length, 3)
    t.equal(pages, 1)
  },
)

t.test('option TypeErrors', async (t) => {
  const store = new MemoryStore()
  const fn = async function f() {}
  const cases: Array<[unknown, unknown, string]> = [
    ['not a function', { store }, 'expected fn to be a function, got "not a function"'],
    [
      fn,
      undefined,
      "expected options to be an object with a store (memoize(fn, { store: new MemoryStore() }), or app.memoize(fn) to share an accelerator's store), got undefined",
    ],
    [fn, {}, 'expected options.store to be a CacheStore, got undefined'],
    [fn, { store: { ...store, get: 1 } }, 'expected options.store to have get(), got 1'],
    [fn, { store, ttl: -1 }, 'expected options.ttl to be a number of seconds > 0, got -1'],
    [fn, { store, ttl: 0 }, 'expected options.ttl to be a number of seconds > 0, got 0'],
    [
      fn,
      { store, ttl: Infinity },
      'expected options.ttl to be a number of seconds > 0, got Infinity',
    ],
    [fn, { store, ttl: '60' }, 'expected options.ttl to be a number of seconds > 0, got "60"'],
    [fn, { store, cacheFor: 0 }, 'expected options.cacheFor to be a number of seconds > 0, got 0'],
    [
      fn,
      { store, cacheFor: 60, ttl: 60 },
      'expected options.cacheFor or its old name options.ttl, not both: got cacheFor 60 and ttl 60',
    ],
    [
      fn,
      { store, cachefor: 60 },
      'unknown option "cachefor" for memoize(): did you mean cacheFor?',
    ],
    [fn, { store, maxAge: 60 }, 'unknown option "maxAge" for memoize(): did you mean cacheFor?'],
    [
      fn,
      { store, bogus: 1 },
      'unknown option "bogus" for memoize(): the options are store, cacheFor, ttl, tags, key, namespace, now, onError',
    ],
    [
      fn,
      { store, tags: 5 },
      'expected options.tags to be strings (an iterable or one) or a function, got 5',
    ],
    [
      fn,
      { store, tags: [1] },
      'expected options.tags to be strings (an iterable or one) or a function, got [1]',
    ],
    [fn, { store, key: 'id' }, 'expected options.key to be a function, got "id"'],
    [fn, { store, now: 5 }, 'expected options.now to be a function, got 5'],
    [fn, { store, onError: true }, 'expected options.onError to be a function, got true'],
    [
      fn,
      { store, namespace: '' },
      'expected options.namespace to be a non-empty string without NUL characters, got ""',
    ],
    [
      fn,
      { store, namespace: 'a\0b' },
      'expected options.namespace to be a non-empty string without NUL characters, got "a\\u0000b"',
    ],
    [
      fn,
      { store, namespace: 7 },
      'expected options.namespace to be a non-empty string without NUL characters, got 7',
    ],
  ]
  for (const [f, options, message] of cases) {
    t.throws(
      () => memoize(f as () => void, options as MemoizeOptions<[]>),
      { name: 'TypeError', message },
      message,
    )
  }
})
