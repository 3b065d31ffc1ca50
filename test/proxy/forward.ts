// forward(upstream) behind the accelerator: what reaches the origin, what reaches the client,
// and what an origin that fails or lies about its body leaves in the cache (nothing).
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import { accelerate, type AccelerateOptions } from '../../src/index.js'
import { forward } from '../../src/proxy/index.js'
import { gate, listen, request, requestError } from '../fixtures/http.js'
import { freePort } from '../fixtures/redis-server.js'

async function proxyTo(t: Test, origin: string, options: AccelerateOptions = {}) {
  const upstream = forward(origin)
  t.teardown(() => upstream.close())
  return listen(
    t,
    accelerate(upstream, { sharedCache: true, surrogateKeys: true, onError: () => {}, ...options }),
  )
}

t.test(
  'method, path, query, headers and body reach the origin; hop-by-hop ones do not',
  async (t) => {
    const seen: Array<{ method?: string; url?: string; raw: string[]; body: string }> = []
    const origin = await listen(t, async (req, res) => {
      let body = ''
      for await (const chunk of req) body += chunk
      seen.push({ method: req.method, url: req.url, raw: req.rawHeaders, body })
      res.end('ok')
    })
    const proxy = await proxyTo(t, origin)
    await request(proxy + '/a/b?c=1&c=2', {
      method: 'PUT',
      headers: {
        'x-one': ['1', '2'],
        connection: 'x-secret, keep-alive',
        'x-secret': 'hop',
        'keep-alive': 'timeout=5',
        'x-forwarded-for': '10.0.0.1',
        'content-type': 'text/plain',
      },
      body: 'payload',
    })
    const [{ method, url, raw, body }] = seen as [(typeof seen)[0]]
    t.equal(method, 'PUT')
    t.equal(url, '/a/b?c=1&c=2')
    t.equal(body, 'payload')
    const headers = (name: string) =>
      raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name)
    t.same(headers('x-one'), ['1', '2'], 'repeated request headers, in order')
    t.same(headers('x-secret'), [], 'a header named in Connection is hop-by-hop')
    t.same(headers('keep-alive'), [], 'Keep-Alive is hop-by-hop')
    t.same(headers('via'), ['1.1 node-accelerator'])
    t.same(headers('x-forwarded-for'), ['10.0.0.1, 127.0.0.1'], 'the client address appended')
    t.same(headers('x-forwarded-proto'), ['http'])
    t.same(headers('x-forwarded-host'), [new URL(proxy).host])
    t.same(headers('host'), [new URL(proxy).host], 'the Host the client asked for')
  },
)

t.test(
  "the origin's repeated headers reach the client in order, on the miss and the hit",
  async (t) => {
    const origin = await listen(t, (_req, res) => {
      res.writeHead(200, 'Fine', [
        'Cache-Control',
        'max-age=60',
        'Link',
        '</a>; rel=preload',
        'X-Mixed',
        'one',
        'Link',
        '</b>; rel=preload',
        'Connection',
        'x-hop',
        'X-Hop',
        'for the proxy',
        'Via',
        '1.0 upstream-cache',
      ])
      res.end('ok')
    })
    const proxy = await proxyTo(t, origin)
    for (const label of ['miss', 'hit']) {
      const reply = await request(proxy + '/')
      const links = reply.rawHeaders.filter(
        (_, i) => i % 2 === 1 && reply.rawHeaders[i - 1]!.toLowerCase() === 'link',
      )
      t.same(links, ['</a>; rel=preload', '</b>; rel=preload'], `${label}: both Links, in order`)
      t.equal(
        reply.headers.via,
        '1.0 upstream-cache, 1.1 node-accelerator',
        `${label}: Via appended`,
      )
      t.equal(
        reply.headers['x-hop'],
        undefined,
        `${label}: a header the origin named in Connection stays with the connection`,
      )
    }
    t.equal(
      (await request(proxy + '/')).rawHeaders.includes('Link'),
      false,
      'hits replay lower-case names (HTTP names are case-insensitive)',
    )
  },
)

t.test('1xx interim responses are relayed: 103 Early Hints and 102 Processing', async (t) => {
  const origin = await listen(t, (_req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
    res.writeProcessing()
    res.end('final')
  })
  const proxy = await proxyTo(t, origin)
  const interim: Array<{ statusCode: number; link?: unknown }> = []
  const final = await new Promise<string>((resolve, reject) => {
    const req = http.get(proxy + '/', { agent: false }, (res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => (text += chunk))
      res.on('end', () => resolve(text))
    })
    req.on('information', ({ statusCode, headers }) =>
      interim.push({ statusCode, link: headers.link }),
    )
    req.on('error', reject)
  })
  t.equal(final, 'final')
  t.same(interim, [
    { statusCode: 103, link: '</style.css>; rel=preload; as=style' },
    { statusCode: 102, link: undefined },
  ])
})

t.test(
  'an unreachable origin is a 502; a stale entry is served instead within stale-if-error',
  async (t) => {
    const port = await freePort()
    const down = await proxyTo(t, `http://127.0.0.1:${port}`)
    const reply = await request(down + '/')
    t.equal(reply.status, 502)
    t.equal(reply.text, 'Bad Gateway\n')
    // An origin that answers once, then goes away.
    let up = true
    const origin = await listen(t, (req, res) => {
      if (!up) return req.socket.destroy()
      res.setHeader('cache-control', 'max-age=1, stale-if-error=60')
      res.end('remembered')
    })
    let now = Date.now()
    const proxy = await proxyTo(t, origin, { now: () => now })
    await request(proxy + '/')
    up = false
    now += 2_000
    const stale = await request(proxy + '/')
    t.equal(stale.status, 200)
    t.equal(stale.text, 'remembered')
    t.match(stale.headers['cache-status'], /fwd=stale; fwd-status=502; .*detail=stale-if-error/)
  },
)

t.test(
  'an origin that lies about its Content-Length: the client sees a cut, nothing is stored',
  async (t) => {
    let calls = 0
    const origin = await rawOrigin(t, (socket) => {
      calls++
      socket.end(
        'HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 100\r\n\r\nonly twenty-two bytes',
      )
    })
    const proxy = await proxyTo(t, origin)
    await requestError(proxy + '/')
    await requestError(proxy + '/')
    t.equal(calls, 2, 'the short body was not stored')
  },
)

t.test(
  'an origin that drops the connection mid-body: the client sees a cut, nothing is stored',
  async (t) => {
    let calls = 0
    const origin = await rawOrigin(t, (socket) => {
      calls++
      // Dropped once the first chunk is on its way.
      socket.write(
        'HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
        () => socket.destroy(),
      )
    })
    const proxy = await proxyTo(t, origin)
    await requestError(proxy + '/')
    await requestError(proxy + '/')
    t.equal(calls, 2)
  },
)

t.test("a client that goes away frees the origin's connection", async (t) => {
  const closed = new Promise<void>((resolve) => {
    void listen(t, (_req, res) => {
      res.write('slow start')
      res.on('close', () => resolve())
    }).then(async (origin) => {
      const proxy = await proxyTo(t, origin)
      const req = http.get(proxy + '/', { agent: false }, (res) =>
        res.once('data', () => req.destroy()),
      )
      req.on('error', () => {})
    })
  })
  await closed
  t.pass('the origin saw its response closed')
})

t.test('an upstream path prefix and absolute-form targets', async (t) => {
  const origin = await listen(t, (req, res) => res.end(req.url))
  const upstream = forward(origin + '/app/')
  t.teardown(() => upstream.close())
  const proxy = await listen(t, upstream)
  t.equal((await request(proxy + '/page?x=1')).text, '/app/page?x=1')
  const raw = await new Promise<string>((resolve) => {
    const socket = net.connect(Number(new URL(proxy).port), '127.0.0.1', () =>
      socket.write(
        'GET http://example.com/abs?q HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n',
      ),
    )
    let text = ''
    socket.on('data', (chunk) => (text += chunk))
    socket.on('end', () => resolve(text))
  })
  t.match(raw, /\/app\/abs\?q$/)
})

t.test('forward() names a bad upstream', async (t) => {
  t.throws(() => forward('not a url'), {
    name: 'TypeError',
    message: 'expected upstream to be an http(s) URL, got "not a url"',
  })
  t.throws(() => forward('ftp://example.com'), {
    name: 'TypeError',
    message: 'expected upstream to be an http(s) URL, got "ftp://example.com/"',
  })
  t.throws(() => forward('http://example.com', { timeout: 5 } as never), {
    name: 'TypeError',
    message:
      'unknown option "timeout" for forward(): the options are agent, via, trustForwardedHeaders',
  })
  t.throws(() => forward('http://example.com', { trust_proxy: true } as never), {
    message: 'unknown option "trust_proxy" for forward(): did you mean trustForwardedHeaders?',
  })
  t.throws(() => forward('http://example.com', null as never), {
    message: "expected forward()'s options to be an object, got null",
  })
})

/** An origin speaking raw HTTP/1.1 on a TCP socket, to misbehave in ways http.Server will not. */
async function rawOrigin(t: Test, onRequest: (socket: net.Socket) => void): Promise<string> {
  const server = net.createServer((socket) => socket.once('data', () => onRequest(socket)))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
}

t.test('OPTIONS * reaches the origin as a path', async (t) => {
  const origin = await listen(t, (req, res) => res.end(`${req.method} ${req.url}`))
  const upstream = forward(origin)
  t.teardown(() => upstream.close())
  const proxy = await listen(t, upstream)
  const raw = await new Promise<string>((resolve) => {
    const socket = net.connect(Number(new URL(proxy).port), '127.0.0.1', () =>
      socket.write('OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    )
    let text = ''
    socket.on('data', (chunk) => (text += chunk))
    socket.on('end', () => resolve(text))
  })
  t.match(raw, /OPTIONS \/\*$/)
})

t.test('an https upstream', async (t) => {
  const { execFileSync } = await import('node:child_process')
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const https = await import('node:https')
  const dir = mkdtempSync(join(tmpdir(), 'acc-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-days',
      '1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  )
  const server = https.createServer(
    { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
    (req, res) => res.end(`tls ${req.url}`),
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  // A self-signed certificate: trusted here through the agent, as a user would configure one.
  const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false })
  const upstream = forward(`https://127.0.0.1:${(server.address() as net.AddressInfo).port}`, {
    agent,
  })
  t.teardown(() => upstream.close())
  const proxy = await listen(t, upstream)
  t.equal((await request(proxy + '/secure')).text, 'tls /secure')
  // And clients on TLS in front of the forwarder: the origin learns it from X-Forwarded-Proto.
  const proto = await listen(t, (req, res) => res.end(String(req.headers['x-forwarded-proto'])))
  const toProto = forward(proto)
  t.teardown(() => toProto.close())
  const front = https.createServer(
    { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
    toProto,
  )
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => front.close(() => resolve())))
  const seen = await new Promise<string>((resolve, reject) => {
    https
      .get(
        `https://127.0.0.1:${(front.address() as net.AddressInfo).port}/`,
        { rejectUnauthorized: false, agent: false },
        (res) => {
          let text = ''
          res.on('data', (chunk: Buffer) => (text += chunk))
          res.on('end', () => resolve(text))
        },
      )
      .on('error', reject)
  })
  t.equal(seen, 'https')
})

t.test(
  'an origin that answers early, then drops the connection during the upload, cuts the client',
  async (t) => {
    const started = gate()
    const origin = await listen(t, async (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('started')
      await started.promise // the client has the start of the response: its headers went out
      req.socket.destroy()
    })
    const upstream = forward(origin)
    t.teardown(() => upstream.close())
    const proxy = await listen(t, upstream)
    const outcome = await new Promise<string>((resolve) => {
      const req = http.request(proxy + '/', { method: 'POST', agent: false }, (res) => {
        res.once('data', () => started.open())
        res.on('end', () => resolve('ended as if complete'))
        res.on('error', () => resolve('cut'))
        res.on('aborted', () => resolve('cut'))
      })
      req.on('error', () => resolve('cut'))
      req.end(Buffer.alloc(16 * 1024 * 1024))
    })
    t.equal(outcome, 'cut')
  },
)

t.test(
  "trustForwardedHeaders keeps a trusted front proxy's X-Forwarded-Host and -Proto",
  async (t) => {
    const origin = await listen(t, (req, res) =>
      res.end(`${req.headers['x-forwarded-host']} ${req.headers['x-forwarded-proto']}`),
    )
    const trusting = forward(origin, { trustForwardedHeaders: true })
    const careful = forward(origin)
    t.teardown(() => (trusting.close(), careful.close()))
    const trusted = await listen(t, trusting)
    const untrusted = await listen(t, careful)
    const claimed = { 'x-forwarded-host': 'www.example.com', 'x-forwarded-proto': 'https' }
    t.equal(
      (await request(trusted + '/', { headers: claimed })).text,
      'www.example.com https',
      'kept',
    )
    t.equal(
      (await request(trusted + '/')).text,
      `${new URL(trusted).host} http`,
      'ours when the front proxy sent none',
    )
    t.equal(
      (await request(untrusted + '/', { headers: claimed })).text,
      `${new URL(untrusted).host} http`,
      'replaced by default',
    )
  },
)

t.test('a reason phrase Node will not write is left out, and the proxy stays up', async (t) => {
  const head = 'HTTP/1.1 200 O\x01K\r\nCache-Control: max-age=60\r\nContent-Length: 2'
  const origin = await rawOrigin(t, (socket) => socket.end(`${head}\r\n\r\nok`))
  const proxy = await proxyTo(t, origin)
  const reply = await request(proxy + '/')
  t.equal(reply.status, 200)
  t.equal(reply.text, 'ok')
  t.equal((await request(proxy + '/')).text, 'ok', 'and stored')
})

t.test('a 103 whose Link Node will not write is dropped; the final response goes on', async (t) => {
  const hints = 'HTTP/1.1 103 Early Hints\r\nLink: not a link\r\n\r\n'
  const final = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal'
  const origin = await rawOrigin(t, (socket) => socket.end(hints + final))
  const proxy = await proxyTo(t, origin)
  const interim: number[] = []
  const text = await new Promise<string>((resolve, reject) => {
    const req = http.get(proxy + '/', { agent: false }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk))
      res.on('end', () => resolve(body))
    })
    req.on('information', ({ statusCode }) => interim.push(statusCode))
    req.on('error', reject)
  })
  t.equal(text, 'final')
  t.same(interim, [], 'no interim response')
})
