// Coalescing: concurrent misses for one key run the handler once; when the response turns out
// not storable, each waiter runs the handler itself; nobody waits past coalesceTimeoutMs.
import t, { type Test } from 'tap'
import http from 'node:http'
import { accelerate, type Handler } from '../../src/index.js'
import {
  abortAfterFirstChunk,
  counted,
  eventually,
  gate,
  listen,
  manualClock,
  pattern,
  request,
  requestError,
  type Reply,
} from '../fixtures/http.js'

/** Starts the leader, waits until it runs, then sends `n` more requests that must wait on it. */
async function crowd(t: Test, handler: Handler, n: number, options = {}) {
  const release = gate()
  const origin = counted(async (req, res) => {
    if (origin.calls === 1) await release.promise
    return handler(req, res)
  })
  const app = accelerate(origin, options)
  const url = await listen(t, app)
  const leader = request(url + '/k', { headers: { 'x-client': 'leader' } })
  await eventually(() => origin.calls === 1, 'the leader is generating')
  const waiters = Array.from({ length: n }, (_, i) =>
    request(url + '/k', { headers: { 'x-client': `waiter-${i}` } }),
  )
  await eventually(() => app.stats().coalesced === n, `${n} requests wait on the leader`)
  return {
    app,
    origin,
    release,
    all: async (): Promise<Reply[]> => Promise.all([leader, ...waiters]),
  }
}

t.test('50 concurrent misses run the handler once, and all get the whole response', async (t) => {
  const body = pattern(200 * 1024)
  const handler: Handler = (_req, res) => {
    res.cacheFor = 60
    res.setHeader('content-type', 'application/octet-stream')
    return body
  }
  const { app, origin, release, all } = await crowd(t, handler, 49)
  release.open()
  const replies = await all()
  t.equal(origin.calls, 1, 'one handler call')
  t.ok(
    replies.every((reply) => reply.status === 200 && reply.body.equals(body)),
    'every client got every byte',
  )
  t.equal(replies.filter((reply) => /hit/.test(String(reply.headers['cache-status']))).length, 49)
  t.match(app.stats(), { misses: 1, hits: 49, coalesced: 49, stores: 1 })
})

t.test(
  'a leader that turns out not storable (Set-Cookie): each waiter runs the handler, with its own cookie',
  async (t) => {
    const handler: Handler = (req, res) => {
      res.cacheFor = 60
      res.setHeader('set-cookie', `session=${req.headers['x-client']}`)
      return `for ${req.headers['x-client']}`
    }
    const { origin, release, all } = await crowd(t, handler, 5)
    release.open()
    const replies = await all()
    t.equal(origin.calls, 6)
    for (const reply of replies) {
      const client = reply.text.slice(4)
      t.same(
        reply.headers['set-cookie'],
        [`session=${client}`],
        `${client} got its own cookie only`,
      )
    }
  },
)

t.test(
  "waiters are released as soon as the leader's headers say it will not be stored",
  async (t) => {
    const leaderEnds = gate()
    let served = 0
    const origin = counted(async (req, res) => {
      res.setHeader('cache-control', 'private')
      if (req.headers['x-client'] === 'leader') {
        res.write('leader starts')
        await leaderEnds.promise
      }
      served++
      res.end(' done')
    })
    const app = accelerate(origin)
    const url = await listen(t, app)
    const leader = request(url + '/k', { headers: { 'x-client': 'leader' } })
    await eventually(() => origin.calls === 1, 'leader running')
    // The leader's headers already went out: a private response, so nobody waits on it.
    const waiter = await request(url + '/k', { headers: { 'x-client': 'waiter' } })
    t.equal(waiter.text, ' done', 'served while the leader is still streaming')
    t.equal(served, 1)
    leaderEnds.open()
    t.equal((await leader).text, 'leader starts done')
  },
)

t.test(
  'a leader that throws before sending anything: waiters run the handler and get whole bodies',
  async (t) => {
    const handler: Handler = (req, res) => {
      if (req.headers['x-client'] === 'leader') throw new Error('leader failed')
      res.cacheFor = 60
      return `whole for ${req.headers['x-client']}`
    }
    const { origin, release, all } = await crowd(t, handler, 3, { onError: () => {} })
    release.open()
    const [leader, ...waiters] = await all()
    t.equal(leader!.status, 500)
    t.same(waiters.map((r) => r.text).sort(), [
      'whole for waiter-0',
      'whole for waiter-1',
      'whole for waiter-2',
    ])
    t.equal(origin.calls, 4)
  },
)

t.test(
  'a leader that fails mid-body: the waiters reading it are cut like it, never ended as if complete',
  async (t) => {
    const errors: string[] = []
    const release = gate()
    const origin = counted(async (req, res) => {
      res.cacheFor = 60
      if (origin.calls === 1) {
        res.write('part')
        await release.promise
        throw new Error('leader failed mid-stream')
      }
      return `whole for ${req.headers['x-client']}`
    })
    const app = accelerate(origin, { onError: (err) => errors.push(err.message) })
    const url = await listen(t, app)
    const leader = requestError(url + '/k', { headers: { 'x-client': 'leader' } })
    await eventually(() => origin.calls === 1, 'leader running')
    const waiters = [1, 2, 3].map((i) =>
      requestError(url + '/k', { headers: { 'x-client': `w${i}` } }),
    )
    await eventually(() => app.stats().coalesced === 3, 'waiting')
    release.open()
    await Promise.all([leader, ...waiters])
    t.same(errors, ['leader failed mid-stream'])
    t.equal(
      (await request(url + '/k', { headers: { 'x-client': 'next' } })).text,
      'whole for next',
      'nothing was stored',
    )
    t.equal(origin.calls, 2)
  },
)

t.test(
  'a leader whose client goes away mid-body: the handler goes on for the waiters, and it is stored',
  async (t) => {
    const more = gate()
    const origin = counted(async (_req, res) => {
      res.cacheFor = 60
      res.write(Buffer.alloc(64 * 1024, 'a'))
      await more.promise
      res.end('the end')
    })
    const app = accelerate(origin)
    const url = await listen(t, app)
    const leader = abortAfterFirstChunk(url + '/k', { 'x-client': 'leader' })
    await eventually(() => origin.calls === 1, 'leader running')
    const waiters = [1, 2].map(() => request(url + '/k'))
    await eventually(() => app.stats().coalesced === 2, 'waiting')
    await leader
    more.open()
    for (const reply of await Promise.all(waiters)) t.equal(reply.body.length, 64 * 1024 + 7)
    await eventually(() => app.stats().stores === 1, 'stored')
    t.match((await request(url + '/k')).headers['cache-status'], /; hit;/)
    t.equal(origin.calls, 1)
  },
)

t.test(
  'a leader whose client goes away before any header: one waiter leads the next generation',
  async (t) => {
    const release = gate()
    const origin = counted(async (req, res) => {
      res.cacheFor = 60
      if (origin.calls === 1) {
        await new Promise((resolve) => res.once('close', resolve))
        return
      }
      await release.promise
      return 'whole'
    })
    const app = accelerate(origin)
    const url = await listen(t, app)
    const leader = http.get(url + '/k')
    leader.on('error', () => {})
    await eventually(() => origin.calls === 1, 'leader running')
    const waiters = [1, 2, 3].map(() => request(url + '/k'))
    await eventually(() => app.stats().coalesced === 3, 'waiting')
    leader.destroy()
    await eventually(() => origin.calls === 2, 'one waiter leads')
    release.open()
    t.same(
      (await Promise.all(waiters)).map((reply) => reply.text),
      ['whole', 'whole', 'whole'],
    )
    t.equal(origin.calls, 2, 'the others waited on it')
  },
)

t.test('a leader too large to store releases its waiters when it outgrows the limit', async (t) => {
  const finishLeader = gate()
  const origin = counted(async (req, res) => {
    res.cacheFor = 60
    if (req.headers['x-client'] !== 'leader') return 'small enough'
    res.write(Buffer.alloc(600))
    await new Promise((resolve) => setImmediate(resolve))
    res.write(Buffer.alloc(600)) // over maxEntryBytes: the copy stops, waiters go
    await finishLeader.promise
    res.end()
  })
  const app = accelerate(origin, { maxEntryBytes: 1000 })
  const url = await listen(t, app)
  const leader = request(url + '/k', { headers: { 'x-client': 'leader' } })
  await eventually(() => origin.calls === 1, 'leader running')
  const waiter = request(url + '/k', { headers: { 'x-client': 'w' } })
  t.equal((await waiter).text, 'small enough', 'served before the leader finished')
  finishLeader.open()
  t.equal((await leader).body.length, 1200)
})

t.test('waiters wait at most coalesceTimeoutMs, then run the handler themselves', async (t) => {
  const release = gate()
  const origin = counted(async (req, res) => {
    res.cacheFor = 60
    if (req.headers['x-client'] === 'leader') await release.promise
    return `for ${req.headers['x-client']}`
  })
  const app = accelerate(origin, { coalesceTimeoutMs: 30 })
  const url = await listen(t, app)
  const leader = request(url + '/k', { headers: { 'x-client': 'leader' } })
  await eventually(() => origin.calls === 1, 'leader running')
  // A real timer is the point here: the bound on waiting.
  t.equal((await request(url + '/k', { headers: { 'x-client': 'w' } })).text, 'for w')
  release.open()
  t.equal((await leader).text, 'for leader')
})

t.test('coalesceTimeoutMs: 0 turns coalescing off', async (t) => {
  const release = gate()
  const origin = counted(async (req, res) => {
    res.cacheFor = 60
    if (req.headers['x-client'] === 'leader') await release.promise
    return `for ${req.headers['x-client']}`
  })
  const url = await listen(t, accelerate(origin, { coalesceTimeoutMs: 0 }))
  const leader = request(url + '/k', { headers: { 'x-client': 'leader' } })
  await eventually(() => origin.calls === 1, 'leader running')
  t.equal((await request(url + '/k', { headers: { 'x-client': 'w' } })).text, 'for w')
  release.open()
  await leader
})

t.test('a waiter with a matching validator gets its own 304; a HEAD waiter no body', async (t) => {
  const handler: Handler = (_req, res) => {
    res.cacheFor = 60
    res.setHeader('etag', '"same"')
    return 'body'
  }
  const release = gate()
  const origin = counted(async (req, res) => {
    if (origin.calls === 1) await release.promise
    return handler(req, res)
  })
  const app = accelerate(origin)
  const url = await listen(t, app)
  const leader = request(url + '/k')
  await eventually(() => origin.calls === 1, 'leader running')
  const conditional = request(url + '/k', { headers: { 'if-none-match': '"same"' } })
  const head = request(url + '/k', { method: 'HEAD' })
  await eventually(() => app.stats().coalesced === 2, 'waiting')
  release.open()
  t.equal((await leader).text, 'body')
  t.equal((await conditional).status, 304)
  const headReply = await head
  t.equal(headReply.status, 200)
  t.equal(headReply.body.length, 0)
  t.equal(headReply.headers['content-length'], '4')
  t.equal(origin.calls, 1)
})

t.test('a request arriving once the response under way is stale is not served it', async (t) => {
  const clock = manualClock()
  const release = gate()
  const origin = counted(async (req, res) => {
    res.cacheFor = 10
    res.write(`for ${req.headers['x-client']}`) // headers, and so freshness, decided now
    if (req.headers['x-client'] === 'leader') await release.promise
    res.end()
  })
  const app = accelerate(origin, { now: clock.now })
  const url = await listen(t, app)
  const leader = request(url + '/k', { headers: { 'x-client': 'leader' } })
  await eventually(() => origin.calls === 1, 'leader running')
  clock.advance(10_000) // the leader's response is stale before the waiter arrives
  const waiter = request(url + '/k', { headers: { 'x-client': 'w' } })
  t.equal((await waiter).text, 'for w', 'it led the next generation')
  release.open()
  t.equal((await leader).text, 'for leader')
})

t.test(
  'hit-for-miss: after a response that could not be shared, requests for the key run at once instead of queueing behind each other',
  async (t) => {
    const clock = manualClock()
    let held = gate()
    let shareable = false
    const origin = counted(async (req, res) => {
      if (req.headers['x-client'] !== 'first') await held.promise
      if (shareable) res.cacheFor = 60
      else res.setHeader('set-cookie', `session=${req.headers['x-client']}`)
      return `for ${req.headers['x-client']}`
    })
    const app = accelerate(origin, { now: clock.now })
    const url = await listen(t, app)
    const burst = (tag: string) =>
      Array.from({ length: 3 }, (_, i) =>
        request(url + '/k', { headers: { 'x-client': `${tag}-${i}` } }),
      )

    t.equal((await request(url + '/k', { headers: { 'x-client': 'first' } })).text, 'for first')
    // Its Set-Cookie response could not be shared: the next three all run now, none waits.
    const parallel = burst('a')
    await eventually(
      () => origin.calls === 4,
      'three handler runs at once, none queued behind another',
    )
    t.equal(app.stats().coalesced, 0, 'nobody waited')
    held.open()
    for (const reply of await Promise.all(parallel))
      t.match(reply.headers['cache-status'], /detail=set-cookie/)

    // 120 s later (Varnish's hit-for-miss TTL) the key coalesces again: one leads, two wait.
    clock.advance(120_000)
    held = gate()
    const queued = burst('b')
    await eventually(() => app.stats().coalesced === 2, 'two wait on the one generating')
    t.equal(origin.calls, 5, 'one handler run for three requests')
    held.open()
    await Promise.all(queued)
    t.equal(origin.calls, 7, 'the two waiters ran on their own once it could not be shared')

    // A response that can be shared ends it at once: it is stored, and once it is purged the next
    // burst coalesces on the key again.
    shareable = true
    clock.advance(1000)
    held.open()
    t.equal((await request(url + '/k', { headers: { 'x-client': 'first' } })).text, 'for first')
    t.equal(origin.calls, 8)
    await app.invalidate('/k')
    held = gate()
    const third = burst('c')
    await eventually(() => app.stats().coalesced === 4, 'one leads, the other two wait')
    t.equal(origin.calls, 9, 'one handler run for three requests')
    held.open()
    const texts = (await Promise.all(third)).map((reply) => reply.text)
    t.match(texts[0], /^for c-\d$/)
    t.same(texts, [texts[0], texts[0], texts[0]], 'all three got the one response')
  },
)
