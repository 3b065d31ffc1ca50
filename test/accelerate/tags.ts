// Tags and invalidation: exact tag matching with counts, no stale resurrection when an
// invalidation lands during a generation, invalidate(url), clear(), soft invalidation.
import t from 'tap'
import { accelerate, MemoryStore, type Handler } from '../../src/index.js'
import { counted, gate, listen, request, settle } from '../fixtures/http.js'

/** An origin whose pages are tagged by the `tags` query parameter and show a render count. */
function taggedOrigin() {
  let renders = 0
  return counted((req, res) => {
    const url = new URL(req.url!, 'http://x')
    res.cacheFor = 60
    res.tags = url.searchParams.getAll('tag')
    res.end(`${url.pathname} render ${++renders}`)
  })
}

t.test('invalidateTags drops exactly the entries carrying a tag, and counts them', async (t) => {
  const origin = taggedOrigin()
  const app = accelerate(origin)
  const url = await listen(t, app)
  await request(url + '/post4?tag=post:4&tag=posts')
  await request(url + '/post42?tag=post:42&tag=posts')
  await request(url + '/home?tag=home&tag=post:4')
  t.equal(await app.invalidateTags(['post:4']), 2, 'post:4 tags two entries')
  t.match(
    (await request(url + '/post42?tag=post:42&tag=posts')).headers['cache-status'],
    /hit/,
    'post:42 is not post:4 (no prefix bleed)',
  )
  t.match((await request(url + '/post4?tag=post:4&tag=posts')).headers['cache-status'], /fwd=miss/)
  t.match((await request(url + '/home?tag=home&tag=post:4')).headers['cache-status'], /fwd=miss/)
  t.equal(
    await app.invalidateTags(['posts', 'post:42']),
    2,
    'an entry with two listed tags counts once',
  )
  t.equal(await app.invalidateTags(['nothing']), 0)
  t.equal(await app.invalidateTags([]), 0)
})

t.test('tags from res.locals.tags, a Set, a single string, and odd characters', async (t) => {
  const app = accelerate((req, res) => {
    res.cacheFor = 60
    if (req.url === '/locals') res.locals.tags = ['user:1', '']
    else if (req.url === '/set') res.tags = new Set(['from a set'])
    else res.tags = 'a tag with spaces, commas and \u00fc'
    res.end(req.url!)
  })
  const url = await listen(t, app)
  await request(url + '/locals')
  await request(url + '/string')
  await request(url + '/set')
  t.equal(await app.invalidateTags(['from a set']), 1)
  t.equal(await app.invalidateTags(['']), 1, 'the empty tag is a tag')
  t.equal(await app.invalidateTags(['a tag with spaces, commas and \u00fc']), 1)
})

t.test('tags that are not strings are reported and the response is not stored', async (t) => {
  const errors: string[] = []
  const origin = counted((req, res) => {
    res.cacheFor = 60
    ;(res as { tags?: unknown }).tags = req.url === '/number' ? 42 : ['ok', 42]
    res.end('x')
  })
  const url = await listen(
    t,
    accelerate(origin, { onError: (err, { op }) => errors.push(`${op}: ${err.message}`) }),
  )
  await request(url + '/')
  await settle()
  await request(url + '/')
  await request(url + '/number')
  await settle()
  t.equal(origin.calls, 3)
  t.equal(
    errors[0],
    'tags: expected res.tags to be an array of well-formed strings, got ["ok", 42]',
  )
  t.equal(errors[2], 'tags: expected res.tags to be an array of well-formed strings, got 42')
})

t.test('invalidateTags rejects what is not strings', async (t) => {
  const app = accelerate(() => 'x')
  const message =
    'expected tags to be an iterable of well-formed strings or one string (none of the reserved form "\\u0000name\\u0000...")'
  await t.rejects(app.invalidateTags(42 as never), {
    name: 'TypeError',
    message: `${message}, got 42`,
  })
  await t.rejects(app.invalidateTags([1] as never), {
    name: 'TypeError',
    message: `${message}, got [1]`,
  })
  await t.rejects(app.invalidateTags(new Set(['\u0000path\u0000/x'])), TypeError, 'a reserved tag')
})

t.test('invalidateTags takes any iterable of tags, or one string, as res.tags does', async (t) => {
  const origin = counted((req, res) => {
    res.cacheFor = 60
    res.tags = new Set([`t${req.url}`, 'all'])
    return `body ${req.url}`
  })
  const app = accelerate(origin)
  const url = await listen(t, app)
  const fill = async () => {
    for (const path of ['/1', '/2', '/3', '/4']) await request(url + path)
    await settle()
  }
  await fill()
  t.equal(await app.invalidateTags('t/1'), 1, 'one string is one tag (not its characters)')
  t.equal(await app.invalidateTags(new Set(['t/2', 't/3'])), 2, 'a Set')
  let pulled = 0
  function* lazy() {
    pulled++
    yield 't/4'
  }
  t.equal(await app.invalidateTags(lazy()), 1, 'a generator')
  t.equal(pulled, 1, 'iterated once')
  t.equal(
    await app.invalidateTags(new Map([['all', 1]]).keys()),
    0,
    'an iterator (nothing left to drop)',
  )
  await fill()
  t.equal(origin.calls, 8, 'each dropped entry was generated again')
})

/**
 * The race: a generation starts (reads v1), the data changes and its tag is invalidated, the
 * generation finishes. Whichever invalidation lands during the generation, v1 is not stored.
 */
for (const [name, invalidate, blocks] of [
  ['its tag', (app: ReturnType<typeof accelerate>) => app.invalidateTags(['t']), true],
  [
    'its URL',
    (app: ReturnType<typeof accelerate>, url: string) => app.invalidate(url + '/race'),
    true,
  ],
  ['everything (clear)', (app: ReturnType<typeof accelerate>) => app.clear(), true],
  [
    'an unrelated tag',
    (app: ReturnType<typeof accelerate>) => app.invalidateTags(['other']),
    false,
  ],
] as const) {
  t.test(
    `an invalidation of ${name} during a slow generation ${blocks ? 'keeps it out of the store' : 'does not block it'}`,
    async (t) => {
      let data = 'v1'
      const started = gate()
      const finish = gate()
      const origin = counted(async (_req, res) => {
        const read = data
        res.cacheFor = 60
        res.tags = ['t']
        res.write(read)
        started.open()
        await finish.promise
        res.end()
      })
      const app = accelerate(origin)
      const url = await listen(t, app)
      const slow = request(url + '/race')
      await started.promise
      data = 'v2'
      await invalidate(app, url)
      finish.open()
      t.equal((await slow).text, 'v1', 'the client that asked first gets what was generated')
      await settle()
      const next = await request(url + '/race')
      if (blocks) {
        t.equal(next.text, 'v2', 'the next request regenerates instead of resurrecting v1')
        t.equal(origin.calls, 2)
      } else {
        t.equal(next.text, 'v1', 'stored as usual')
        t.equal(origin.calls, 1)
      }
    },
  )
}

t.test('invalidate(url): an absolute URL, a path with host, and the count', async (t) => {
  const origin = taggedOrigin()
  const app = accelerate(origin)
  const url = await listen(t, app)
  const host = new URL(url).host
  await request(url + '/a?x=1')
  await request(url + '/b')
  t.equal(await app.invalidate(url + '/a?x=1'), 1)
  t.equal(await app.invalidate(url + '/a?x=1'), 0, 'already gone')
  t.equal(await app.invalidate('/b', { host }), 1)
  t.match((await request(url + '/a?x=1')).headers['cache-status'], /fwd=miss/)
  await request(url + '/b')
  t.equal(
    await app.invalidate('/b'),
    1,
    'a path alone: under every host (test/invalidation/paths.ts)',
  )
  await t.rejects(app.invalidate(42 as never), TypeError)
})

t.test('invalidate(url) hands a custom key function the request it would have seen', async (t) => {
  const seen: unknown[] = []
  const app = accelerate(
    (_req, res) => {
      res.cacheFor = 60
      res.end('x')
    },
    {
      key: (req) => {
        seen.push({ method: req.method, url: req.url, host: req.headers.host })
        return req.url!.split('?')[0]!
      },
    },
  )
  const url = await listen(t, app)
  await request(url + '/k?utm=1')
  seen.length = 0
  t.equal(await app.invalidate('/k'), 1, 'no host needed: this key ignores it')
  t.equal(await app.invalidate('https://example.com/k?z', { method: 'HEAD' }), 0)
  // (Storing /k?utm=1 asked the key of its path too, with no header: see test/invalidation/paths.ts.)
  t.same(
    (seen as Array<{ url?: string }>).filter(({ url }) => url !== '/k?utm=1'),
    [
      { method: 'GET', url: '/k', host: undefined },
      { method: 'HEAD', url: '/k?z', host: 'example.com' },
    ],
  )
})

t.test('clear() empties this namespace only', async (t) => {
  const store = new MemoryStore()
  t.teardown(() => store.close())
  const handler: Handler = (req, res) => {
    res.cacheFor = 60
    res.end(req.url)
  }
  const blog = counted(handler)
  const shop = counted(handler)
  const blogApp = accelerate(blog, { store, namespace: 'blog' })
  const shopApp = accelerate(shop, { store, namespace: 'shop' })
  const blogUrl = await listen(t, blogApp)
  const shopUrl = await listen(t, shopApp)
  await request(blogUrl + '/same-path')
  await request(shopUrl + '/same-path')
  t.equal(shop.calls, 1, 'namespaces keep identical keys apart')
  await blogApp.clear()
  await request(blogUrl + '/same-path')
  await request(shopUrl + '/same-path')
  t.equal(blog.calls, 2, 'blog was cleared')
  t.equal(shop.calls, 1, 'shop was not')
})

t.test(
  'soft invalidation marks entries stale: served once more while one refresh runs',
  async (t) => {
    const origin = taggedOrigin()
    const app = accelerate(origin)
    const url = await listen(t, app)
    await request(url + '/s?tag=soft')
    t.equal(await app.invalidateTags(['soft'], { soft: true }), 1)
    const stale = await request(url + '/s?tag=soft')
    t.equal(stale.text, '/s render 1')
    t.match(
      stale.headers['cache-status'],
      /^node-accelerator; hit; ttl=-?\d+; detail=stale-while-revalidate$/,
    )
    await settle()
    t.equal(
      (await request(url + '/s?tag=soft')).text,
      '/s render 2',
      'the refresh stored the new render',
    )
  },
)
