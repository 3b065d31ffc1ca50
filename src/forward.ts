/**
 * forward(upstream): a handler that proxies each request to an HTTP origin. Bodies stream both
 * ways with backpressure over a keep-alive agent; headers keep their order and repetitions
 * (raw header arrays), minus the hop-by-hop ones, plus `Via` and `X-Forwarded-*`; 1xx interim
 * responses are relayed. An origin that cannot be reached, or fails before its response began,
 * is answered 502 (which the accelerator replaces with a stale entry within stale-if-error).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import { pipeline } from 'node:stream'

/** Options of {@link forward}. */
export interface ForwardOptions {
  /** The agent for upstream connections. @default a keep-alive agent, closed by `close()` */
  agent?: http.Agent
  /** This hop's `Via` entry (RFC 9110 §7.6.3). @default '1.1 node-accelerator' */
  via?: string
  /**
   * Pass on the client's own `X-Forwarded-Host` and `X-Forwarded-Proto` (when a trusted proxy
   * stands in front). Otherwise they are replaced: they are not part of any cache key, so a
   * client could make the origin render for another host under this host's key. @default false
   */
  trustForwardedHeaders?: boolean
}

/**
 * The forwarding handler, with `close()` to release its upstream connections. Its promise never
 * rejects (it may serve as a plain listener): an origin that fails after its response began
 * leaves the response destroyed, which is how a cut shows, to a client and to the cache.
 */
export interface Forwarder {
  (req: IncomingMessage, res: ServerResponse): Promise<void>
  close(): void
}

/** RFC 9110 §7.6.1: headers that belong to one connection, never forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization'])

/** A handler that sends every request on to `upstream` (an http: or https: URL). */
export function forward(upstream: string | URL, { agent, via = '1.1 node-accelerator', trustForwardedHeaders = false }: ForwardOptions = {}): Forwarder {
  let target: URL
  try {
    target = new URL(upstream)
  } catch {
    throw new TypeError(`expected upstream to be an http(s) URL, got ${JSON.stringify(String(upstream))}`)
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new TypeError(`expected upstream to be an http(s) URL, got ${JSON.stringify(target.href)}`)
  const client = target.protocol === 'https:' ? https : http
  const pool = agent ?? new client.Agent({ keepAlive: true })
  const base = target.pathname.replace(/\/$/, '')

  const handler = (req: IncomingMessage, res: ServerResponse) =>
    new Promise<void>((resolve) => {
      const upstreamReq = client.request({
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: base + pathOf(req.url!),
        headers: requestHeaders(req, via, target.host, trustForwardedHeaders),
        agent: pool,
        setHost: false,
      })
      // RFC 9110 §15.2: interim responses are relayed as they come.
      upstreamReq.on('information', ({ statusCode, headers }) => {
        if (statusCode === 103 && headers.link !== undefined) res.writeEarlyHints({ ...headers, link: headers.link })
        else if (statusCode === 102) res.writeProcessing()
      })
      upstreamReq.on('response', (upstreamRes) => {
        // (A response from http.request always has its statusCode.)
        res.writeHead(upstreamRes.statusCode!, upstreamRes.statusMessage, responseHeaders(upstreamRes.rawHeaders, via))
        // An origin that resets mid-body cuts the client too (pipeline destroys the response): a
        // partial body is never complete.
        pipeline(upstreamRes, res, () => resolve())
      })
      upstreamReq.on('error', (err) => {
        if (res.headersSent) return resolve(void res.destroy(err))
        res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'content-length': '12' })
        res.end('Bad Gateway\n')
        resolve()
      })
      // A client that goes away frees the upstream connection too.
      res.once('close', () => res.writableFinished || upstreamReq.destroy())
      pipeline(req, upstreamReq, () => {})
    })
  return Object.assign(handler, { close: () => pool.destroy() })
}

/** The path and query of a request target, in origin-form even when it came absolute. */
function pathOf(url: string): string {
  if (url.startsWith('/')) return url
  try {
    const absolute = new URL(url)
    return absolute.pathname + absolute.search
  } catch {
    return '/' + url
  }
}

/**
 * The client's headers as sent, less hop-by-hop ones (and Expect: Node answered it), plus ours.
 * Only the header lines Node parsed into `req.headers` go on (its maxHeadersCount): the cache's
 * variant keys see those, so the origin must not see more.
 */
function requestHeaders(req: IncomingMessage, via: string, upstreamHost: string, trustForwarded: boolean): string[] {
  const parsed = (req.socket as { server?: { maxHeadersCount?: number | null } }).server?.maxHeadersCount || 2000
  const ours = ['expect', 'x-forwarded-for', 'via', ...(trustForwarded ? [] : ['x-forwarded-host', 'x-forwarded-proto'])]
  // RFC 9112 §3.2.2: an absolute-form target names the authority; its Host goes with it.
  const absolute = req.url!.startsWith('/') ? '' : authorityOf(req.url!)
  if (absolute) ours.push('host')
  const headers = withoutHopByHop(req.rawHeaders.slice(0, parsed), ours)
  // RFC 9112 §3.2: an HTTP/1.1 request carries a Host; an HTTP/1.0 client may have sent none.
  const host = absolute || req.headers.host
  if (absolute || req.headers.host === undefined) headers.push('Host', host ?? upstreamHost)
  const forwardedFor = [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter(Boolean).join(', ')
  headers.push('Via', [req.headers.via, via].filter(Boolean).join(', '), 'X-Forwarded-For', forwardedFor)
  if (!trustForwarded || req.headers['x-forwarded-proto'] === undefined) headers.push('X-Forwarded-Proto', (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http')
  if ((!trustForwarded || req.headers['x-forwarded-host'] === undefined) && host !== undefined) headers.push('X-Forwarded-Host', host)
  return headers
}

/** The authority of an absolute-form target; empty when it names none (`*`). */
function authorityOf(target: string): string {
  try {
    return new URL(target).host
  } catch {
    return ''
  }
}

/** The origin's headers as it sent them, less hop-by-hop ones, with this hop's Via appended. */
function responseHeaders(raw: readonly string[], via: string): string[] {
  const headers = withoutHopByHop(raw, ['via'])
  const vias = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'via')
  headers.push('Via', [...vias, via].join(', '))
  return headers
}

/** A raw `[name, value, ...]` array without hop-by-hop headers, those named in Connection, and `also`. */
function withoutHopByHop(raw: readonly string[], also: readonly string[]): string[] {
  const drop = new Set([...HOP_BY_HOP, ...also])
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') for (const name of raw[i + 1]!.split(',')) drop.add(name.trim().toLowerCase())
  }
  const kept: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) if (!drop.has(raw[i]!.toLowerCase())) kept.push(raw[i]!, raw[i + 1]!)
  return kept
}
