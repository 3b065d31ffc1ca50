// Revalidation: a stale entry's validators go to the handler; its 304 refreshes the stored
// entry's freshness and headers without regenerating the body.
import t from 'tap'
import { accelerate, type AcceleratedResponse } from '../../src/index.js'
import { counted, eventually, gate, listen, manualClock, request } from '../fixtures/http.js'
import type { IncomingMessage } from 'node:http'

/** An origin with a lazy body: it sets its ETag, returns a generator, and counts generations. */
function lazyOrigin(version: { etag: string; generated: number }) {
  const seen: Array<string | undefined> = []
  const origin = counted((req: IncomingMessage, res: AcceleratedResponse) => {
    seen.push(req.headers['if-none-match'])
    res.cacheFor = 10
    res.setHeader('etag', version.etag)
    res.setHeader('x-version', version.etag)
    return (async function* () {
      version.generated++
      yield `body of ${version.etag}`
    })()
  })
  return Object.assign(origin, { seen })
}

t.test(
  'a stale entry is revalidated: the handler sees its ETag, answers 304, the body is not regenerated',
  async (t) => {
    const clock = manualClock()
    const version = { etag: '"v1"', generated: 0 }
    const origin = lazyOrigin(version)
    const app = accelerate(origin, { now: clock.now })
    const url = await listen(t, app)
    t.equal(
      (await request(url + '/r', { headers: { 'if-none-match': '"client-own"' } })).text,
      'body of "v1"',
    )
    clock.advance(11_000)
    const revalidated = await request(url + '/r', { headers: { 'if-none-match': '"client-own"' } })
    t.same(
      origin.seen,
      [undefined, '"v1"'],
      "the handler saw the cache's validators: none, then the stored one",
    )
    t.equal(version.generated, 1, 'the body was generated once')
    t.equal(revalidated.status, 200, 'the client gets the entry (its own validator does not match)')
    t.equal(revalidated.text, 'body of "v1"')
    t.equal(
      revalidated.headers['cache-status'],
      'node-accelerator; fwd=stale; fwd-status=304; stored; ttl=10',
    )
    t.equal(revalidated.headers.age, '0', 'the refreshed entry is new')
    t.match(app.stats(), { revalidations: 1, misses: 2 })
    clock.advance(5_000)
    const hit = await request(url + '/r')
    t.match(
      hit.headers['cache-status'],
      /^node-accelerator; hit; ttl=5$/,
      'fresh again for its full ttl',
    )
    t.equal(origin.calls, 2)
  },
)

t.test(
  'the client gets its own 304 when its validator matches the revalidated entry',
  async (t) => {
    const clock = manualClock()
    const version = { etag: '"v1"', generated: 0 }
    const url = await listen(t, accelerate(lazyOrigin(version), { now: clock.now }))
    await request(url + '/r')
    clock.advance(11_000)
    const reply = await request(url + '/r', { headers: { 'if-none-match': '"v1"' } })
    t.equal(reply.status, 304)
    t.equal(reply.headers.etag, '"v1"')
    t.equal(version.generated, 1)
  },
)

t.test("a 304 refreshes the stored headers (RFC 9111 §4.3.4), never the body's own", async (t) => {
  const clock = manualClock()
  let round = 0
  const origin = counted((req, res) => {
    round++
    res.cacheFor = 10
    res.setHeader('x-round', String(round))
    if (req.headers['if-none-match'] === '"e"') {
      res.setHeader('content-type', 'text/plain')
      res.setHeader('content-length', '0')
      res.writeHead(304, { etag: '"e"' })
      return res.end()
    }
    res.setHeader('etag', '"e"')
    res.setHeader('content-type', 'text/html')
    return '<p>original</p>'
  })
  const url = await listen(t, accelerate(origin, { now: clock.now }))
  await request(url + '/')
  clock.advance(10_000)
  const refreshed = await request(url + '/')
  t.equal(refreshed.status, 200)
  t.equal(refreshed.text, '<p>original</p>')
  t.equal(refreshed.headers['x-round'], '2', "the 304's headers replace the stored ones")
  t.equal(refreshed.headers['content-type'], 'text/html', 'but not those describing the body')
  t.equal(refreshed.headers['content-length'], '15')
  t.equal(refreshed.headers.date, new Date(clock.now()).toUTCString(), "Date is the revalidation's")
  const hit = await request(url + '/')
  t.equal(hit.headers['x-round'], '2')
  t.equal(origin.calls, 2)
})

t.test('Last-Modified is sent as If-Modified-Since', async (t) => {
  const clock = manualClock()
  const seen: unknown[] = []
  const origin = counted((req, res) => {
    seen.push([req.headers['if-none-match'], req.headers['if-modified-since']])
    res.cacheFor = 10
    res.setHeader('last-modified', 'Sun, 06 Nov 1994 08:49:37 GMT')
    if (req.headers['if-modified-since']) {
      res.statusCode = 304
      return res.end()
    }
    return 'dated'
  })
  const url = await listen(t, accelerate(origin, { now: clock.now }))
  const { etag } = (await request(url + '/')).headers
  clock.advance(10_000)
  t.equal((await request(url + '/')).text, 'dated')
  // RFC 9110 §13.1.3: If-None-Match would make a handler that keeps to it (Express's fresh())
  // ignore If-Modified-Since, and the handler never sent that ETag: the Last-Modified alone.
  t.not(etag, undefined, 'the entry has its computed ETag')
  t.same(
    seen,
    [
      [undefined, undefined],
      [undefined, 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ],
    'the Last-Modified alone',
  )
})

t.test('a stale entry the handler replaces with new content is stored anew', async (t) => {
  const clock = manualClock()
  const version = { etag: '"v1"', generated: 0 }
  const origin = lazyOrigin(version)
  const url = await listen(t, accelerate(origin, { now: clock.now }))
  await request(url + '/r')
  clock.advance(11_000)
  version.etag = '"v2"'
  const replaced = await request(url + '/r')
  t.equal(replaced.text, 'body of "v2"')
  t.equal(replaced.headers['cache-status'], 'node-accelerator; fwd=stale; stored')
  t.equal((await request(url + '/r')).text, 'body of "v2"')
  t.equal(version.generated, 2)
})

t.test(
  'a revalidation whose 304 is not storable serves the entry and leaves it stale',
  async (t) => {
    const clock = manualClock()
    let calls = 0
    const url = await listen(
      t,
      accelerate(
        (req, res) => {
          calls++
          res.setHeader('etag', '"s"')
          if (req.headers['if-none-match'] === '"s"') {
            res.setHeader('cache-control', 'no-store')
            res.statusCode = 304
            return res.end()
          }
          res.cacheFor = 10
          return 'kept'
        },
        { now: clock.now },
      ),
    )
    await request(url + '/')
    clock.advance(10_000)
    const reply = await request(url + '/')
    t.equal(reply.text, 'kept')
    t.equal(reply.headers['cache-status'], 'node-accelerator; fwd=stale; fwd-status=304; ttl=0')
    t.equal(reply.headers['cache-control'], 'no-store', "the handler's word reaches the client")
    await request(url + '/')
    t.equal(calls, 3, 'still stale: revalidated again')
  },
)

t.test("honorClientNoCache: a client's no-cache revalidates a fresh entry", async (t) => {
  const version = { etag: '"v1"', generated: 0 }
  const origin = lazyOrigin(version)
  const app = accelerate(origin, { honorClientNoCache: true })
  const url = await listen(t, app)
  await request(url + '/r')
  const reply = await request(url + '/r', { headers: { 'cache-control': 'no-cache' } })
  t.equal(reply.text, 'body of "v1"')
  t.same(origin.seen, [undefined, '"v1"'], 'the handler was asked, with the validator')
  t.equal(version.generated, 1, 'and answered 304: nothing regenerated')
  t.equal(app.stats().revalidations, 1)
})

t.test('Age counts from the revalidation, plus any age the 304 declared', async (t) => {
  const clock = manualClock()
  const url = await listen(
    t,
    accelerate(
      (req, res) => {
        res.setHeader('cache-control', 'public, max-age=10')
        res.setHeader('etag', '"a"')
        if (req.headers['if-none-match']) {
          res.setHeader('age', '3')
          res.statusCode = 304
          return res.end()
        }
        return 'aged'
      },
      { now: clock.now },
    ),
  )
  await request(url + '/')
  clock.advance(10_000)
  await request(url + '/')
  clock.advance(2_000)
  const hit = await request(url + '/')
  t.equal(hit.headers.age, '5')
  t.equal(hit.headers['cache-status'], 'node-accelerator; hit; ttl=5')
})

t.test(
  "a HEAD revalidation: the handler's 304 answers it from the entry, refreshed as the cache's own GET",
  async (t) => {
    const clock = manualClock()
    const version = { etag: '"h"', generated: 0 }
    const origin = lazyOrigin(version)
    const app = accelerate(origin, { now: clock.now })
    const url = await listen(t, app)
    await request(url + '/r')
    clock.advance(11_000)
    const head = await request(url + '/r', { method: 'HEAD' })
    t.equal(head.status, 200)
    t.equal(head.body.length, 0)
    t.equal(head.headers['content-length'], '11')
    t.equal(
      head.headers['cache-status'],
      'node-accelerator; fwd=stale; fwd-status=304; stored; ttl=10',
    )
    t.equal(version.generated, 1)
    t.equal(app.stats().stores, 2, 'the entry serves the GETs after it')
  },
)

t.test(
  'RFC 9111 §4.3.5: in a shared cache a HEAD on a stored GET runs as HEAD, and its answer updates the entry or makes it stale',
  async (t) => {
    const clock = manualClock()
    const state = { body: 'version 1', etag: undefined as string | undefined }
    const methods: string[] = []
    const app = accelerate(
      (req, res) => {
        methods.push(req.method!)
        res.cacheFor = 10
        if (state.etag !== undefined) res.setHeader('etag', state.etag)
        if (state.etag !== undefined && req.headers['if-none-match'] === state.etag) {
          res.statusCode = 304
          return res.end()
        }
        // A HEAD given its body whole (Node sends none of it), without ETag or Content-Length.
        res.end(state.body)
      },
      { sharedCache: true, now: clock.now },
    )
    const url = await listen(t, app)
    const head = (headers = {}) => request(url + '/', { method: 'HEAD', headers })
    t.equal(
      (await head()).headers['cache-status'],
      'node-accelerator; fwd=miss; stored',
      "a miss: the cache's own GET",
    )
    t.same(methods, ['GET'])
    clock.advance(11_000)
    const same = await head()
    t.same(methods, ['GET', 'HEAD'], 'a stale entry: the HEAD itself')
    t.equal(
      same.headers['cache-status'],
      'node-accelerator; fwd=stale; fwd-status=200; stored; ttl=10',
      'the same body: updated',
    )
    t.equal(same.headers['content-length'], '9', 'the stored length')
    t.match((await request(url + '/')).headers['cache-status'], /hit/, 'fresh again for a GET')

    state.body = 'version 2!'
    const changed = await head({ 'cache-control': 'no-cache' })
    t.same(methods, ['GET', 'HEAD', 'HEAD'], "a client's no-cache on a fresh entry: a HEAD too")
    t.equal(
      changed.headers['cache-status'],
      'node-accelerator; fwd=stale; detail=head',
      'another body: not stored',
    )
    const after = await request(url + '/')
    t.equal(after.text, 'version 2!', 'the stored GET was made stale: the next GET regenerates it')
    t.equal(after.headers['cache-status'], 'node-accelerator; fwd=stale; stored')
    t.equal(app.stats().stores, 3, 'making it stale is not a store')

    state.etag = '"e"'
    await request(url + '/', { headers: { 'cache-control': 'no-cache' } })
    clock.advance(11_000)
    const notModified = await head()
    t.equal(
      notModified.headers['cache-status'],
      'node-accelerator; fwd=stale; fwd-status=304; stored; ttl=10',
      'a 304 to the HEAD',
    )
    t.equal(notModified.headers.etag, '"e"')
    t.same(methods.slice(-2), ['GET', 'HEAD'])
  },
)

t.test(
  "RFC 9111 §4.3.5: a GET arriving while a shared cache's HEAD revalidates is served the entry it refreshed",
  async (t) => {
    const clock = manualClock()
    const methods: string[] = []
    const asked = gate()
    const release = gate()
    const app = accelerate(
      async (req, res) => {
        methods.push(req.method!)
        if (methods.length === 2) {
          asked.open()
          await release.promise
        }
        res.cacheFor = 10
        res.setHeader('etag', '"a"')
        res.end('body')
      },
      { sharedCache: true, now: clock.now },
    )
    const url = await listen(t, app)
    await request(url + '/')
    clock.advance(11_000)
    const head = request(url + '/', { method: 'HEAD' })
    await asked.promise
    const get = request(url + '/')
    await eventually(() => app.stats().coalesced === 1, 'the GET waits on the HEAD')
    release.open()
    t.equal(
      (await head).headers['cache-status'],
      'node-accelerator; fwd=stale; fwd-status=200; stored; ttl=10',
    )
    const served = await get
    t.equal(served.text, 'body', 'the GET gets the stored body')
    t.same(methods, ['GET', 'HEAD'], 'without running the handler again')
  },
)

t.test(
  'an invalidation during a revalidation keeps the refreshed entry out of the store',
  async (t) => {
    const clock = manualClock()
    const asked = gate()
    const answer = gate()
    const origin = counted(async (req, res) => {
      res.cacheFor = 10
      res.tags = ['t']
      res.setHeader('etag', '"r"')
      if (req.headers['if-none-match'] === '"r"' && origin.calls === 2) {
        asked.open()
        await answer.promise
        res.statusCode = 304
        return res.end()
      }
      return `render ${origin.calls}`
    })
    const app = accelerate(origin, { now: clock.now })
    const url = await listen(t, app)
    await request(url + '/')
    clock.advance(11_000)
    const revalidating = request(url + '/')
    await asked.promise
    await app.invalidateTags(['t'])
    answer.open()
    t.equal((await revalidating).text, 'render 1', 'the client that asked gets what was confirmed')
    t.equal(
      (await request(url + '/')).text,
      'render 3',
      'but it was not stored: the next request regenerates',
    )
  },
)
