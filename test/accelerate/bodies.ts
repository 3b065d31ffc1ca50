// Returned bodies (string, bytes, Iterable, AsyncIterable) written with backpressure; handler
// failures; lazy bodies that a matching conditional request never starts.
import t from 'tap'
import { Readable } from 'node:stream'
import { accelerate } from '../../src/index.js'
import { counted, gate, listen, pattern, request, requestError, steady } from '../fixtures/http.js'

t.test('every Body form is written, stored, and served again byte-exact', async (t) => {
  const binary = pattern(300 * 1024)
  const bodies: Record<string, () => unknown> = {
    '/string': () => 'caf\u00e9 \u2615',
    '/buffer': () => Buffer.from('buffer'),
    '/uint8array': () => new Uint8Array([104, 105]),
    '/iterable': () => ['one ', Buffer.from('two '), new Uint8Array([51])],
    '/generator': function* () {
      yield 'sync '
      yield 'gen'
    },
    '/async-generator': async function* () {
      yield 'async '
      await new Promise((resolve) => setImmediate(resolve))
      yield Buffer.from('gen')
    },
    '/readable': () => Readable.from([binary.subarray(0, 100_000), binary.subarray(100_000)]),
  }
  const expected: Record<string, Buffer> = {
    '/string': Buffer.from('caf\u00e9 \u2615'),
    '/buffer': Buffer.from('buffer'),
    '/uint8array': Buffer.from('hi'),
    '/iterable': Buffer.from('one two 3'),
    '/generator': Buffer.from('sync gen'),
    '/async-generator': Buffer.from('async gen'),
    '/readable': binary,
  }
  const origin = counted((req, res) => {
    res.cacheFor = 60
    return bodies[req.url!]!() as never
  })
  const url = await listen(t, accelerate(origin))
  for (const path of Object.keys(bodies)) {
    const miss = await request(url + path)
    t.ok(miss.body.equals(expected[path]!), `${path}: miss`)
    const hit = await request(url + path)
    t.ok(hit.body.equals(expected[path]!), `${path}: hit`)
    t.match(hit.headers['cache-status'], /; hit;/, `${path}: stored`)
  }
  t.equal(origin.calls, Object.keys(bodies).length)
})

t.test(
  'a string body carries its ETag already on the miss, the same the hits replay',
  async (t) => {
    const url = await listen(
      t,
      accelerate((_req, res) => {
        res.cacheFor = 60
        return 'whole'
      }),
    )
    const miss = await request(url + '/')
    const hit = await request(url + '/')
    t.ok(miss.headers.etag)
    t.equal(miss.headers.etag, hit.headers.etag)
    t.equal(miss.headers['content-length'], '5')
  },
)

t.test('an iterable body is pulled only as fast as the client reads', async (t) => {
  let pulled = 0
  const firstRead = gate()
  const url = await listen(
    t,
    accelerate(async function* () {
      for (let i = 0; i < 64; i++) {
        pulled++
        yield Buffer.alloc(1024 * 1024, i)
      }
    }),
  )
  let received = 0
  let pulledWhenFirstRead = 0
  await new Promise<void>((resolve, reject) => {
    fetch(url + '/').then(async (res) => {
      const reader = res.body!.getReader()
      // Hold the first read until the generator stopped pulling (or pulled everything).
      pulledWhenFirstRead = await steady(() => pulled)
      firstRead.open()
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        received += value.length
      }
      resolve()
    }, reject)
  })
  t.equal(received, 64 * 1024 * 1024)
  t.ok(
    pulledWhenFirstRead < 64,
    `the generator waited for the client (${pulledWhenFirstRead} of 64 chunks pulled)`,
  )
})

t.test(
  'a client that goes away stops the iterator: return() runs, later chunks are never made',
  async (t) => {
    const stopped = gate<number>()
    let made = 0
    const url = await listen(
      t,
      accelerate(async function* () {
        try {
          for (;;) {
            made++
            yield Buffer.alloc(256 * 1024)
            await new Promise((resolve) => setImmediate(resolve))
          }
        } finally {
          stopped.open(made)
        }
      }),
    )
    await new Promise<void>((resolve) => {
      fetch(url + '/').then(async (res) => {
        const reader = res.body!.getReader()
        await reader.read()
        await reader.cancel()
        resolve()
      })
    })
    const madeWhenStopped = await stopped.promise
    // The generator makes a chunk every turn while it runs: many turns with none made show it stopped.
    t.equal(
      await steady(() => made),
      madeWhenStopped,
      'nothing was generated after the iterator was closed',
    )
  },
)

t.test(
  'a handler that throws before sending anything gets a 500, and the server keeps serving',
  async (t) => {
    const errors: Error[] = []
    const origin = counted((req, res) => {
      res.cacheFor = 60
      res.setHeader('content-type', 'application/json')
      res.setHeader('set-cookie', 'leaked=1')
      if (req.url === '/sync') throw new Error('sync throw')
      if (req.url === '/reject') return Promise.reject(new Error('rejected'))
      return (async function* () {
        throw new Error('generator failed before its first chunk')
      })()
    })
    const url = await listen(t, accelerate(origin, { onError: (err) => errors.push(err) }))
    for (const path of ['/sync', '/reject', '/generator']) {
      const reply = await request(url + path)
      t.equal(reply.status, 500, path)
      t.equal(reply.text, 'Internal Server Error\n', path)
      t.equal(
        reply.headers['content-type'],
        'text/plain; charset=utf-8',
        `${path}: the handler's headers are gone`,
      )
      t.equal(reply.headers['set-cookie'], undefined, `${path}: no cookie leaks into the error`)
      t.equal(
        reply.headers['cache-status'],
        'node-accelerator; fwd=miss; detail=status',
        `${path}: one Cache-Status member`,
      )
    }
    t.same(
      errors.map((e) => e.message),
      ['sync throw', 'rejected', 'generator failed before its first chunk'],
    )
    await request(url + '/sync')
    t.equal(origin.calls, 4, 'errors are not stored')
  },
)

t.test('a generator that fails mid-stream cuts the connection and stores nothing', async (t) => {
  const origin = counted(async function* (_req, res) {
    res.cacheFor = 60
    yield 'first chunk'
    await new Promise((resolve) => setImmediate(resolve))
    throw new Error('mid-stream')
  })
  const app = accelerate(origin, { onError: () => {} })
  const url = await listen(t, app)
  await requestError(url + '/')
  await requestError(url + '/')
  t.equal(origin.calls, 2)
  t.equal(app.stats().errors, 2)
})

t.test('a returned value that is not a body is a handler error, named', async (t) => {
  const errors: string[] = []
  const url = await listen(
    t,
    accelerate(() => 42 as never, { onError: (err) => errors.push(err.message) }),
  )
  t.equal((await request(url + '/')).status, 500)
  t.same(errors, [
    'expected the handler to return a string, Uint8Array, Iterable or AsyncIterable, got 42',
  ])
})

t.test(
  'a handler that returns res (res.end() returns it) or writes then returns a body',
  async (t) => {
    const url = await listen(
      t,
      accelerate((req, res) => {
        if (req.url === '/returns-res') return res.end('ended')
        res.writeHead(200, { 'x-head': 'first' })
        return ['then ', 'a body']
      }),
    )
    t.equal((await request(url + '/returns-res')).text, 'ended')
    const both = await request(url + '/head-then-body')
    t.equal(both.headers['x-head'], 'first')
    t.equal(both.text, 'then a body')
  },
)

t.test('lazy bodies: a matching If-None-Match gets 304 and the generator never runs', async (t) => {
  let generated = 0
  let returned = 0
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    res.setHeader('etag', '"v7"')
    res.setHeader('content-type', 'text/html')
    res.setHeader('access-control-allow-origin', '*')
    const body = (async function* () {
      generated++
      yield 'expensive'
    })()
    const close = body.return.bind(body)
    body.return = (value) => {
      returned++
      return close(value)
    }
    return body
  })
  const app = accelerate(origin)
  const url = await listen(t, app)
  const notModified = await request(url + '/lazy', { headers: { 'if-none-match': 'W/"v6", "v7"' } })
  t.equal(notModified.status, 304)
  t.equal(notModified.body.length, 0)
  t.equal(notModified.headers.etag, '"v7"')
  t.equal(notModified.headers['access-control-allow-origin'], '*', 'CORS headers are kept')
  t.equal(notModified.headers['content-type'], undefined, 'body headers are not')
  t.equal(notModified.headers['cache-status'], 'node-accelerator; fwd=miss')
  t.equal(generated, 0, "the generator's code never ran")
  t.equal(returned, 1, 'return() closed it')
  t.equal(app.stats().notModified, 1)
  const full = await request(url + '/lazy')
  t.equal(full.text, 'expensive')
  t.equal(generated, 1)
  t.equal(origin.calls, 2)
})

t.test('lazy bodies: Last-Modified and If-Modified-Since', async (t) => {
  let generated = 0
  const url = await listen(
    t,
    accelerate((_req, res) => {
      res.setHeader('last-modified', 'Sun, 06 Nov 1994 08:49:37 GMT')
      return (function* () {
        generated++
        yield 'old news'
      })()
    }),
  )
  const notModified = await request(url + '/', {
    headers: { 'if-modified-since': 'Sun, 06 Nov 1994 08:49:37 GMT' },
  })
  t.equal(notModified.status, 304)
  const modified = await request(url + '/', {
    headers: { 'if-modified-since': 'Sat, 05 Nov 1994 08:49:37 GMT' },
  })
  t.equal(modified.status, 200)
  t.equal(modified.text, 'old news')
  t.equal(generated, 1)
})

t.test(
  'lazy bodies: no 304 for a non-2xx status; If-None-Match: * matches any representation',
  async (t) => {
    const url = await listen(
      t,
      accelerate((req, res) => {
        if (req.url === '/404') {
          res.statusCode = 404
          res.setHeader('etag', '"x"')
        }
        return ['body']
      }),
    )
    t.equal(
      (await request(url + '/404', { headers: { 'if-none-match': '"x"' } })).status,
      404,
      'RFC 9110 §13.2.1: conditionals apply to 2xx only',
    )
    t.equal(
      (await request(url + '/plain', { headers: { 'if-none-match': '*' } })).status,
      304,
      'RFC 9110 §13.1.2: * is false when any current representation exists',
    )
    t.equal(
      (await request(url + '/plain', { headers: { 'if-none-match': '"other"' } })).status,
      200,
      'without a validator, a tag matches nothing',
    )
  },
)

t.test(
  'writeHead with a matching ETag answers 304 there; later writes are dropped, callbacks still run',
  async (t) => {
    const afterHead = gate<boolean[]>()
    const url = await listen(
      t,
      accelerate((_req, res) => {
        res.cacheFor = 60
        res.writeHead(200, { etag: '"abc"', 'content-type': 'text/plain', 'content-length': '20' })
        const results = [res.write('dropped', () => {}), res.write('also dropped')]
        res.end('!', () => afterHead.open(results))
      }),
    )
    const reply = await request(url + '/', { headers: { 'if-none-match': '"abc"' } })
    t.equal(reply.status, 304)
    t.equal(reply.headers.etag, '"abc"')
    t.equal(reply.headers['content-length'], undefined)
    t.same(
      await afterHead.promise,
      [true, true],
      'write() reports no backpressure for dropped writes',
    )
    const full = await request(url + '/')
    t.equal(full.status, 200)
    t.equal(full.text, 'droppedalso dropped!')
  },
)

t.test('a 304 decided inside write() (implicit headers) ends the response at once', async (t) => {
  const url = await listen(
    t,
    accelerate((_req, res) => {
      res.setHeader('etag', '"w"')
      res.write('first')
      res.end('second')
    }),
  )
  const reply = await request(url + '/', { headers: { 'if-none-match': '"w"' } })
  t.equal(reply.status, 304)
  t.equal(reply.body.length, 0)
})

t.test(
  'a body that destroys the response mid-way ends the iteration without waiting for a drain',
  async (t) => {
    const finished = gate<string>()
    const url = await listen(
      t,
      accelerate((_req, res) =>
        (async function* () {
          try {
            yield 'first'
            res.destroy()
            yield Buffer.alloc(1024 * 1024)
            yield 'never'
          } finally {
            finished.open('closed')
          }
        })(),
      ),
    )
    await requestError(url + '/')
    t.equal(await finished.promise, 'closed')
  },
)

t.test("end() with an encoding Node does not know: Node's error, nothing stored", async (t) => {
  const errors: string[] = []
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    res.end('x', 'no-such-encoding' as BufferEncoding)
  })
  const url = await listen(
    t,
    accelerate(origin, { onError: (err) => errors.push((err as NodeJS.ErrnoException).code!) }),
  )
  await request(url + '/').catch(() => undefined)
  await request(url + '/').catch(() => undefined)
  t.equal(origin.calls, 2)
  t.same(errors, ['ERR_UNKNOWN_ENCODING', 'ERR_UNKNOWN_ENCODING'])
})
