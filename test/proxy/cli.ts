// The accelerator command: --help, bad flags (exit 2 with a clear message), a request through it,
// and --log's line per request.
import t from 'tap'
import { spawn } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import {
  ListenError,
  listenUrl,
  main,
  parseFlags,
  parseSize,
  startProxy,
  UsageError,
  USAGE,
} from '../../src/proxy/cli.js'
import { gate, listen, request } from '../fixtures/http.js'

const cli = fileURLToPath(new URL('../../src/proxy/cli.ts', import.meta.url))

/** Runs the CLI as its own process (with this process's TypeScript loader); ready once `until(out)`. */
function run(args: string[], until: (out: string) => boolean) {
  const child = spawn(process.execPath, [...process.execArgv, cli, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk))
  child.stderr.on('data', (chunk: Buffer) => (err += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => until(out) && resolve())
    void exited.then(() => reject(new Error(`exited early: ${err}`)))
  })
  /** Resolves once the output shows `pattern`: at once when it already does (the line may have come). */
  const printed = (pattern: RegExp) =>
    new Promise<void>((resolve) => {
      const check = () => pattern.test(out) && (child.stdout.off('data', check), resolve())
      child.stdout.on('data', check)
      check()
    })
  return { child, exited, ready, printed, out: () => out, err: () => err }
}

// main() in this process for what ends before serving (each process of the command costs seconds
// of TypeScript loading); the command as its own process below, for serving and signals.
t.test('--help documents every flag and exits 0', async (t) => {
  const out = t.capture(process.stdout, 'write')
  await main(['--help'])
  const printed = out()
    .map((call) => String(call.args[0]))
    .join('')
  t.equal(process.exitCode, undefined)
  for (const flag of [
    '--upstream',
    '--port',
    '--host',
    '--redis',
    '--purge-token',
    '--max-bytes',
    '--log',
    '--keep-surrogate-headers',
    '--trust-forwarded-headers',
    '--help',
  ])
    t.match(printed, flag)
})

t.test('a bad flag exits 2 with a clear message', async (t) => {
  const err = t.capture(process.stderr, 'write')
  t.teardown(() => void (process.exitCode = undefined))
  await main(['--upstream', 'http://x', '--bogus'])
  t.equal(process.exitCode, 2)
  t.match(
    err()
      .map((call) => String(call.args[0]))
      .join(''),
    /^accelerator: Unknown option '--bogus'.*\nRun "accelerator --help" for the options\.\n$/s,
  )
})

t.test(
  'a port already in use: one line that says so and what to do, exit 2, nothing left open',
  async (t) => {
    const taken = net.createServer().listen(0, '127.0.0.1')
    await new Promise((resolve) => taken.once('listening', resolve))
    t.teardown(() => void taken.close())
    const port = (taken.address() as { port: number }).port
    const err = t.capture(process.stderr, 'write')
    t.teardown(() => void (process.exitCode = undefined))
    await main(['--upstream', 'http://127.0.0.1:1', '--port', String(port)])
    t.equal(process.exitCode, 2)
    const message =
      `accelerator: cannot listen on 127.0.0.1:${port}: the address is already in use (EADDRINUSE); ` +
      'choose another --port or stop what listens there\n'
    t.equal(
      err()
        .map((call) => String(call.args[0]))
        .join(''),
      message,
    )
  },
)

t.test('a host that cannot be listened on: its error, and what to check', async (t) => {
  const config = {
    upstream: new URL('http://127.0.0.1:1'),
    port: 0,
    host: '192.0.2.1',
    maxBytes: 1024 * 1024,
  }
  await t.rejects(
    startProxy(config as never, () => {}),
    ListenError,
  )
  await t.rejects(
    startProxy(config as never, () => {}),
    {
      message: /^cannot listen on 192\.0\.2\.1:0: listen EADDRNOTAVAIL.*; check --host and --port$/,
    },
  )
})

t.test('each bad flag is named with what it got', async (t) => {
  // What the process prints is parseFlags' message (above); each message, in process.
  for (const [args, message] of [
    [['--bogus'], /Unknown option '--bogus'/],
    [[], /--upstream is required/],
    [['--upstream', 'nope'], /--upstream must be an http\(s\) URL, got "nope"/],
    [['--upstream', 'http://x', '--port', 'eighty'], /--port must be a port number, got "eighty"/],
    [
      ['--upstream', 'http://x', '--max-bytes', 'lots'],
      /--max-bytes must be a size such as 256m, got "lots"/,
    ],
  ] as const) {
    t.throws(
      () => parseFlags([...args]),
      { name: 'UsageError', message },
      args.join(' ') || '(no flags)',
    )
  }
})

t.test('a request through the command, logged', async (t) => {
  const origin = await listen(t, (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end('through the proxy')
  })
  const proxy = run(['--upstream', origin, '--port', '0', '--log'], (out) =>
    /accelerator: http:\/\/127\.0\.0\.1:\d+/.test(out),
  )
  t.teardown(() => proxy.child.kill('SIGTERM'))
  await proxy.ready
  const url = /accelerator: (http:\/\/127\.0\.0\.1:\d+)/.exec(proxy.out())![1]!
  t.equal((await request(url + '/page')).text, 'through the proxy')
  t.match((await request(url + '/page')).headers['cache-status'], /hit/)
  await request(url + '/form', { method: 'POST', body: 'x' })
  await proxy.printed(/POST/)
  t.match(
    proxy.out(),
    /GET \/page 200 "node-accelerator; fwd=miss; stored" \d+\.\dms\nGET \/page 200 "node-accelerator; hit; ttl=\d+" \d+\.\dms\nPOST \/form 200 "-" \d+\.\dms/,
  )
  proxy.child.kill('SIGTERM')
  t.equal(await proxy.exited, 0, 'SIGTERM: a clean exit')
})

t.test(
  '--log marks a response cut short; the startup line names the store and the purge API',
  async (t) => {
    const { startRedis } = await import('../fixtures/redis-server.js')
    const redis = await startRedis(t)
    const hanging = gate()
    const origin = await listen(t, (req, res) => {
      if (req.url === '/hang') return hanging.open() // never answers
      res.write('a start')
      res.on('close', () => res.destroy())
    })
    const proxy = run(
      ['--upstream', origin, '--port', '0', '--log', '--redis', redis.url, '--purge-token', 'tok'],
      (out) => /accelerator: http/.test(out),
    )
    t.teardown(() => proxy.child.kill('SIGTERM'))
    await proxy.ready
    t.match(proxy.out(), /\(Redis redis:\/\/127\.0\.0\.1:\d+\), purge API on/)
    const url = /accelerator: (http:\/\/127\.0\.0\.1:\d+)/.exec(proxy.out())![1]!
    const { abortAfterFirstChunk } = await import('../fixtures/http.js')
    await abortAfterFirstChunk(url + '/stream')
    await proxy.printed(/\/stream cut/)
    t.match(
      proxy.out(),
      /GET \/stream cut "node-accelerator; fwd=miss; detail=not-opted-in" \d+\.\dms/,
    )
    // A client that gives up before any header was sent.
    const http = await import('node:http')
    const hung = http.get(url + '/hang', { agent: false })
    hung.on('error', () => {})
    // Once the request reached the origin through the proxy (not after a guessed delay).
    await hanging.promise
    hung.destroy()
    await proxy.printed(/\/hang cut/)
    t.match(proxy.out(), /GET \/hang cut "-" \d+\.\dms/)
  },
)

t.test('the startup line brackets an IPv6 address', async (t) => {
  const ipv6 = await new Promise<boolean>((resolve) => {
    const probe = net.createServer().once('error', () => resolve(false))
    probe.listen(0, '::1', () => probe.close(() => resolve(true)))
  })
  if (!ipv6)
    return t.pass('skipped: no IPv6 loopback on this machine (listenUrl is tested in process)')
  const { startProxy } = await import('../../src/proxy/cli.js')
  const origin = await listen(t, (_req, res) => res.end('v6'))
  const proxy = await startProxy(
    {
      upstream: new URL(origin),
      port: 0,
      host: '::1',
      maxBytes: 1 << 20,
      keepSurrogateHeaders: false,
      log: false,
    },
    () => {},
  )
  t.teardown(() => proxy.close())
  t.match(proxy.url, /^http:\/\/\[::1\]:\d+$/)
  t.equal((await request(proxy.url + '/')).text, 'v6')
})

t.test('parseFlags and parseSize', async (t) => {
  t.equal(parseFlags(['--help']), 'help')
  t.match(
    parseFlags([
      '--upstream',
      'https://example.com',
      '--redis',
      'redis://r:6379',
      '--purge-token',
      't',
      '--keep-surrogate-headers',
      '--host',
      '0.0.0.0',
    ]),
    {
      port: 3000,
      host: '0.0.0.0',
      redis: 'redis://r:6379',
      purgeToken: 't',
      keepSurrogateHeaders: true,
      log: false,
      maxBytes: 256 * 1024 * 1024,
    },
  )
  t.match(parseFlags(['--upstream', 'http://x']), { trustForwardedHeaders: false })
  const trusting = parseFlags(['--upstream', 'http://x', '--trust-forwarded-headers'])
  t.match(trusting, { trustForwardedHeaders: true })
  t.throws(() => parseFlags(['--upstream', 'ftp://x']), { name: 'UsageError' })
  t.throws(
    () => parseFlags(['--upstream', 'http://x', '--redis', 'http://r']),
    /--redis must be a redis:\/\/ URL/,
  )
  t.throws(
    () => parseFlags(['--upstream', 'http://x', '--purge-token', '']),
    /--purge-token must not be empty/,
  )
  t.same(
    [parseSize('512'), parseSize('1k'), parseSize('1.5m'), parseSize('2G'), parseSize('3mb')],
    [512, 1024, 1572864, 2147483648, 3145728],
  )
  t.throws(() => parseSize('0'), new UsageError('--max-bytes must be a size such as 256m, got "0"'))
  t.match(USAGE, /Surrogate-Key/)
  t.equal(listenUrl('127.0.0.1', 80), 'http://127.0.0.1:80')
  t.equal(
    listenUrl('::1', 80),
    'http://[::1]:80',
    'an IPv6 literal in brackets, whether or not this machine has IPv6',
  )
})
