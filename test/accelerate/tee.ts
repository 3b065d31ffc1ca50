// The tee: every form of writeHead/write/end Node accepts is stored exactly as sent, without
// delaying the stream or changing its backpressure; unfinished responses are never stored.
import t, { type Test } from 'tap'
import net from 'node:net'
import { Readable } from 'node:stream'
import { accelerate, type Handler } from '../../src/index.js'
import {
  abortAfterFirstChunk,
  counted,
  gate,
  listen,
  manualClock,
  pattern,
  request,
  requestError,
  settle,
} from '../fixtures/http.js'
import { serve } from '../fixtures/transports.js'

/** Serves `handler` through the accelerator; asserts the miss and the hit both carry `expected`. */
async function missThenHit(
  t: Test,
  handler: Handler,
  check: (reply: Awaited<ReturnType<typeof request>>, label: string) => void,
) {
  const origin = counted(handler)
  const url = await listen(t, accelerate(origin))
  const miss = await request(url + '/r')
  t.equal(miss.headers['cache-status'], 'node-accelerator; fwd=miss; stored')
  check(miss, 'miss')
  const hit = await request(url + '/r')
  t.match(hit.headers['cache-status'], /; hit;/)
  check(hit, 'hit')
  t.equal(origin.calls, 1, 'the hit did not call the handler')
}

t.test(
  'writeHead(status, headers object): headers Node keeps out of getHeaders() are stored',
  (t) =>
    missThenHit(
      t,
      (_req, res) => {
        res.cacheFor = 60
        res.writeHead(200, {
          'Content-Type': 'application/json',
          'X-Custom': 'yes',
          'X-Num': 42 as unknown as string,
        })
        res.end('{"ok":true}')
      },
      (reply, label) => {
        t.equal(reply.status, 200, label)
        t.equal(reply.headers['content-type'], 'application/json', label)
        t.equal(reply.headers['x-custom'], 'yes', label)
        t.equal(reply.headers['x-num'], '42', label)
        t.equal(reply.text, '{"ok":true}', label)
      },
    ),
)

t.test('writeHead(status, flat array) keeps repeated names in order, as Node sends them', (t) =>
  missThenHit(
    t,
    (_req, res) => {
      res.cacheFor = 60
      res.writeHead(200, [
        'Link',
        '</a>; rel=preload',
        'Link',
        '</b>; rel=preload',
        'Content-Type',
        'text/plain',
      ])
      res.end('array')
    },
    (reply, label) => {
      const links = reply.rawHeaders.filter(
        (_, i, all) => i % 2 === 1 && all[i - 1]!.toLowerCase() === 'link',
      )
      t.same(links, ['</a>; rel=preload', '</b>; rel=preload'], label)
      t.equal(reply.headers['content-type'], 'text/plain', label)
    },
  ),
)

t.test(
  'writeHead(status, flat array) after setHeader: the last value of a name wins, as in Node',
  (t) =>
    missThenHit(
      t,
      (_req, res) => {
        res.cacheFor = 60
        res.setHeader('x-a', 'set')
        res.writeHead(200, ['x-a', 'given', 'x-b', '1', 'x-b', '2'])
        res.end('merged')
      },
      (reply, label) => {
        t.equal(reply.headers['x-a'], 'given', label)
        t.equal(reply.headers['x-b'], '2', label)
      },
    ),
)

t.test('writeHead(status, statusMessage, headers) and an object merged over setHeader', (t) =>
  missThenHit(
    t,
    (_req, res) => {
      res.cacheFor = 60
      res.setHeader('x-from-set', 'a')
      res.setHeader('x-overridden', 'old')
      res.writeHead(404, 'Nothing Here', { 'x-overridden': 'new' })
      res.end('gone')
    },
    (reply, label) => {
      t.equal(reply.status, 404, label)
      t.equal(reply.headers['x-from-set'], 'a', label)
      t.equal(reply.headers['x-overridden'], 'new', label)
      t.equal(reply.text, 'gone', label)
    },
  ),
)

t.test('write(string, encoding) for every encoding, Uint8Array views, and Buffers', (t) =>
  missThenHit(
    t,
    (_req, res) => {
      res.cacheFor = 60
      const backing = new Uint8Array([0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0])
      res.write(Buffer.from('plain|'))
      res.write('aGVsbG8=', 'base64')
      res.write('|')
      res.write('776f726c64', 'hex')
      res.write('|caf\u00e9|', 'latin1')
      res.write('caf\u00e9|', 'utf8')
      res.write(new Uint8Array(backing.buffer, 2, 4))
      res.end('|end', 'ascii')
    },
    (reply, label) => {
      t.same(
        reply.body,
        Buffer.concat([
          Buffer.from('plain|hello|world|'),
          Buffer.from([0x63, 0x61, 0x66, 0xe9]),
          Buffer.from('|caf\u00e9|', 'utf8'),
          Buffer.from([0xde, 0xad, 0xbe, 0xef]),
          Buffer.from('|end'),
        ]),
        label,
      )
    },
  ),
)

t.test('callbacks of write and end run in every form', async (t) => {
  const called: string[] = []
  const url = await listen(
    t,
    accelerate((_req, res) => {
      res.cacheFor = 60
      res.write('a', () => called.push('write(chunk, cb)'))
      res.write('b', 'utf8', () => called.push('write(chunk, enc, cb)'))
      res.end('c', 'utf8', () => called.push('end(chunk, enc, cb)'))
    }),
  )
  t.equal((await request(url + '/1')).text, 'abc')
  const url2 = await listen(
    t,
    accelerate((_req, res) => {
      res.cacheFor = 60
      res.write('x')
      res.end(() => called.push('end(cb)'))
    }),
  )
  t.equal((await request(url2 + '/2')).text, 'x')
  const url3 = await listen(
    t,
    accelerate((_req, res) => {
      res.cacheFor = 60
      res.end('y', () => called.push('end(chunk, cb)'))
    }),
  )
  t.equal((await request(url3 + '/3')).text, 'y')
  await settle()
  t.same(called.sort(), [
    'end(cb)',
    'end(chunk, cb)',
    'end(chunk, enc, cb)',
    'write(chunk, cb)',
    'write(chunk, enc, cb)',
  ])
  t.equal((await request(url3 + '/3')).text, 'y', 'stored all the same')
})

t.test('pipe() from a stream, and flushHeaders() before the body', (t) =>
  missThenHit(
    t,
    (_req, res) => {
      res.cacheFor = 60
      res.setHeader('content-type', 'text/plain')
      res.flushHeaders()
      Readable.from(['piped ', 'through ', 'the tee']).pipe(res)
    },
    (reply, label) => {
      t.equal(reply.text, 'piped through the tee', label)
      t.equal(reply.headers['content-type'], 'text/plain', label)
    },
  ),
)

t.test(
  'a binary body of several hundred KiB in many uneven chunks is stored byte-exact',
  async (t) => {
    const body = pattern(700 * 1024 + 13)
    await missThenHit(
      t,
      async (_req, res) => {
        res.cacheFor = 60
        res.setHeader('content-type', 'application/octet-stream')
        let offset = 0
        let size = 1
        while (offset < body.length) {
          const chunk = body.subarray(offset, offset + size)
          offset += chunk.length
          size = (size * 7 + 3) % 65_537
          if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve))
        }
        res.end()
      },
      (reply, label) => {
        t.equal(reply.body.length, body.length, label)
        t.ok(reply.body.equals(body), `${label}: same bytes`)
      },
    )
  },
)

t.test(
  'a buffer the handler reuses after its write completed does not change what was stored',
  (t) =>
    missThenHit(
      t,
      async (_req, res) => {
        res.cacheFor = 60
        const scratch = Buffer.from('first|')
        await new Promise((resolve) => res.write(scratch, resolve))
        scratch.write('XXXXX|')
        res.end(scratch)
      },
      (reply, label) => t.equal(reply.text, 'first|XXXXX|', label),
    ),
)

t.test('the client gets each chunk as it is written, not when the handler ends', async (t) => {
  const firstChunkSeen = gate()
  const url = await listen(
    t,
    accelerate(async (_req, res) => {
      res.cacheFor = 60
      res.write('early ')
      // Deadlocks (and times out) if the tee held the first chunk back.
      await firstChunkSeen.promise
      res.end('late')
    }),
  )
  const body = await new Promise<string>((resolve, reject) => {
    const chunks: string[] = []
    fetch(url + '/').then(async (res) => {
      for await (const chunk of res.body!) {
        chunks.push(Buffer.from(chunk).toString())
        firstChunkSeen.open()
      }
      resolve(chunks.join(''))
    }, reject)
  })
  t.equal(body, 'early late')
})

t.test(
  "backpressure is the handler's: write() returns false for a slow client, and drain comes",
  async (t) => {
    const results: boolean[] = []
    const url = await listen(
      t,
      accelerate(async (_req, res) => {
        res.cacheFor = 60
        const chunk = Buffer.alloc(1024 * 1024, 1)
        for (let i = 0; i < 8; i++) {
          const ok = res.write(chunk)
          results.push(ok)
          if (!ok) await new Promise((resolve) => res.once('drain', resolve))
        }
        res.end()
      }),
    )
    const reply = await request(url + '/')
    t.equal(reply.body.length, 8 * 1024 * 1024)
    t.ok(results.includes(false), 'the socket pushed back at least once')
  },
)

t.test('a client that goes away mid-stream leaves nothing stored', async (t) => {
  const origin = counted(async (_req, res) => {
    res.cacheFor = 60
    res.write(Buffer.alloc(64 * 1024, 'a'))
    await new Promise((resolve) => res.once('close', resolve))
    res.end('never arrives')
  })
  const app = accelerate(origin)
  const url = await listen(t, app)
  await abortAfterFirstChunk(url + '/abort')
  await settle()
  await app.close()
  t.equal(app.stats().stores, 0)
  t.equal(app.stats().entries, 0)
})

t.test(
  'a handler that throws after the headers went out cuts the connection; nothing is stored; serving goes on',
  async (t) => {
    const errors: string[] = []
    const origin = counted(async (req, res) => {
      res.cacheFor = 60
      res.write('partial')
      await new Promise((resolve) => setImmediate(resolve))
      if (req.url === '/boom') throw new Error('render failed')
      res.end(' and whole')
    })
    const app = accelerate(origin, {
      onError: (err, { op }) => errors.push(`${op}: ${err.message}`),
    })
    const url = await listen(t, app)
    const err = await requestError(url + '/boom')
    t.ok(err, 'the connection was cut, not ended as if complete')
    t.same(errors, ['handler: render failed'])
    t.equal((await request(url + '/fine')).text, 'partial and whole', 'the server keeps serving')
    await requestError(url + '/boom')
    t.equal(origin.calls, 3, '/boom was not stored')
  },
)

t.test('res.destroy() mid-stream stores nothing', async (t) => {
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    res.write('half')
    setImmediate(() => res.destroy())
  })
  const app = accelerate(origin)
  const url = await listen(t, app)
  await requestError(url + '/')
  await requestError(url + '/')
  t.equal(origin.calls, 2)
  t.equal(app.stats().stores, 0)
})

t.test(
  'a body longer than maxEntryBytes streams in full and is not stored; one at the limit is',
  async (t) => {
    const origin = counted((req, res) => {
      res.cacheFor = 60
      const size = req.url === '/big' ? 1501 : 1000
      for (let sent = 0; sent < size; sent += 100)
        res.write(pattern(Math.min(100, size - sent), sent))
      res.end()
    })
    const url = await listen(t, accelerate(origin, { maxEntryBytes: 1000 }))
    const big = await request(url + '/big')
    t.equal(big.body.length, 1501, 'the client got every byte, written on after the limit')
    t.equal((await request(url + '/big')).body.length, 1501)
    t.equal(origin.calls, 2, 'over the limit: not stored')
    await request(url + '/limit')
    const hit = await request(url + '/limit')
    t.equal(hit.body.length, 1000)
    t.equal(origin.calls, 3, 'at the limit: stored')
  },
)

t.test(
  'a Content-Length larger than the limit is not preallocated, and still not stored',
  async (t) => {
    const origin = counted((_req, res) => {
      res.cacheFor = 60
      res.setHeader('content-length', '2000')
      res.end(Buffer.alloc(2000, 'z'))
    })
    const url = await listen(t, accelerate(origin, { maxEntryBytes: 1000 }))
    t.equal((await request(url + '/')).body.length, 2000)
    await request(url + '/')
    t.equal(origin.calls, 2)
  },
)

t.test('text/event-stream passes through unbuffered and is never stored', async (t) => {
  const firstEventSeen = gate()
  const origin = counted(async (_req, res) => {
    res.cacheFor = 60
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write('data: one\n\n')
    await firstEventSeen.promise
    res.end('data: two\n\n')
  })
  const url = await listen(t, accelerate(origin))
  const read = async () => {
    const res = await fetch(url + '/events')
    t.equal(res.headers.get('cache-status'), 'node-accelerator; fwd=miss; detail=event-stream')
    let text = ''
    for await (const chunk of res.body!) {
      text += Buffer.from(chunk).toString()
      firstEventSeen.open()
    }
    return text
  }
  t.equal(await read(), 'data: one\n\ndata: two\n\n')
  t.equal(await read(), 'data: one\n\ndata: two\n\n')
  t.equal(origin.calls, 2)
})

t.test('a body shorter than its declared Content-Length is never stored as complete', async (t) => {
  const origin = counted((_req, res) => {
    res.cacheFor = 60
    res.setHeader('content-length', '10')
    res.end('short')
  })
  const url = await listen(t, accelerate(origin))
  // A raw socket: an HTTP client would wait for the 5 missing bytes forever.
  const fetchRaw = () =>
    new Promise<string>((resolve) => {
      const socket = net.connect(Number(new URL(url).port), '127.0.0.1')
      let text = ''
      socket.on('data', (chunk) => (text += chunk.toString('latin1')))
      socket.write('GET /short HTTP/1.1\r\nHost: x\r\n\r\n')
      // Everything the handler wrote has arrived: hang up (the 5 missing bytes never come).
      socket.on('data', () => {
        if (!text.endsWith('short')) return
        socket.destroy()
        resolve(text)
      })
    })
  t.match(await fetchRaw(), /fwd=miss; stored/)
  t.match(await fetchRaw(), /fwd=miss; stored/, 'the second request is a miss again')
  t.equal(origin.calls, 2)
})

t.test('bytes written after end() are neither sent nor stored', async (t) => {
  const url = await listen(
    t,
    accelerate((_req, res) => {
      res.cacheFor = 60
      res.on('error', () => {}) // Node reports a write after end on the response
      res.end('complete')
      res.write('extra')
      res.end('more')
    }),
  )
  t.equal((await request(url + '/')).text, 'complete')
  t.equal((await request(url + '/')).text, 'complete')
})

t.test("Node's own writeHead errors reach the handler unchanged", async (t) => {
  const errors: string[] = []
  const url = await listen(
    t,
    accelerate(
      (req, res) => {
        res.cacheFor = 60
        if (req.url === '/bad-status') res.writeHead('abc' as never)
        res.write('sent')
        res.writeHead(200)
      },
      { onError: (err) => errors.push((err as NodeJS.ErrnoException).code!) },
    ),
  )
  t.equal((await request(url + '/bad-status')).status, 500)
  await requestError(url + '/twice')
  t.same(errors, ['ERR_HTTP_INVALID_STATUS_CODE', 'ERR_HTTP_HEADERS_SENT'])
})

t.test('an empty header name in a flat array is skipped, as Node skips it', (t) =>
  missThenHit(
    t,
    (_req, res) => {
      res.cacheFor = 60
      res.setHeader('x-first', '1')
      res.writeHead(200, ['', 'ignored', 'x-second', '2'])
      res.end('ok')
    },
    (reply, label) => {
      t.equal(reply.headers['x-first'], '1', label)
      t.equal(reply.headers['x-second'], '2', label)
    },
  ),
)

t.test(
  "with nothing to add (no status header, not stored), writeHead's arguments go through untouched",
  async (t) => {
    const url = await listen(
      t,
      accelerate(
        (_req, res) => {
          res.writeHead(200, { 'x-given': 'as is', 'X-Given': 'twice' })
          res.end('plain')
        },
        { statusHeader: false },
      ),
    )
    const reply = await request(url + '/')
    const given = reply.rawHeaders.filter(
      (_, i, all) => i % 2 === 1 && all[i - 1]!.toLowerCase() === 'x-given',
    )
    t.same(
      given,
      ['as is', 'twice'],
      'Node sends both spellings of an object given whole; so does the tee',
    )
    t.equal(reply.headers['cache-status'], undefined)
  },
)

t.test(
  'HTTP/2 (h2c): every handler style is stored and served byte-exact, misses, hits, HEAD and 304s',
  async (t) => {
    const body = Buffer.from(pattern(30 * 1024).toString('base64'))
    const styles: Record<string, Handler> = {
      'end(body)': (_req, res) => void res.end(body),
      'end(string, encoding)': (_req, res) => void res.end(body.toString('base64'), 'base64'),
      'write + end(body)': (_req, res) => {
        res.write(body.subarray(0, 1000))
        res.end(body.subarray(1000))
      },
      'returned string': () => body.toString('latin1'),
      'returned bytes': () => body,
      'returned iterable': () => [body.subarray(0, 7), body.subarray(7)],
      'returned async iterable': () =>
        (async function* () {
          yield body.subarray(0, 9)
          yield body.subarray(9)
        })(),
      pipe: (_req, res) => void Readable.from([body.subarray(0, 5), body.subarray(5)]).pipe(res),
    }
    const origin = counted((req, res) => {
      res.cacheFor = 60
      res.setHeader('content-type', 'application/octet-stream')
      return styles[decodeURIComponent(req.url!.slice(1))]!(req, res)
    })
    const app = accelerate(origin)
    const h2c = await serve(t, 'h2c', app)
    for (const style of Object.keys(styles)) {
      const path = '/' + encodeURIComponent(style)
      const miss = await h2c.request(path)
      t.ok(miss.body.equals(body), `${style}: the miss is byte-exact`)
      const hit = await h2c.request(path)
      t.match(hit.headers['cache-status'], /; hit;/, `${style}: stored`)
      t.ok(hit.body.equals(body), `${style}: the hit is byte-exact`)
      t.equal(hit.headers['content-length'], String(body.length), `${style}: the stored length`)
      const head = await h2c.request(path, { method: 'HEAD' })
      t.equal(head.body.length, 0, `${style}: HEAD has no body`)
      const notModified = await h2c.request(path, {
        headers: { 'if-none-match': String(hit.headers.etag) },
      })
      t.equal(notModified.status, 304, `${style}: a matching validator gets 304`)
    }
    t.equal(origin.calls, Object.keys(styles).length, 'one handler run per style')
  },
)

t.test(
  "HTTP/2 (h2c): a body the cache sends instead of the handler's (a revalidated entry) goes out once",
  async (t) => {
    const clock = manualClock()
    const origin = counted((req, res) => {
      res.cacheFor = 10
      res.setHeader('etag', '"v1"')
      if (req.headers['if-none-match'] === '"v1"') {
        res.statusCode = 304
        return void res.end()
      }
      res.end('the body of v1')
    })
    const app = accelerate(origin, { now: clock.now })
    const h2c = await serve(t, 'h2c', app)
    t.equal(String((await h2c.request('/r')).body), 'the body of v1')
    clock.advance(11_000)
    const revalidated = await h2c.request('/r')
    t.equal(
      revalidated.headers['cache-status'],
      'node-accelerator; fwd=stale; fwd-status=304; stored; ttl=10',
    )
    t.equal(String(revalidated.body), 'the body of v1', 'the stored body, once')
    t.equal(origin.calls, 2)
  },
)
