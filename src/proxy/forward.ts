/**
 * forward(upstream): a handler that proxies each request to an HTTP origin. Bodies stream both
 * ways with backpressure over a keep-alive agent; headers keep their order and repetitions
 * (raw header arrays), minus the hop-by-hop ones, plus `Via` and `X-Forwarded-*`; 1xx interim
 * responses are relayed. An origin that cannot be reached, or fails before its response began,
 * is answered 502 (which the accelerator replaces with a stale entry within stale-if-error).
 * What a request becomes before it goes on (and before the cache looks it up, through
 * `prepare`) is in ./proxy-request.ts: the cache and the origin must read the same request.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import { pipeline } from 'node:stream'
import {
  connectionOptions,
  HOP_BY_HOP,
  sanitizeRequest,
  type Prepared,
  type Refusal,
} from './proxy-request.js'
import { quoteEntityTags } from '../http/conditional.js'
import { describe, rejectUnknown } from '../lib/describe.js'
import { selectingSet } from '../http/index.js'

/** Options of {@link forward}. */
export interface ForwardOptions {
  /** The agent for upstream connections. @default a keep-alive agent, closed by `close()` */
  agent?: http.Agent
  /** This hop's `Via` entry (RFC 9110 §7.6.3). @default '1.1 node-accelerator' */
  via?: string
  /**
   * Pass on the client's `Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto` and the other
   * headers that override the host, scheme, port, path or client address (OVERRIDE_HEADERS in
   * ./proxy-request.ts), for a trusted front proxy that sets them. Otherwise they are dropped
   * (and X-Forwarded-Host and -Proto set by this hop): they are not part of any cache key, so a
   * client could make the origin render for another host under this host's key. @default false
   */
  trustForwardedHeaders?: boolean
}

const FORWARD_OPTIONS = ['agent', 'via', 'trustForwardedHeaders']

/**
 * The forwarding handler, with `close()` to release its upstream connections. Its promise never
 * rejects (it may serve as a plain listener): an origin that fails after its response began
 * leaves the response destroyed, which is how a cut shows, to a client and to the cache.
 */
export interface Forwarder {
  (req: IncomingMessage, res: ServerResponse): Promise<void>
  close(): void
  /**
   * Rewrites a request into the one the origin will get (origin-form target, one canonical
   * Host, no hop-by-hop or untrusted override headers), so that a cache in front keys and
   * selects variants on exactly that; call it before the cache. Returns false when it answered
   * the request itself: 400 (two Host lines, an invalid Host or target, a `..` that could leave
   * the upstream's path) or 501 (a transfer coding other than chunked). The handler calls it too.
   */
  prepare(req: IncomingMessage, res: ServerResponse): boolean
}

/** A handler that sends every request on to `upstream` (an http: or https: URL). */
export function forward(upstream: string | URL, options: ForwardOptions = {}): Forwarder {
  if (options === null || typeof options !== 'object')
    throw new TypeError(`expected forward()'s options to be an object, got ${describe(options)}`)
  rejectUnknown(options, FORWARD_OPTIONS, 'forward()', { trustproxy: 'trustForwardedHeaders' })
  const { agent, via = '1.1 node-accelerator', trustForwardedHeaders = false } = options
  let target: URL
  try {
    target = new URL(upstream)
  } catch {
    throw new TypeError(
      `expected upstream to be an http(s) URL, got ${JSON.stringify(String(upstream))}`,
    )
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    throw new TypeError(
      `expected upstream to be an http(s) URL, got ${JSON.stringify(target.href)}`,
    )
  const client = target.protocol === 'https:' ? https : http
  const pool = agent ?? new client.Agent({ keepAlive: true })
  const base = target.pathname.replace(/\/$/, '')
  const sanitizing = { trustForwardedHeaders, confined: base !== '' }
  const prepared = new WeakMap<IncomingMessage, Prepared>()

  /** Rewrites the request into what the origin gets, once; false when it answered it (4xx). */
  const prepare = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (prepared.has(req)) return true
    const outcome = sanitizeRequest(req, sanitizing)
    if ('status' in outcome) return refuse(res, outcome)
    prepared.set(req, outcome)
    return true
  }

  const handler = (req: IncomingMessage, res: ServerResponse) =>
    new Promise<void>((resolve) => {
      if (!prepare(req, res)) return resolve()
      const request = prepared.get(req)!
      const upstreamReq = client.request({
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        // RFC 9112 §3.2.4: OPTIONS * goes on as a path under the upstream's.
        path: base + (req.url === '*' ? '/*' : req.url!),
        headers: requestHeaders(req, request, via, target.host, trustForwardedHeaders),
        agent: pool,
        setHost: false,
      })
      // RFC 9110 §15.2: interim responses are relayed as they come (advisory: a 103 whose Link
      // Node will not write is dropped).
      upstreamReq.on('information', ({ statusCode, headers }) => {
        if (statusCode === 103 && headers.link !== undefined) {
          try {
            res.writeEarlyHints({ ...headers, link: headers.link })
          } catch {
            // dropped: the final response carries what matters
          }
        } else if (statusCode === 102) res.writeProcessing()
      })
      let upstreamRes: IncomingMessage | undefined
      upstreamReq.on('response', (response) => {
        upstreamRes = response
        // (A response from http.request always has its statusCode.) RFC 9112 §4: a reason
        // phrase is ignorable; one Node will not write (a control character) is left out.
        const message = response.statusMessage!
        const reason = /^[\t\x20-\x7e\x80-\xff]*$/.test(message) ? message : undefined
        res.writeHead(response.statusCode!, reason, responseHeaders(response.rawHeaders, via))
        // An origin that resets mid-body cuts the client too (pipeline destroys the response): a
        // partial body is never complete.
        pipeline(response, res, () => resolve())
      })
      upstreamReq.on('error', (err) => {
        // RFC 9112 §6.3: bytes past the declared Content-Length are not part of the response.
        // Node's parser fails on them once it has the whole body (the socket is not reused):
        // the declared body is served, and stored.
        if (upstreamRes?.complete) return
        if (res.headersSent) return resolve(void res.destroy(err))
        res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'content-length': '12' })
        res.end('Bad Gateway\n')
        resolve()
      })
      // A client that goes away frees the upstream connection too.
      res.once('close', () => res.writableFinished || upstreamReq.destroy())
      // RFC 9110 §9.3.1: a GET's body (or a HEAD's) is read and dropped, never sent on.
      if (request.framing.body === 'none') {
        req.resume()
        upstreamReq.end()
      } else pipeline(req, upstreamReq, () => {})
    })
  return Object.assign(handler, { close: () => pool.destroy(), prepare })
}

/** Answers a request the proxy will not forward; the connection closes after it. */
function refuse(res: ServerResponse, { status, reason }: Refusal): false {
  const body = `${reason}\n`
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    connection: 'close',
  })
  res.end(body)
  return false
}

/**
 * The client's header lines as sanitizeRequest kept them, plus ours: Via and X-Forwarded-For
 * appended to, X-Forwarded-Proto and -Host (unless a trusted front proxy sent them), a Host for
 * an HTTP/1.0 request that sent none, and the body's framing.
 */
function requestHeaders(
  req: IncomingMessage,
  { lines, framing }: Prepared,
  via: string,
  upstreamHost: string,
  trustForwarded: boolean,
): string[] {
  // The validators are the request's as the cache left them (its stored entry's, RFC 9111
  // §4.3.1, or none on a miss it means to store), not those the client sent.
  // So are a revalidated variant's selecting headers (RFC 9111 §4.3.1: those it was stored for).
  const selecting = selectingSet(req)
  const set = selecting.length > 0 ? new Set([...APPENDED, ...selecting]) : APPENDED
  const headers = without(lines, set)
  for (const name of selecting) {
    if (Object.hasOwn(req.headers, name)) headers.push(name, String(req.headers[name]))
  }
  const { 'if-none-match': ifNoneMatch, 'if-modified-since': ifModifiedSince } = req.headers
  // RFC 9110 §8.8.3: an entity-tag is quoted, though the origin may have sent its ETag bare.
  if (ifNoneMatch !== undefined) headers.push('If-None-Match', quoteEntityTags(ifNoneMatch))
  if (ifModifiedSince !== undefined) headers.push('If-Modified-Since', ifModifiedSince)
  const host = req.headers.host
  // RFC 9112 §3.2: an HTTP/1.1 request carries a Host; an HTTP/1.0 client may have sent none.
  if (host === undefined) headers.push('Host', upstreamHost)
  const forwardedFor = [req.headers['x-forwarded-for'], req.socket.remoteAddress]
    .filter(Boolean)
    .join(', ')
  headers.push(
    'Via',
    [req.headers.via, via].filter(Boolean).join(', '),
    'X-Forwarded-For',
    forwardedFor,
  )
  if (!trustForwarded || req.headers['x-forwarded-proto'] === undefined)
    headers.push(
      'X-Forwarded-Proto',
      (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
    )
  if ((!trustForwarded || req.headers['x-forwarded-host'] === undefined) && host !== undefined)
    headers.push('X-Forwarded-Host', host)
  if (framing.body === 'length') headers.push('Content-Length', framing.length)
  else if (framing.body === 'chunked') headers.push('Transfer-Encoding', 'chunked')
  return headers
}

/** The request headers this hop appends to (the client's value, then its own), or sets itself. */
const APPENDED = new Set(['via', 'x-forwarded-for', 'if-none-match', 'if-modified-since'])

/** The origin's headers as it sent them, less hop-by-hop ones, with this hop's Via appended. */
function responseHeaders(raw: readonly string[], via: string): string[] {
  const headers = without(raw, new Set([...HOP_BY_HOP, ...connectionOptions(raw), 'via']))
  const vias = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'via')
  headers.push('Via', [...vias, via].join(', '))
  return headers
}

/** A raw `[name, value, ...]` array without the headers named in `drop` (lower-case). */
function without(raw: readonly string[], drop: ReadonlySet<string>): string[] {
  const kept: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2)
    if (!drop.has(raw[i]!.toLowerCase())) kept.push(raw[i]!, raw[i + 1]!)
  return kept
}
