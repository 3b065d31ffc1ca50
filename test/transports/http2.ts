// Byte-exact on every transport Node's (req, res) API runs on (SPEC "Transports"): http, https,
// http2's compatibility API over h2c and TLS, and a TLS allowHTTP1 server reached by HTTP/1.1 and
// h2 clients; for every way a handler may give its body (end with the whole body, write + end,
// returned string / bytes / iterable / async iterable, pipe of a Readable); for misses, hits,
// HEAD (hit and miss), 304s from the cache and 304s on a miss (computed and handler ETags).
// Http2ServerResponse.end(data) calls this.write(data): a tee that copies in both doubles the
// stored body, which every hit then serves.
import t, { type Test } from 'tap'
import { Readable } from 'node:stream'
import { accelerate, type Handler } from '../../src/index.js'
import {
  TRANSPORTS,
  serve,
  type Exchange,
  type Served,
  type Transport,
} from '../fixtures/transports.js'

// Multibyte UTF-8 across HTTP/2 DATA frames (16 KiB) and HTTP/1.1 chunks: a doubled, cut or
// re-encoded body cannot pass for this one.
const TEXT = 'héllo wörld ✓ 0123456789 '.repeat(1000)
const BYTES = Buffer.from(TEXT)
const halves = (): [Buffer, Buffer] => [BYTES.subarray(0, 10_000), BYTES.subarray(10_000)]
const pieces = (): Buffer[] => [
  BYTES.subarray(0, 1),
  BYTES.subarray(1, 17_000),
  BYTES.subarray(17_000),
]

/** How a handler gives its body, each the way users write it. */
const STYLES: Record<string, Handler> = {
  'res.end(buffer)': (_req, res) => void res.end(BYTES),
  'res.end(string)': (_req, res) => void res.end(TEXT),
  'res.end(string, encoding, callback)': (_req, res) =>
    void res.end(BYTES.toString('base64'), 'base64', () => {}),
  'res.write + res.end(data)': (_req, res) => {
    const [a, b] = halves()
    res.write(a)
    res.end(b)
  },
  'res.write + res.write + res.end()': (_req, res) => {
    const [a, b] = halves()
    res.write(a)
    res.write(b)
    res.end()
  },
  'returned string': () => TEXT,
  'returned Buffer': () => BYTES,
  'returned Uint8Array': () => new Uint8Array(BYTES),
  'returned iterable': () => pieces(),
  'returned async iterable': () =>
    (async function* () {
      for (const piece of pieces()) {
        await new Promise((resolve) => setImmediate(resolve))
        yield piece
      }
    })(),
  'pipe(Readable)': (_req, res) => void Readable.from(pieces()).pipe(res),
}

/** The handler of one style, storing for a minute, counting its runs per path. */
function origin(style: Handler) {
  const runs = new Map<string, number>()
  const handler: Handler = (req, res) => {
    const path = new URL(req.url!, 'http://x').pathname
    runs.set(path, (runs.get(path) ?? 0) + 1)
    res.cacheFor = 60
    res.setHeader('content-type', 'text/plain; charset=utf-8')
    if (path.startsWith('/own-etag')) res.setHeader('etag', '"v1"')
    return style(req, res)
  }
  return { handler, runs: (path: string) => runs.get(path) ?? 0 }
}

function exact(t: Test, reply: Exchange, what: string) {
  t.equal(reply.status, 200, `${what}: 200`)
  t.ok(reply.complete, `${what}: the response ended cleanly`)
  t.equal(
    reply.body.length,
    BYTES.length,
    `${what}: ${reply.body.length} bytes, want ${BYTES.length}`,
  )
  t.ok(reply.body.equals(BYTES), `${what}: the handler's bytes, exactly`)
  if (reply.headers['content-length'] !== undefined)
    t.equal(
      reply.headers['content-length'],
      String(BYTES.length),
      `${what}: Content-Length says so`,
    )
}

function headOnly(t: Test, reply: Exchange, what: string) {
  t.equal(reply.status, 200, `${what}: 200`)
  t.equal(reply.body.length, 0, `${what}: no body`)
  if (reply.headers['content-length'] !== undefined)
    t.equal(
      reply.headers['content-length'],
      String(BYTES.length),
      `${what}: the GET's Content-Length`,
    )
}

function notModified(t: Test, reply: Exchange, what: string) {
  t.equal(reply.status, 304, `${what}: 304`)
  t.equal(reply.body.length, 0, `${what}: no body`)
}

async function exercise(t: Test, served: Served, runs: (path: string) => number) {
  const miss = await served.request('/k')
  exact(t, miss, 'miss')
  t.match(miss.headers['cache-status'], /fwd=miss; stored/, 'the miss is stored')
  const hit = await served.request('/k')
  exact(t, hit, 'hit')
  t.match(hit.headers['cache-status'], /; hit/, 'served from the cache')
  exact(t, await served.request('/k'), 'second hit')
  headOnly(t, await served.request('/k', { method: 'HEAD' }), 'HEAD hit')
  const etag = String(miss.headers.etag ?? hit.headers.etag)
  notModified(
    t,
    await served.request('/k', { headers: { 'if-none-match': etag } }),
    '304 from the cache',
  )
  t.equal(runs('/k'), 1, 'hits, HEAD and 304 never ran the handler')

  // A HEAD miss: no body to this client; the GETs after it get every byte.
  headOnly(t, await served.request('/head', { method: 'HEAD' }), 'HEAD miss')
  exact(t, await served.request('/head'), 'GET after a HEAD miss')
  exact(t, await served.request('/head'), 'second GET after a HEAD miss')

  // A conditional miss with the computed ETag (the same bytes have the same ETag under any URL):
  // a 304 when the cache knows the ETag before the body, else the whole body.
  const conditional = await served.request('/conditional', { headers: { 'if-none-match': etag } })
  if (conditional.status === 304) notModified(t, conditional, 'conditional miss')
  else exact(t, conditional, 'conditional miss')
  exact(t, await served.request('/conditional'), 'GET after a conditional miss')
  exact(t, await served.request('/conditional'), 'second GET after a conditional miss')
  notModified(
    t,
    await served.request('/conditional', { headers: { 'if-none-match': etag } }),
    '304 after a conditional miss',
  )

  // The handler's own ETag: a 304 on the miss, before any body (lazy when returned).
  notModified(
    t,
    await served.request('/own-etag', { headers: { 'if-none-match': '"v1"' } }),
    'lazy 304 on a miss',
  )
  exact(t, await served.request('/own-etag'), 'GET after a lazy 304')
  exact(t, await served.request('/own-etag'), 'second GET after a lazy 304')
  notModified(
    t,
    await served.request('/own-etag', { headers: { 'if-none-match': '"v1"' } }),
    '304 after a lazy 304',
  )
}

for (const transport of TRANSPORTS) {
  t.test(transport, async (t) => {
    for (const [name, style] of Object.entries(STYLES)) {
      await t.test(name, { timeout: 20_000 }, async (t) => {
        const { handler, runs } = origin(style)
        const app = accelerate(handler)
        t.teardown(() => app.close())
        await exercise(t, await serve(t, transport as Transport, app), runs)
      })
    }
  })
}
