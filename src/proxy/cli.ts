#!/usr/bin/env node
/**
 * `accelerator`: the accelerator as a caching reverse proxy in front of any HTTP origin. It is
 * `http.createServer(accelerate(forward(upstream), { sharedCache: true, surrogateKeys: true }))`,
 * with each request prepared by the forwarder before the cache sees it, a purge API when a token
 * is given, and nothing more special.
 */
import http from 'node:http'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'
import { realpathSync } from 'node:fs'
import { accelerate, MemoryStore, type Accelerator, type CacheStore } from '../index.js'
import { forward } from './forward.js'
import { purgeApi } from './purge.js'

export const USAGE = `Usage: accelerator --upstream URL [options]

A caching reverse proxy (RFC 9111 shared cache) in front of an HTTP origin.

Options:
  --upstream URL            the origin to forward to (required), e.g. http://127.0.0.1:8080
  --port N                  port to listen on (default 3000)
  --host ADDRESS            address to listen on (default 127.0.0.1)
  --redis URL               store in Redis at URL, shared by every proxy using it (default: in memory)
  --max-bytes SIZE          in-memory store budget, e.g. 256m, 1g, 500k (default 256m)
  --purge-token TOKEN       enable the purge API for requests with "Authorization: Bearer TOKEN":
                              PURGE /path                      drops that URL
                              POST /.accelerator/purge         {"tags":[...],"urls":[...],"soft":false}
                            without it, PURGE and that path go to the origin like any request
  --stale-if-error SECONDS  serve a stale entry for up to SECONDS past its freshness when the origin
                            cannot be reached or answers 5xx (RFC 9111 §4.2.4), unless it says
                            must-revalidate, proxy-revalidate, no-cache or s-maxage (default
                            3600; 0 turns it off; the response's own stale-if-error wins)
  --keep-surrogate-headers  pass Surrogate-Key, Cache-Tag and Surrogate-Control on to clients
  --trust-forwarded-headers pass on the client's Forwarded, X-Forwarded-Host/-Proto/-Port/...,
                            X-Original-URL and other override headers (only behind a front
                            proxy that sets them); by default they are dropped
  --metrics                 serve Prometheus metrics at GET /metrics (before the origin, which then
                            never sees that path); needs prom-client: npm install prom-client
  --log                     print one line per request: method, path, status, cache status, time
  --help                    print this help

Tags come from the origin's Surrogate-Key (space-separated) and Cache-Tag (comma-separated)
headers; Surrogate-Control: max-age=N sets the proxy's TTL over Cache-Control.`

/** The proxy's settings, parsed from its flags. */
export interface ProxyConfig {
  upstream: URL
  port: number
  host: string
  redis?: string
  maxBytes: number
  purgeToken?: string
  keepSurrogateHeaders: boolean
  /** Seconds a stale entry is served when the origin fails (RFC 9111 §4.2.4). @default 3600 */
  staleIfError?: number
  /** Pass on the client's override headers (see forward()'s option). @default false */
  trustForwardedHeaders?: boolean
  log: boolean
  /** Serve Prometheus metrics at `/metrics`. @default false */
  metrics?: boolean
}

/** Seconds a stale entry stands in for an origin that fails, unless --stale-if-error says. */
const DEFAULT_STALE_IF_ERROR = 3600

/** How long the proxy waits for Redis at startup before serving anyway (uncached until it answers). */
const REDIS_WAIT_MS = 2000

/** A flag that is wrong: the message says which and why; the process exits 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** Parses the flags; `'help'` when help was asked for. Throws a UsageError for a bad flag. */
export function parseFlags(argv: readonly string[]): ProxyConfig | 'help' {
  let values
  try {
    ;({ values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        upstream: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        redis: { type: 'string' },
        'max-bytes': { type: 'string' },
        'purge-token': { type: 'string' },
        'stale-if-error': { type: 'string' },
        'keep-surrogate-headers': { type: 'boolean' },
        'trust-forwarded-headers': { type: 'boolean' },
        log: { type: 'boolean' },
        metrics: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (values.help) return 'help'
  if (values.upstream === undefined)
    throw new UsageError(
      '--upstream is required (the origin to forward to, e.g. http://127.0.0.1:8080)',
    )
  let upstream: URL
  try {
    upstream = new URL(values.upstream)
  } catch {
    throw new UsageError(
      `--upstream must be an http(s) URL, got ${JSON.stringify(values.upstream)}`,
    )
  }
  if (upstream.protocol !== 'http:' && upstream.protocol !== 'https:')
    throw new UsageError(
      `--upstream must be an http(s) URL, got ${JSON.stringify(values.upstream)}`,
    )
  const port = Number(values.port ?? 3000)
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port must be a port number, got ${JSON.stringify(values.port)}`)
  if (values.redis !== undefined && !/^(rediss?|unix):/.test(values.redis))
    throw new UsageError(`--redis must be a redis:// URL, got ${JSON.stringify(values.redis)}`)
  const staleIfError = Number(values['stale-if-error'] ?? DEFAULT_STALE_IF_ERROR)
  if (!/^\d+$/.test(values['stale-if-error'] ?? '0') || !Number.isSafeInteger(staleIfError)) {
    const got = JSON.stringify(values['stale-if-error'])
    throw new UsageError(`--stale-if-error must be a whole number of seconds, got ${got}`)
  }
  if (values['purge-token'] === '') throw new UsageError('--purge-token must not be empty')
  return {
    upstream,
    port,
    host: values.host ?? '127.0.0.1',
    ...(values.redis === undefined ? {} : { redis: values.redis }),
    maxBytes: parseSize(values['max-bytes'] ?? '256m'),
    ...(values['purge-token'] === undefined ? {} : { purgeToken: values['purge-token'] }),
    keepSurrogateHeaders: values['keep-surrogate-headers'] ?? false,
    staleIfError,
    trustForwardedHeaders: values['trust-forwarded-headers'] ?? false,
    log: values.log ?? false,
    metrics: values.metrics ?? false,
  }
}

/** `256m`, `1g`, `500k`, `1048576`: bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(text.trim())
  const bytes = match
    ? Math.floor(Number(match[1]) * 1024 ** 'bkmg'.indexOf((match[2] || 'b').toLowerCase()))
    : NaN
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw new UsageError(`--max-bytes must be a size such as 256m, got ${JSON.stringify(text)}`)
  return bytes
}

/** Starts the proxy; resolves once it listens. `close()` stops it and releases everything. */
export async function startProxy(
  config: ProxyConfig,
  out: (line: string) => void = console.log,
): Promise<{ server: http.Server; url: string; close(): Promise<void> }> {
  // First: without prom-client, nothing else was started (no Redis connection left open).
  const metricsModule = config.metrics ? await loadMetrics() : undefined
  let store: CacheStore
  if (config.redis !== undefined) {
    // Loaded only when asked for: memory-only proxies never load ioredis.
    const { RedisStore } = await import('../../stores/redis.js')
    const redis = new RedisStore({ url: config.redis })
    await redis
      .ready(REDIS_WAIT_MS)
      .catch((err: Error) => out(`${err.message}; proxying uncached until it is`))
    store = redis
  } else store = new MemoryStore({ maxBytes: config.maxBytes })
  const trustForwardedHeaders = config.trustForwardedHeaders ?? false
  const upstream = forward(config.upstream, { trustForwardedHeaders })
  const app = accelerate(upstream, {
    store,
    sharedCache: true,
    surrogateKeys: true,
    keepSurrogateHeaders: config.keepSurrogateHeaders,
    staleIfError: config.staleIfError ?? DEFAULT_STALE_IF_ERROR,
  })
  const purge = config.purgeToken === undefined ? undefined : purgeApi(app, config.purgeToken)
  const metrics = metricsModule && metricsRoute(app, metricsModule)
  const server = http.createServer((req, res) => {
    if (config.log) logWhenDone(req, res, out)
    // The proxy's own: its metrics, its purge API. Then the origin.
    if (metrics?.serve(req, res)) return
    // The purge API is the proxy's own and parses what it is sent itself (its 400s are JSON);
    // the cache and the origin both read the request as it will be forwarded.
    if (purge?.(req, res)) return
    if (!upstream.prepare(req, res)) return
    app(req, res)
  })
  const release = async () => {
    await app.close()
    metrics?.close()
    upstream.close()
    await store.close()
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.port, config.host, resolve)
    })
  } catch (err) {
    // What was opened for it (a Redis connection) would keep the process up: close it first.
    await release()
    throw new ListenError(config.host, config.port, err as NodeJS.ErrnoException)
  }
  const { port } = server.address() as { port: number }
  const url = listenUrl(config.host, port)
  return {
    server,
    url,
    async close() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await release()
    },
  }
}

/** The proxy could not listen where it was told: says where, why, and what to do. */
export class ListenError extends Error {
  override name = 'ListenError'
  constructor(host: string, port: number, cause: NodeJS.ErrnoException) {
    const why =
      cause.code === 'EADDRINUSE'
        ? 'the address is already in use (EADDRINUSE); choose another --port or stop what listens there'
        : `${cause.message}; check --host and --port`
    super(`cannot listen on ${host}:${port}: ${why}`, { cause })
  }
}

/** Where --metrics serves the metrics. */
export const METRICS_PATH = '/metrics'

type MetricsModule = typeof import('../metrics.js')

/**
 * Loads node-accelerator/metrics, and with it prom-client (an optional peer dependency): only
 * for --metrics. Rejects with what to install when it is missing (`load` is for tests).
 */
export async function loadMetrics(
  load: () => Promise<MetricsModule> = () => import('../metrics.js'),
): Promise<MetricsModule> {
  try {
    return await load()
  } catch (err) {
    const what =
      '--metrics needs prom-client (an optional peer dependency): run "npm install prom-client"'
    throw new Error(`${what} (${(err as Error).message})`)
  }
}

/** What --metrics adds: `GET /metrics` (and HEAD) answered from a prom-client registry of the proxy's own. */
export function metricsRoute(app: Accelerator, metrics: MetricsModule) {
  const registry = new metrics.Registry()
  const close = metrics.registerMetrics(app, registry)
  const listener = metrics.metricsListener(registry)
  return {
    /** Answers a request for the metrics; false for any other request. */
    serve(req: http.IncomingMessage, res: http.ServerResponse): boolean {
      const path = String(req.url).split('?')[0]
      if ((req.method !== 'GET' && req.method !== 'HEAD') || path !== METRICS_PATH) return false
      listener(req, res)
      return true
    },
    close,
  }
}

/** The URL of a listening address: an IPv6 literal goes in brackets (RFC 3986 §3.2.2). */
export function listenUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** One line per request, once it is over: method, path, status, cache status, milliseconds. */
function logWhenDone(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  out: (line: string) => void,
): void {
  const started = performance.now()
  res.once('close', () => {
    // A hit's headers go to writeHead whole, so they are not in getHeaders(): read what was sent.
    const sent = (res as unknown as { _header?: string })._header ?? ''
    const cacheStatus = /^cache-status: *(.*)\r$/im.exec(sent)?.[1] ?? '-'
    const status = res.writableFinished ? String(res.statusCode) : 'cut'
    out(
      `${req.method} ${req.url} ${status} "${cacheStatus}" ${(performance.now() - started).toFixed(1)}ms`,
    )
  })
}

/**
 * The command line: exit 2 on a bad flag or a port it cannot listen on, 0 after --help; otherwise
 * serve until a signal.
 */
export async function main(argv: readonly string[]): Promise<void> {
  let config
  try {
    config = parseFlags(argv)
  } catch (err) {
    // parseFlags reports every problem with the flags as a UsageError.
    process.stderr.write(
      `accelerator: ${(err as Error).message}\nRun "accelerator --help" for the options.\n`,
    )
    process.exitCode = 2
    return
  }
  if (config === 'help') {
    process.stdout.write(USAGE + '\n')
    return
  }
  let proxy
  try {
    proxy = await startProxy(config)
  } catch (err) {
    if (!(err instanceof ListenError)) throw err
    process.stderr.write(`accelerator: ${err.message}\n`)
    // Like a bad flag: the command as given cannot run (issue 16: CLI errors exit 2).
    process.exitCode = 2
    return
  }
  console.log(
    `accelerator: ${proxy.url} -> ${config.upstream.href} (${config.redis === undefined ? `in memory, ${config.maxBytes} bytes` : `Redis ${config.redis}`})${config.purgeToken === undefined ? '' : ', purge API on'}`,
  )
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void proxy.close().then(() => process.exit(0)))
}

// Run when executed (node dist/src/cli.js, npx accelerator), not when imported by tests.
if (
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href
)
  await main(process.argv.slice(2))
