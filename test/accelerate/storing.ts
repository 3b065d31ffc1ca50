// What is stored, through real sockets: each opt-in, each "never stored" rule, each bypass.
import t, { type Test } from 'tap'
import { accelerate, type Handler } from '../../src/index.js'
import {
  counted,
  eventually,
  gate,
  listen,
  request,
  type RequestOptions,
} from '../fixtures/http.js'

/** Requests `path` twice; resolves how often the handler ran (1 = stored, 2 = not stored). */
async function runs(
  t: Test,
  handler: Handler,
  second: RequestOptions = {},
  first: RequestOptions = {},
  options = {},
) {
  const origin = counted(handler)
  const url = await listen(t, accelerate(origin, options))
  await request(url + '/p', first)
  await request(url + '/p', second)
  return origin.calls
}

t.test('opt-ins', async (t) => {
  t.equal(
    await runs(t, (_req, res) => {
      res.cacheFor = 60
      res.end('x')
    }),
    1,
    'res.cacheFor',
  )
  t.equal(
    await runs(t, (_req, res) => {
      res.locals.cacheFor = 60
      res.end('x')
    }),
    1,
    'res.locals.cacheFor, on a raw http response',
  )
  t.equal(
    await runs(t, (_req, res) => {
      res.setHeader('cache-control', 's-maxage=60')
      res.end('x')
    }),
    1,
    's-maxage',
  )
  t.equal(
    await runs(t, (_req, res) => {
      res.writeHead(200, { 'cache-control': 'public, max-age=60' })
      res.end('x')
    }),
    1,
    'public, max-age given to writeHead',
  )
  t.equal(
    await runs(t, (_req, res) => {
      res.setHeader('expires', new Date(Date.now() + 60_000).toUTCString())
      res.end('x')
    }),
    1,
    'Expires',
  )
  t.equal(
    await runs(t, (_req, res) => res.end('x'), {}, {}, { defaultCacheFor: 60 }),
    1,
    'defaultCacheFor',
  )
  t.equal(await runs(t, (_req, res) => res.end('x')), 2, 'nothing said: not stored')
})

t.test('never stored', async (t) => {
  t.equal(
    await runs(t, (_req, res) => {
      res.cacheFor = 60
      res.setHeader('set-cookie', 'session=abc')
      res.end('x')
    }),
    2,
    'Set-Cookie',
  )
  t.equal(
    await runs(t, (_req, res) => {
      res.cacheFor = 60
      res.writeHead(200, ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'])
      res.end('x')
    }),
    2,
    'Set-Cookie given to writeHead as an array',
  )
  t.equal(
    await runs(t, (_req, res) => {
      res.cacheFor = 60
      res.setHeader('cache-control', 'private')
      res.end('x')
    }),
    2,
    'private',
  )
  t.equal(
    await runs(t, (_req, res) => {
      res.cacheFor = 60
      res.setHeader('cache-control', 'no-store')
      res.end('x')
    }),
    2,
    'no-store',
  )
  t.equal(
    await runs(t, (_req, res) => {
      res.cacheFor = 60
      res.statusCode = 500
      res.end('x')
    }),
    2,
    'a status outside cacheableStatuses',
  )
  t.equal(
    await runs(
      t,
      (_req, res) => {
        res.cacheFor = 60
        res.end('x')
      },
      {},
      { headers: { authorization: 'Basic eDp5' } },
    ),
    2,
    'a request with Authorization',
  )
  t.equal(
    await runs(
      t,
      (_req, res) => {
        res.setHeader('cache-control', 'public, max-age=60')
        res.end('x')
      },
      {},
      { headers: { authorization: 'Basic eDp5' } },
    ),
    1,
    'Authorization and public: stored (RFC 9111 §3.5)',
  )
  t.equal(
    await runs(
      t,
      (_req, res) => {
        res.cacheFor = 60
        res.end('x')
      },
      {},
      { headers: { 'cache-control': 'no-store' } },
    ),
    2,
    'a request with Cache-Control: no-store',
  )
  t.equal(
    await runs(t, (_req, res) => {
      res.cacheFor = 60
      res.setHeader('vary', 'Accept-Encoding, *')
      res.end('x')
    }),
    2,
    'Vary: * (RFC 9110 §12.5.5)',
  )
})

t.test(
  "a client's no-store does not stop it being served a stored response (RFC 9111 §5.2.1.5)",
  async (t) => {
    t.equal(
      await runs(
        t,
        (_req, res) => {
          res.cacheFor = 60
          res.end('x')
        },
        { headers: { 'cache-control': 'no-store' } },
      ),
      1,
    )
  },
)

t.test('If-Match and If-Unmodified-Since go to the handler (RFC 9111 §4.3.2)', async (t) => {
  for (const headers of [
    { 'if-match': '"a"' },
    { 'if-unmodified-since': new Date().toUTCString() },
  ]) {
    t.equal(
      await runs(
        t,
        (_req, res) => {
          res.cacheFor = 60
          res.end('x')
        },
        { headers },
      ),
      2,
      Object.keys(headers).join(),
    )
  }
})

t.test(
  'a Range on a fresh entry is answered from it; on a miss it goes to the handler, unstored',
  async (t) => {
    t.equal(
      await runs(
        t,
        (_req, res) => {
          res.cacheFor = 60
          res.end('0123456789')
        },
        { headers: { range: 'bytes=2-4' } },
      ),
      1,
      'answered from the cache',
    )
    t.equal(
      await runs(
        t,
        (_req, res) => {
          res.cacheFor = 60
          res.end('0123456789')
        },
        {},
        { headers: { range: 'bytes=2-4' } },
      ),
      2,
      'the first, a Range miss, was not stored',
    )
  },
)

t.test("a client's no-cache regenerates only with honorClientNoCache", async (t) => {
  const handler: Handler = (_req, res) => {
    res.cacheFor = 60
    res.end('x')
  }
  t.equal(
    await runs(t, handler, { headers: { 'cache-control': 'no-cache' } }),
    1,
    'ignored by default',
  )
  const honor = { honorClientNoCache: true }
  t.equal(
    await runs(t, handler, { headers: { 'cache-control': 'no-cache' } }, {}, honor),
    2,
    'Cache-Control: no-cache',
  )
  t.equal(
    await runs(t, handler, { headers: { 'cache-control': 'max-age=0' } }, {}, honor),
    2,
    'max-age=0',
  )
  t.equal(
    await runs(t, handler, { headers: { pragma: 'no-cache' } }, {}, honor),
    2,
    'Pragma: no-cache',
  )
  t.equal(
    await runs(
      t,
      handler,
      { headers: { pragma: 'no-cache', 'cache-control': 'max-age=5' } },
      {},
      honor,
    ),
    1,
    'Pragma is ignored beside Cache-Control (RFC 9111 §5.4)',
  )
})

t.test(
  'only-if-cached answers 504 on a miss, the entry on a hit (RFC 9111 §5.2.1.7)',
  async (t) => {
    const origin = counted((_req, res) => {
      res.cacheFor = 60
      res.end('x')
    })
    const url = await listen(t, accelerate(origin))
    const miss = await request(url + '/o', { headers: { 'cache-control': 'only-if-cached' } })
    t.equal(miss.status, 504)
    t.equal(miss.headers['cache-status'], 'node-accelerator; detail=only-if-cached')
    t.equal(origin.calls, 0)
    await request(url + '/o')
    const hit = await request(url + '/o', { headers: { 'cache-control': 'only-if-cached' } })
    t.equal(hit.status, 200)
    t.equal(hit.text, 'x')
  },
)

t.test(
  'cacheFor set after the headers went out is too late: the decision is taken at writeHead, and it is reported',
  async (t) => {
    const errors: string[] = []
    t.equal(
      await runs(
        t,
        (_req, res) => {
          res.write('x')
          res.cacheFor = 60
          res.end()
        },
        {},
        {},
        { onError: (err: Error, { op }: { op: string }) => errors.push(`${op}: ${err.message}`) },
      ),
      2,
    )
    // Reported once the response is over, which the client may see first.
    await eventually(() => errors.length >= 2, 'one report per response')
    t.equal(errors.length, 2, 'once per response')
    t.match(
      errors[0],
      /^cacheFor: res\.cacheFor was set after the response headers were sent, too late to store it; set it before the first write/,
    )
  },
)

t.test('a negative res.cacheFor is reported, and nothing is stored', async (t) => {
  const errors: string[] = []
  t.equal(
    await runs(
      t,
      (_req, res) => {
        res.cacheFor = -5
        res.end('x')
      },
      {},
      {},
      { onError: (err: Error, { op }: { op: string }) => errors.push(`${op}: ${err.message}`) },
    ),
    2,
  )
  t.match(
    errors[0],
    /^cacheFor: expected res\.cacheFor to be a number of seconds of at least 0, got -5: the response is not stored; set 0/,
  )
})

t.test('a res.cacheFor that is not a number is reported, and nothing is stored', async (t) => {
  const errors: string[] = []
  t.equal(
    await runs(
      t,
      (_req, res) => {
        ;(res as { cacheFor?: unknown }).cacheFor = '60'
        res.end('x')
      },
      {},
      {},
      { onError: (err: Error, { op }: { op: string }) => errors.push(`${op}: ${err.message}`) },
    ),
    2,
  )
  const message =
    'cacheFor: expected res.cacheFor to be a number of seconds, got "60": the response is not stored; set 0 (or nothing) not to store it, a positive number to store it'
  t.same(errors, [message, message])
})

t.test('hop-by-hop headers and Set-Cookie-free headers: what a hit replays', async (t) => {
  const url = await listen(
    t,
    accelerate((_req, res) => {
      res.cacheFor = 60
      res.setHeader('connection', 'x-hop')
      res.setHeader('x-hop', 'per-connection')
      res.setHeader('keep-alive', 'timeout=99')
      res.setHeader('x-kept', 'end-to-end')
      res.end('x')
    }),
  )
  await request(url + '/')
  const hit = await request(url + '/')
  t.equal(hit.headers['x-kept'], 'end-to-end')
  t.equal(
    hit.headers['x-hop'],
    undefined,
    'a header named in Connection is hop-by-hop (RFC 9110 §7.6.1)',
  )
  t.not(
    hit.headers['keep-alive'],
    'timeout=99',
    'Keep-Alive belongs to the connection it was sent on',
  )
})

t.test(
  'Cache-Status says stored only for what is stored, and why not otherwise (RFC 9211 §2.8)',
  async (t) => {
    const cases: Array<[string, Handler, RequestOptions, string]> = [
      [
        'stored',
        (_req, res) => {
          res.cacheFor = 60
          res.end('x')
        },
        {},
        'fwd=miss; stored',
      ],
      ['no opt-in', (_req, res) => void res.end('x'), {}, 'fwd=miss; detail=not-opted-in'],
      [
        'Set-Cookie',
        (_req, res) => {
          res.cacheFor = 60
          res.setHeader('set-cookie', 'a=1')
          res.end('x')
        },
        {},
        'fwd=miss; detail=set-cookie',
      ],
      [
        'private',
        (_req, res) => {
          res.setHeader('cache-control', 'private, s-maxage=60')
          res.end('x')
        },
        {},
        'fwd=miss; detail=private',
      ],
      [
        'no-store',
        (_req, res) => {
          res.setHeader('cache-control', 'no-store, s-maxage=60')
          res.end('x')
        },
        {},
        'fwd=miss; detail=no-store',
      ],
      [
        'a status not stored',
        (_req, res) => {
          res.cacheFor = 60
          res.statusCode = 500
          res.end('x')
        },
        {},
        'fwd=miss; detail=status',
      ],
      [
        'cacheFor 0',
        (_req, res) => {
          res.cacheFor = 0
          res.end('x')
        },
        {},
        'fwd=miss; detail=cache-for',
      ],
      [
        'max-age spent by Age',
        (_req, res) => {
          res.setHeader('cache-control', 's-maxage=60')
          res.setHeader('age', '90')
          res.end('x')
        },
        {},
        'fwd=miss; detail=stale',
      ],
      [
        'the request says no-store',
        (_req, res) => {
          res.cacheFor = 60
          res.end('x')
        },
        { headers: { 'cache-control': 'no-store' } },
        'fwd=miss; detail=request-no-store',
      ],
      [
        'Authorization',
        (_req, res) => {
          res.cacheFor = 60
          res.end('x')
        },
        { headers: { authorization: 'Bearer a' } },
        'fwd=miss; detail=authorization',
      ],
      [
        'a whole body over maxEntryBytes',
        (_req, res) => {
          res.cacheFor = 60
          res.end('y'.repeat(2000))
        },
        {},
        'fwd=miss; detail=too-large',
      ],
      [
        'a declared length over maxEntryBytes',
        (_req, res) => {
          res.cacheFor = 60
          res.setHeader('content-length', '2000')
          res.write('y'.repeat(1000))
          res.end('y'.repeat(1000))
        },
        {},
        'fwd=miss; detail=too-large',
      ],
    ]
    for (const [name, handler, options, status] of cases) {
      await t.test(name, async (t) => {
        const app = accelerate(handler, { maxEntryBytes: 1024 })
        const url = await listen(t, app)
        const reply = await request(url + '/s', options)
        t.equal(reply.headers['cache-status'], `node-accelerator; ${status}`)
        const stores = status.endsWith('stored') ? 1 : 0
        // A store write ends after the response does: wait for it, then check nothing else came.
        await eventually(() => app.stats().stores >= stores, 'the entry stored')
        t.equal(app.stats().stores, stores, 'stores as it says')
      })
    }
  },
)

t.test(
  'a burst on a response that is not stored: every client is told why, the leader and its waiters alike',
  async (t) => {
    const open = gate()
    const origin = counted(async (_req, res) => {
      await open.promise
      res.setHeader('set-cookie', 'session=1')
      res.cacheFor = 60
      res.end('x')
    })
    const app = accelerate(origin)
    const url = await listen(t, app)
    const replies = Array.from({ length: 5 }, () => request(url + '/burst'))
    await eventually(() => app.stats().coalesced === 4, 'four requests wait on the first')
    open.open()
    for (const reply of await Promise.all(replies)) {
      t.equal(reply.headers['cache-status'], 'node-accelerator; fwd=miss; detail=set-cookie')
    }
    t.equal(origin.calls, 5, 'not shared: each ran the handler on its own')
    t.equal(app.stats().stores, 0)
  },
)
