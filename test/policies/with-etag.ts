// withEtag(etagFn, handler): the cheap etagFn runs first; a client whose copy is current gets a
// 304 (or, for other methods, a 412) and the handler never runs. Counters on etagFn and on the
// handler prove which ran.
import t, { type Test } from 'tap'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import express from 'express'
import { accelerate, cachePolicy, withEtag, type EtagValue } from '../../src/index.js'
import { failedPrecondition, ifMatch } from '../../src/policies/with-etag.js'
import { listen, manualClock, request } from '../fixtures/http.js'

/**
 * withEtag over counters: `etag` is what etagFn returns; the handler's body is lazy. The policy
 * is applied before withEtag, as docs/policies.md says: a 304 from withEtag never runs the handler,
 * so only a TTL set outside it reaches the cache when it refreshes a stale entry.
 */
function counters(etag: () => EtagValue | Promise<EtagValue>, policyInside = false) {
  const calls = { etagFn: 0, handler: 0, rendered: 0 }
  const policy = cachePolicy({ cacheFor: 60 })
  const wrapped = withEtag(
    () => (calls.etagFn++, etag()),
    (req: IncomingMessage, res: ServerResponse) => {
      calls.handler++
      if (policyInside) policy(req, res)
      return (async function* render() {
        calls.rendered++
        yield 'the expensive report'
      })()
    },
  )
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (!policyInside) policy(req, res)
    return wrapped(req, res)
  }
  return { calls, wrapped: handler }
}

t.test('a matching If-None-Match on a miss: 304, and the handler never runs', async (t) => {
  let version = 1
  const { calls, wrapped } = counters(() => `"v${version}"`)
  const clock = manualClock()
  const app = accelerate(wrapped, { now: clock.now })
  t.teardown(() => app.close())
  const url = await listen(t, app)

  const conditional = await request(url + '/report', { headers: { 'if-none-match': '"v1"' } })
  t.equal(conditional.status, 304)
  t.equal(conditional.headers.etag, '"v1"')
  t.equal(conditional.headers['cache-status'], 'node-accelerator; fwd=miss; detail=status')
  t.same(calls, { etagFn: 1, handler: 0, rendered: 0 }, 'etagFn ran; the handler did not')

  const full = await request(url + '/report', { headers: { 'if-none-match': '"v0"' } })
  t.equal(full.status, 200)
  t.equal(full.text, 'the expensive report')
  t.equal(full.headers.etag, '"v1"', 'the ETag is set before the handler runs')
  t.same(calls, { etagFn: 2, handler: 1, rendered: 1 })

  const hit = await request(url + '/report', { headers: { 'if-none-match': '"v1"' } })
  t.equal(hit.status, 304)
  t.match(hit.headers['cache-status'], /hit/)
  t.equal(calls.etagFn, 2, 'a hit asks nothing of the origin')

  clock.advance(61_000)
  const revalidated = await request(url + '/report')
  t.equal(revalidated.text, 'the expensive report')
  t.equal(
    revalidated.headers['cache-status'],
    'node-accelerator; fwd=stale; fwd-status=304; stored; ttl=60',
    'the stale entry is revalidated with its ETag, and withEtag said 304',
  )
  t.same(calls, { etagFn: 3, handler: 1, rendered: 1 }, 'without running the handler')
  t.equal(app.stats().revalidations, 1)

  version = 2
  clock.advance(61_000)
  const changed = await request(url + '/report')
  t.equal(changed.headers.etag, '"v2"')
  t.same(calls, { etagFn: 4, handler: 2, rendered: 2 }, 'a new version runs the handler')
})

// A 304 from withEtag never runs the handler: a TTL set in there never reaches the cache.
t.test('a policy inside the wrapped handler: the stale entry is served, unrefreshed', async (t) => {
  const { calls, wrapped } = counters(() => '"v1"', true)
  const clock = manualClock()
  const app = accelerate(wrapped, { now: clock.now })
  t.teardown(() => app.close())
  const url = await listen(t, app)
  await request(url)
  clock.advance(61_000)
  const unrefreshed = 'node-accelerator; fwd=stale; fwd-status=304; ttl=-1'
  t.equal((await request(url)).headers['cache-status'], unrefreshed)
  t.equal((await request(url)).headers['cache-status'], unrefreshed, 'so each request asks etagFn')
  t.same(calls, { etagFn: 3, handler: 1, rendered: 1 })
})

/** A plain http server (no accelerator) running `wrapped`; records what the handler saw. */
async function plain(t: Test, etag: EtagValue) {
  const seen: Array<{ method: string; etag: unknown }> = []
  const wrapped = withEtag(
    () => etag,
    (req: IncomingMessage, res: ServerResponse) => {
      seen.push({ method: req.method!, etag: res.getHeader('etag') })
      res.end('ran')
    },
  )
  const url = await listen(t, (req, res) => void wrapped(req, res))
  return { url, seen }
}

t.test('If-None-Match uses the weak comparison (RFC 9110 §13.1.2)', async (t) => {
  const cases: Array<[EtagValue, string, number]> = [
    ['"v1"', '"v1"', 304],
    ['W/"v1"', '"v1"', 304],
    ['"v1"', 'W/"v1"', 304],
    ['"v1"', '"v0", "v1"', 304],
    ['"v1"', '*', 304],
    ['"v1"', '"v0"', 200],
    ['"v1"', 'v1', 200],
    ['"v1"', '"v1', 200],
  ]
  for (const [etag, header, status] of cases) {
    const { url, seen } = await plain(t, etag)
    const reply = await request(url, { headers: { 'if-none-match': header } })
    t.equal(reply.status, status, `ETag ${etag}, If-None-Match: ${header}`)
    t.equal(reply.headers.etag, etag)
    t.equal(seen.length, status === 304 ? 0 : 1)
  }
  const { url, seen } = await plain(t, '"v1"')
  const head = await request(url, { method: 'HEAD', headers: { 'if-none-match': '"v1"' } })
  t.equal(head.status, 304, 'HEAD too')
  t.same(seen, [])
})

t.test('If-Match: strong comparison (RFC 9110 §13.1.1), for every method', async (t) => {
  const cases: Array<[string, EtagValue, Record<string, string>, number]> = [
    ['PUT', '"v1"', { 'if-match': '"v1"' }, 200],
    ['PUT', '"v1"', { 'if-match': '"v0", "v1"' }, 200],
    ['PUT', '"v1"', { 'if-match': 'junk, "v1"' }, 200],
    ['PUT', '"v1"', { 'if-match': '*' }, 200],
    ['PUT', '"v1"', { 'if-match': '"v0"' }, 412],
    ['PUT', '"v1"', { 'if-match': 'W/"v1"' }, 412],
    ['PUT', 'W/"v1"', { 'if-match': 'W/"v1"' }, 412],
    ['PUT', 'W/"v1"', { 'if-match': '*' }, 200],
    ['PUT', '"v1"', { 'if-match': 'v1' }, 412],
    ['PUT', '"v1"', { 'if-match': '"v1" junk' }, 412],
    ['PUT', '"v1"', { 'if-none-match': '*' }, 412],
    ['PUT', '"v1"', { 'if-none-match': '"v0"' }, 200],
    ['DELETE', '"v1"', { 'if-none-match': '"v1"' }, 412],
    ['GET', '"v1"', { 'if-match': '"v0"' }, 412],
    ['GET', '"v1"', { 'if-match': '"v1"', 'if-none-match': '"v1"' }, 304],
  ]
  for (const [method, etag, headers, status] of cases) {
    const { url, seen } = await plain(t, etag)
    const reply = await request(url, { method, headers })
    const name = `${method} with ETag ${etag} and ${JSON.stringify(headers)}`
    t.equal(reply.status, status, name)
    const ran = status === 200
    t.equal(seen.length, ran ? 1 : 0, `${name}: the handler ${ran ? 'ran' : 'never ran'}`)
    if (status === 412) {
      t.equal(reply.text, 'Precondition Failed\n')
      t.equal(reply.headers.etag, etag, 'a 412 says what is current')
    }
    // After an unsafe method the old tag describes nothing: none is set.
    if (ran) t.same(seen[0]!.etag, method === 'GET' ? etag : undefined, 'ETag only for GET')
  }
})

t.test('what etagFn may return', async (t) => {
  const cases: Array<[string, () => EtagValue | Promise<EtagValue>, string | undefined]> = [
    ['a bare value is quoted (strong)', () => 'abc123', '"abc123"'],
    ['a weak tag is kept', () => 'W/"abc"', 'W/"abc"'],
    ['a promise', () => Promise.resolve('"async"'), '"async"'],
    ['undefined: the handler runs without a validator', () => undefined, undefined],
    ['null: the same', () => null, undefined],
  ]
  for (const [name, etag, expected] of cases) {
    const { calls, wrapped } = counters(etag)
    const app = accelerate(wrapped)
    t.teardown(() => app.close())
    const url = await listen(t, app)
    const reply = await request(url, { headers: { 'if-none-match': '"abc123", W/"abc", "async"' } })
    t.equal(reply.status, expected === undefined ? 200 : 304, name)
    t.equal(calls.handler, expected === undefined ? 1 : 0)
    if (expected !== undefined) t.equal(reply.headers.etag, expected)
    else t.equal(reply.headers.etag, undefined)
  }

  const errors: Error[] = []
  const onError = (err: Error) => void errors.push(err)
  const app = accelerate(
    withEtag(
      () => 'has space' as string,
      () => 'never',
    ),
    { onError },
  )
  t.teardown(() => app.close())
  const url = await listen(t, app)
  t.equal((await request(url)).status, 500)
  t.match(errors, [
    {
      name: 'TypeError',
      message:
        'withEtag: expected etagFn to return an entity-tag ("v1", W/"v1"), a bare value of ' +
        'visible ASCII, or undefined, got "has space"',
    },
  ])
  t.throws(() => withEtag('"v1"' as never, () => undefined), {
    name: 'TypeError',
    message: 'withEtag: expected etagFn to be a function, got "\\"v1\\""',
  })
  t.throws(() => withEtag(() => '"v1"', undefined as never), {
    name: 'TypeError',
    message: 'withEtag: expected handler to be a function, got undefined',
  })
})

t.test('a sync etagFn keeps the handler sync; an async one returns its promise', async (t) => {
  const results: unknown[] = []
  const sync = withEtag(
    () => '"s"',
    () => 'returned',
  )
  const later = withEtag(
    async () => '"a"',
    () => 'returned',
  )
  const url = await listen(t, (req, res) => {
    const result = (req.url === '/sync' ? sync : later)(req, res)
    results.push(result)
    void Promise.resolve(result).then((body) => res.end(body))
  })
  await request(url + '/sync')
  await request(url + '/async')
  t.equal(results[0], 'returned')
  t.ok(results[1] instanceof Promise)
  t.equal(await results[1], 'returned')
})

t.test('Express route behind a policy: the 304 has its headers, no content ones', async (t) => {
  const acc = accelerate(() => undefined)
  t.teardown(() => acc.close())
  let handled = 0
  const app = express()
  app.use(acc.middleware)
  app.use((_req, res, next) => (res.type('html'), next()))
  const etagOf = (req: express.Request) => `"doc-${req.params.id}-3"`
  const show = (req: express.Request, res: express.Response) => {
    handled++
    res.send(`<p>doc ${req.params.id}</p>`)
  }
  app.get('/doc/:id', cachePolicy({ cacheFor: 60, tags: ['docs'] }), withEtag(etagOf, show))
  const url = await listen(t, app)
  const notModified = await request(url + '/doc/7', { headers: { 'if-none-match': '"doc-7-3"' } })
  t.equal(notModified.status, 304)
  t.equal(notModified.headers['cache-control'], 'max-age=0')
  t.equal(notModified.headers['content-type'], undefined, 'RFC 9110 §15.4.5: no content headers')
  t.equal(handled, 0)
  const full = await request(url + '/doc/7')
  t.equal(full.headers.etag, '"doc-7-3"', 'Express keeps the ETag set before res.send')
  t.equal(full.text, '<p>doc 7</p>')
  t.match((await request(url + '/doc/7')).headers['cache-status'], /hit/)
  t.equal(handled, 1)
})

t.test('the pure rules', async (t) => {
  t.equal(failedPrecondition({}, '"a"', true), undefined, 'no preconditions')
  t.equal(ifMatch('', '"a"'), false, 'an empty If-Match has no member to match')
  t.equal(ifMatch(' ,, "a" ', '"a"'), true, 'empty list elements and OWS')
  t.equal(ifMatch('"b", ', '"a"'), false)
  t.equal(ifMatch('"a,b"', '"a,b"'), true, 'a comma inside an opaque-tag does not split')
  // A long malformed header is rejected in time linear in its length.
  t.equal(ifMatch('"'.padEnd(100_000, 'x,'), '"a"'), false)
  t.equal(http.STATUS_CODES[412], 'Precondition Failed')
})
