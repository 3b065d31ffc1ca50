// cachePolicy(): one declaration sets this cache's TTL and tags and the browser's Cache-Control.
// Every policy of docs/policies.md's table, through a real socket, with a counter on the origin.
import t, { type Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import express from 'express'
import { accelerate, cachePolicy, noCache, noStore } from '../../src/index.js'
import type { AccelerateOptions, CachePolicy, CachePolicyOptions } from '../../src/index.js'
import type { Handler } from '../../src/index.js'
import { counted, eventually, listen, manualClock, request } from '../fixtures/http.js'

/** `handler` accelerated on a socket, closed at teardown. */
async function start(t: Test, handler: Handler, options: AccelerateOptions = {}) {
  const app = accelerate(handler, options)
  t.teardown(() => app.close())
  return { url: await listen(t, app), app }
}

/** An accelerated server whose handler applies `policy`, then answers. */
async function serve(t: Test, policy: CachePolicy, options: AccelerateOptions = {}) {
  const origin = counted((req, res) => {
    policy(req, res)
    return 'the page'
  })
  const clock = manualClock()
  return { ...(await start(t, origin, { now: clock.now, ...options })), origin, clock }
}

const idOf = (req: IncomingMessage) => new URL(req.url!, 'http://x').searchParams.get('id')

t.test("docs/policies.md's table, row by row", async (t) => {
  t.test('static asset: a year in browsers, immutable; a day here', async (t) => {
    const policy = cachePolicy({ cacheFor: 86400, maxAge: 31536000, immutable: true })
    const { url, origin, clock } = await serve(t, policy)
    const first = await request(url + '/app.3f9a1c.js')
    t.equal(first.headers['cache-control'], 'max-age=31536000, immutable')
    t.equal(first.headers['cache-status'], 'node-accelerator; fwd=miss; stored')
    clock.advance(86399_000)
    const hit = await request(url + '/app.3f9a1c.js')
    t.equal(hit.headers['cache-control'], 'max-age=31536000, immutable', 'hits carry it too')
    t.match(hit.headers['cache-status'], /; hit; ttl=1$/)
    t.equal(origin.calls, 1)
  })

  t.test('tagged page: an hour here, purged by tag; browsers get 304s from here', async (t) => {
    const policy = cachePolicy({ cacheFor: 3600, tags: (req) => [`post:${idOf(req)}`, 'home'] })
    const { url, app, origin } = await serve(t, policy)
    const first = await request(url + '/post?id=42')
    t.equal(first.headers['cache-control'], 'max-age=0')
    await request(url + '/post?id=7')
    const headers = { 'if-none-match': first.headers.etag! }
    const revalidated = await request(url + '/post?id=42', { headers })
    t.equal(revalidated.status, 304, "the browser's revalidation is answered from the cache")
    t.match(revalidated.headers['cache-status'], /hit/)
    t.equal(origin.calls, 2)
    t.equal(await app.invalidateTags(['post:42']), 1, 'the tag function gave each page its tag')
    await request(url + '/post?id=42')
    await request(url + '/post?id=7')
    t.equal(origin.calls, 3, 'post 42 regenerated, post 7 still a hit')
    t.equal(await app.invalidateTags(['home']), 2)
  })

  t.test('per-user page: browsers only, never stored here', async (t) => {
    const { url, origin } = await serve(t, cachePolicy({ private: true }))
    const first = await request(url + '/account')
    t.equal(first.headers['cache-control'], 'private, max-age=0')
    t.equal(first.headers['cache-status'], 'node-accelerator; fwd=miss; detail=private')
    await request(url + '/account')
    t.equal(origin.calls, 2)
  })

  t.test('API response: a minute here, 30 s stale while refreshing; 15 s browsers', async (t) => {
    const policy = cachePolicy({ cacheFor: 60, maxAge: 15, staleWhileRevalidate: 30 })
    const { url, origin, clock } = await serve(t, policy)
    const first = await request(url + '/api/items')
    t.equal(first.headers['cache-control'], 'max-age=15, stale-while-revalidate=30')
    await request(url + '/api/items')
    t.equal(origin.calls, 1)
    clock.advance(70_000)
    const stale = await request(url + '/api/items')
    // This cache reads the window the browsers get.
    t.match(stale.headers['cache-status'], /detail=stale-while-revalidate/)
    await eventually(() => origin.calls === 2, 'one background refresh')
  })

  t.test('never cache: no-store, even under defaultCacheFor', async (t) => {
    const { url, origin } = await serve(t, noStore(), { defaultCacheFor: 60 })
    const first = await request(url + '/token')
    t.equal(first.headers['cache-control'], 'no-store')
    await request(url + '/token')
    t.equal(origin.calls, 2)
  })

  t.test('always revalidate: stored here, purged by tag; other caches ask each time', async (t) => {
    const policy = noCache({ cacheFor: 60, tags: ['stock'] })
    const { url, app, origin, clock } = await serve(t, policy, { staleWhileRevalidate: 30 })
    const first = await request(url + '/stock')
    t.equal(first.headers['cache-control'], 'no-cache')
    await request(url + '/stock')
    t.equal(origin.calls, 1, 'stored here for cacheFor')
    clock.advance(61_000)
    const after = await request(url + '/stock')
    // RFC 9111 §5.2.2.4: the accelerator's own stale window does not apply.
    t.equal(after.headers['cache-status'], 'node-accelerator; fwd=stale; stored', 'not stale')
    t.equal(origin.calls, 2)
    t.equal(await app.invalidateTags(['stock']), 1)
  })
})

t.test("as Express middleware on a route, tags from the route's params", async (t) => {
  const acc = accelerate(() => undefined)
  t.teardown(() => acc.close())
  const calls: string[] = []
  const app = express()
  app.use(acc.middleware)
  const tags = (req: express.Request) => [`post:${req.params.id}`]
  const post = cachePolicy<express.Request>({ cacheFor: 300, tags, vary: 'Accept-Language' })
  app.get('/posts/:id', post, (req, res) => {
    calls.push(`${req.params.id} ${req.headers['accept-language']}`)
    res.send(`post ${req.params.id}`)
  })
  app.get('/private', cachePolicy({ private: true, maxAge: 60 }), (_req, res) => {
    calls.push('private')
    res.send('yours')
  })
  const url = await listen(t, app)
  const get = (path: string, language: string) => {
    return request(url + path, { headers: { 'accept-language': language } })
  }

  const first = await get('/posts/1', 'fr')
  t.equal(first.headers['cache-control'], 'max-age=0')
  t.equal(first.headers.vary, 'Accept-Language')
  t.equal((await get('/posts/1', 'fr')).text, 'post 1')
  await get('/posts/1', 'en')
  await get('/posts/2', 'fr')
  t.same(calls, ['1 fr', '1 en', '2 fr'], 'one run per variant')
  t.equal(await acc.invalidateTags(['post:1']), 2, 'both variants of post 1, not post 2')
  await get('/posts/2', 'fr')
  t.equal(calls.length, 3)

  t.equal((await request(url + '/private')).headers['cache-control'], 'private, max-age=60')
  await request(url + '/private')
  t.equal(calls.filter((call) => call === 'private').length, 2)
})

t.test('in a raw handler: policy(req, res) or policy(res)', async (t) => {
  const policy = cachePolicy({ cacheFor: 60, maxAge: 10, tags: 'list' })
  const origin = counted((req, res) => {
    if (req.url === '/res-only') policy(res)
    else policy(req, res)
    return 'ok'
  })
  const { url, app } = await start(t, origin)
  for (const path of ['/res-only', '/both']) {
    t.equal((await request(url + path)).headers['cache-control'], 'max-age=10')
    t.match((await request(url + path)).headers['cache-status'], /hit/)
  }
  t.equal(origin.calls, 2)
  t.equal(await app.invalidateTags(['list']), 2, 'a single string is one tag')
})

t.test('the handler has the last word: its res.cacheFor, res.tags and headers win', async (t) => {
  const policy = cachePolicy({ cacheFor: 60, tags: ['policy'] })
  const origin = counted((req, res) => {
    policy(req, res)
    if (req.url === '/not-this-one') res.cacheFor = 0
    if (req.url === '/own-tags') res.tags = ['mine']
    if (req.url === '/more-tags') (res.locals.tags as string[]).push('more')
    return 'ok'
  })
  const { url, app } = await start(t, origin)
  for (const path of ['/not-this-one', '/own-tags', '/more-tags', '/plain']) {
    await request(url + path)
    await request(url + path)
  }
  t.equal(origin.calls, 5, '/not-this-one ran twice, the others once')
  t.equal(await app.invalidateTags(['mine']), 1)
  t.equal(await app.invalidateTags(['more']), 1)
  // Adding to one response's list left the policy's alone.
  t.equal(await app.invalidateTags(['policy']), 1, "only /plain still has the policy's tag")
})

t.test('a policy without cacheFor stores nothing here, whatever its headers say', async (t) => {
  // The same headers written by hand opt in (honorCacheControl): the policy says what it means.
  const byHand = counted((_req, res) => {
    res.setHeader('cache-control', 'max-age=0, s-maxage=60')
    return 'cdn'
  })
  const { url: handUrl } = await start(t, byHand)
  await request(handUrl)
  await request(handUrl)
  t.equal(byHand.calls, 1, 'by hand, s-maxage made this cache store it')

  const { url, origin } = await serve(t, cachePolicy({ sMaxage: 60 }), { defaultCacheFor: 30 })
  t.equal((await request(url)).headers['cache-control'], 'max-age=0, s-maxage=60')
  await request(url)
  // sMaxage is for the caches in front; cacheFor (0) is this one's, over defaultCacheFor too.
  t.equal(origin.calls, 2)
})

t.test('vary is added to the Vary already set, once per name', async (t) => {
  const policy = cachePolicy({ cacheFor: 60, vary: ['accept-encoding', 'Accept-Language'] })
  const origin = counted((req, res) => {
    res.setHeader('vary', 'Accept-Encoding')
    if (req.url === '/star') res.setHeader('vary', '*')
    if (req.url === '/list') res.setHeader('vary', ['Accept-Encoding', 'Cookie'])
    policy(req, res)
    return 'ok'
  })
  const { url } = await start(t, origin)
  const vary = async (path: string) => (await request(url + path)).headers.vary
  t.equal(await vary('/'), 'Accept-Encoding, Accept-Language')
  t.equal(await vary('/star'), '*', 'Vary: * stays *')
  t.equal(await vary('/list'), 'Accept-Encoding, Cookie, Accept-Language', 'a Vary set as a list')
})

t.test('misuse at request time gets an error that says what to do', async (t) => {
  const app = express()
  const errors: string[] = []
  const unreachable = (_req: unknown, res: express.Response) => void res.send('unreachable')
  app.get('/number', cachePolicy({ cacheFor: 60, tags: () => 42 as never }), unreachable)
  const late = (async () => ['late']) as never
  app.get('/promise', cachePolicy({ cacheFor: 60, tags: late }), unreachable)
  app.get('/late', (req, res) => {
    res.send('sent')
    try {
      cachePolicy({ maxAge: 5 })(req, res)
    } catch (err) {
      errors.push((err as Error).message)
    }
  })
  app.use((err: Error, _req: unknown, res: express.Response, _next: unknown) => {
    res.status(500).send(err.message)
  })
  const url = await listen(t, app)
  t.equal(
    (await request(url + '/number')).text,
    'cachePolicy: expected options.tags(req) to be ' +
      'a string or an iterable of well-formed strings, got 42',
  )
  t.equal(
    (await request(url + '/promise')).text,
    'cachePolicy: expected options.tags(req) to ' +
      'return tags, got a Promise; compute tags that need I/O in the handler and set res.tags',
  )
  await request(url + '/late')
  t.same(errors, [
    'cachePolicy: the headers of GET /late were already sent; apply the policy ' +
      'before the handler writes its response',
  ])
  const policy = cachePolicy({}) as unknown as (req: unknown, res?: unknown) => void
  t.throws(() => policy({ url: '/' }), {
    name: 'TypeError',
    message:
      'cachePolicy: expected to be called with (req, res[, next]) or (res), got ' +
      'undefined for res',
  })
})

t.test('policy.cacheControl and policy.cacheFor say what it sends', async (t) => {
  const cases: Array<[CachePolicyOptions, string]> = [
    [
      { cacheFor: 5, maxAge: 1, sMaxage: 5, mustRevalidate: true },
      'max-age=1, s-maxage=5, must-revalidate',
    ],
    [{ cacheFor: 5, maxAge: 1, staleIfError: 60 }, 'max-age=1, stale-if-error=60'],
    [{ private: true, noStore: true }, 'private, no-store'],
    [{ private: true, noCache: true }, 'private, no-cache'],
    [{ maxAge: 0, staleWhileRevalidate: 0 }, 'max-age=0'],
  ]
  for (const [options, header] of cases) t.equal(cachePolicy(options).cacheControl, header)
  t.equal(cachePolicy({ cacheFor: 5 }).cacheFor, 5)
  t.equal(noCache({ private: true }).cacheControl, 'private, no-cache')
})

// Each contradiction refused, and (through a socket, below) what it does when written by hand.
t.test('contradictions are refused with a TypeError that says why', async (t) => {
  const everything: CachePolicyOptions = {
    noStore: true,
    maxAge: 1,
    sMaxage: 1,
    staleWhileRevalidate: 1,
    staleIfError: 1,
    noCache: true,
    mustRevalidate: true,
    immutable: true,
  }
  const rows: Array<[string, CachePolicyOptions, string]> = [
    [
      'server TTL with private',
      { cacheFor: 60, private: true },
      'cachePolicy: cacheFor with ' +
        'private: this cache is shared by every client and never stores a private response (RFC ' +
        '9111 §5.2.2.7), so it would silently not be cached; drop cacheFor for a per-user page, ' +
        'or private if the page is the same for everyone',
    ],
    [
      'server TTL with noStore',
      { cacheFor: 60, noStore: true },
      'cachePolicy: noStore keeps ' +
        'every cache (this one included) from storing the response, so cacheFor would never ' +
        'apply; drop it, or noStore',
    ],
    [
      'everything with noStore',
      everything,
      'so maxAge, sMaxage, staleWhileRevalidate, ' +
        'staleIfError, noCache, mustRevalidate, immutable would never apply; drop them',
    ],
    ['tags with noStore', { noStore: true, tags: ['t'] }, 'so tags would never apply'],
    [
      'maxAge beyond cacheFor on a tagged response',
      { cacheFor: 60, tags: ['p'], maxAge: 3600 },
      'cachePolicy: maxAge (3600 s) is longer than cacheFor (60 s) on a tagged response: a tag ' +
        'purge cannot reach browsers, which would keep the old response for up to 3600 s after ' +
        'it; lower maxAge to at most 60, or pass allowStaleAfterPurge: true if that is acceptable',
    ],
    [
      'sMaxage beyond cacheFor on a tagged response',
      { cacheFor: 60, tags: ['p'], sMaxage: 600 },
      'sMaxage (600 s) is longer than cacheFor (60 s) on a tagged response: a tag purge ' +
        'cannot reach caches in front of this one',
    ],
    [
      'tags without cacheFor',
      { tags: ['post:1'], maxAge: 60 },
      'cachePolicy: tags without ' +
        'cacheFor: nothing is stored here without cacheFor, so a purge of these tags would have ' +
        'nothing to drop; add cacheFor (seconds), or drop tags',
    ],
    [
      'sMaxage with private',
      { private: true, sMaxage: 60 },
      'cachePolicy: sMaxage with ' +
        'private: private forbids the shared caches sMaxage is for from storing the response ' +
        '(RFC 9111 §5.2.2.7); drop one of them',
    ],
    [
      'noCache with freshness',
      { noCache: true, maxAge: 60, staleWhileRevalidate: 10 },
      'cachePolicy: noCache makes every cache revalidate before each use (RFC 9111 §5.2.2.4), ' +
        'which maxAge, staleWhileRevalidate would contradict; use maxAge: 0 with maxAge, ' +
        'staleWhileRevalidate for "browsers revalidate, other caches may reuse", or drop them',
    ],
    [
      'noCache with immutable',
      { noCache: true, immutable: true },
      'which immutable would ' +
        'contradict; use maxAge: 0 with immutable for "browsers revalidate, other caches may ' +
        'reuse", or drop it',
    ],
    [
      'immutable without maxAge',
      { cacheFor: 60, immutable: true },
      'cachePolicy: immutable ' +
        'without maxAge: immutable only spares revalidations while the response is fresh (RFC ' +
        '8246), and without maxAge it never is; add maxAge (seconds)',
    ],
    [
      'mustRevalidate with a stale window',
      { cacheFor: 60, mustRevalidate: true, staleIfError: 9 },
      'cachePolicy: mustRevalidate forbids using a stale response without revalidating it (RFC ' +
        '9111 §5.2.2.2), while staleWhileRevalidate / staleIfError ask for it; drop one of them',
    ],
    [
      'Vary: * with cacheFor',
      { cacheFor: 60, vary: '*' },
      'cachePolicy: vary "*" with ' +
        'cacheFor: a response with Vary: * is never stored (RFC 9110 §12.5.5); name the request ' +
        'headers it varies on instead',
    ],
  ]
  for (const [name, options, message] of rows) {
    t.throws(() => cachePolicy(options), { name: 'TypeError', message }, name)
  }
  t.throws(() => noCache({ maxAge: 10 }), { name: 'TypeError', message: 'noCache makes every' })

  const allowed: Array<[string, CachePolicyOptions, string]> = [
    [
      'when asked for explicitly',
      {
        cacheFor: 60,
        tags: ['a'],
        maxAge: 3600,
        sMaxage: 3600,
        allowStaleAfterPurge: true,
      },
      'max-age=3600, s-maxage=3600',
    ],
    ['up to cacheFor', { cacheFor: 60, tags: ['a'], maxAge: 60 }, 'max-age=60'],
    // Nothing purges an untagged response early, so browsers may keep it longer.
    ['untagged', { cacheFor: 60, maxAge: 3600 }, 'max-age=3600'],
    ['Vary: * on a response not stored here', { vary: '*' }, 'max-age=0'],
  ]
  for (const [name, options, header] of allowed) {
    t.equal(cachePolicy(options).cacheControl, header, name)
  }
})

t.test('written by hand, the refused combinations silently do something else', async (t) => {
  const clock = manualClock()
  const origin = counted((req, res) => {
    res.cacheFor = 60
    const set = (value: string) => res.setHeader('cache-control', value)
    const byHand: Record<string, () => void> = {
      '/private': () => set('private'),
      '/no-store': () => set('no-store'),
      '/vary-star': () => res.setHeader('vary', '*'),
      '/tags-only': () => ((res.cacheFor = undefined), (res.tags = ['only'])),
      '/must-revalidate': () => set('max-age=0, must-revalidate, stale-while-revalidate=30'),
      '/no-cache': () => set('no-cache, stale-while-revalidate=30'),
      '/long-max-age': () => ((res.tags = ['edited']), set('max-age=3600')),
    }
    byHand[req.url!]!()
    return `v${origin.calls}`
  })
  const { url, app } = await start(t, origin as Handler, { now: clock.now })
  for (const path of ['/private', '/no-store', '/vary-star', '/tags-only']) {
    await request(url + path)
    await request(url + path)
  }
  // Private, no-store, Vary: * and tags without a TTL: "cached", never stored.
  t.equal(origin.calls, 8, 'each ran twice')
  t.equal(await app.invalidateTags(['only']), 0, 'the purge had nothing to drop')

  for (const path of ['/must-revalidate', '/no-cache']) await request(url + path)
  clock.advance(61_000)
  for (const path of ['/must-revalidate', '/no-cache']) {
    const status = (await request(url + path)).headers['cache-status']
    t.match(status, /detail=stale-while-revalidate/, `${path}: served stale all the same`)
  }
  await eventually(() => origin.calls === 12, 'the background refreshes')

  const before = await request(url + '/long-max-age')
  t.equal(await app.invalidateTags(['edited']), 1)
  const after = await request(url + '/long-max-age')
  t.not(after.text, before.text, 'the purge reached this cache')
  t.equal(before.headers['cache-control'], 'max-age=3600', 'browsers keep the old one an hour')
})

t.test('option names and types are checked when the policy is made', async (t) => {
  const unknown: Array<[string, string]> = [
    ['maxage', 'unknown option "maxage" for cachePolicy(): did you mean maxAge?'],
    ['s_maxage', 'did you mean sMaxage?'],
    ['stale-while-revalidate', 'did you mean staleWhileRevalidate?'],
    ['mustRevaldate', 'did you mean mustRevalidate?'],
    ['ttl', 'did you mean cacheFor?'],
    ['client_timeout', 'did you mean maxAge?'],
    ['public', 'did you mean sMaxage?'],
    [
      'somethingElseEntirely',
      'unknown option "somethingElseEntirely" for cachePolicy(): the options are ' +
        'cacheFor, tags, maxAge, sMaxage, private, noCache, noStore, mustRevalidate, immutable, ' +
        'staleWhileRevalidate, staleIfError, vary, allowStaleAfterPurge',
    ],
  ]
  for (const [name, message] of unknown) {
    t.throws(() => cachePolicy({ [name]: 1 } as never), { name: 'TypeError', message }, name)
  }

  const whole = 'to be a whole number of seconds >= 0, got'
  const bad: Array<[unknown, string]> = [
    [undefined, 'cachePolicy: expected an options object, got undefined'],
    [[], 'expected an options object, got []'],
    [{ cacheFor: '60' }, 'expected options.cacheFor to be a number of seconds >= 0, got "60"'],
    [{ cacheFor: -1 }, 'expected options.cacheFor to be a number of seconds >= 0, got -1'],
    [{ cacheFor: Infinity }, 'got Infinity'],
    [{ maxAge: 1.5 }, `expected options.maxAge ${whole} 1.5`],
    [{ staleIfError: -5 }, `expected options.staleIfError ${whole} -5`],
    [{ private: 'yes' }, 'expected options.private to be a boolean, got "yes"'],
    [
      { cacheFor: 1, tags: [1] },
      'expected options.tags to be a string or an iterable of ' + 'well-formed strings, got [1]',
    ],
    [{ cacheFor: 1, tags: ['\uD800'] }, 'expected options.tags to be a string or an iterable'],
    [{ cacheFor: 1, tags: 5 }, 'got 5'],
    [
      { vary: 'Accept Language' },
      'expected options.vary to be header names (a string or a ' + 'list), got "Accept Language"',
    ],
    [{ vary: 3 }, 'expected options.vary to be header names'],
  ]
  for (const [options, message] of bad) {
    t.throws(() => cachePolicy(options as never), { name: 'TypeError', message })
  }
  const tags = new Set(['a', 'b'])
  const set = cachePolicy({ cacheFor: 1, tags, vary: 'Cookie, Accept-Language' })
  t.equal(set.cacheFor, 1, 'a Set of tags, a comma-separated Vary')
  t.throws(() => noStore({ cacheFor: 1 }), {
    name: 'TypeError',
    message:
      'noStore: expected no options (nothing else applies to a response no cache keeps), ' +
      'got an object',
  })
  t.throws(() => noCache(null as never), {
    name: 'TypeError',
    message: 'noCache: expected an options object, got null',
  })
})
