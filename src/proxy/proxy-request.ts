/**
 * What the proxy makes of a client's request before the cache or the origin sees it. The cache
 * keys on `req.url` and the Host and selects variants on `req.headers`; the origin acts on what
 * forward() sends. A request either side could read differently is a poisoning, so the request
 * is rewritten in place, once, into the one forward() sends: the target in origin-form, one
 * canonical Host, no header the origin will not get, and a body framed by the proxy itself. A
 * request that cannot be read only one way is refused.
 */
import type { IncomingMessage } from 'node:http'

/** How the body goes on: not at all, with this Content-Length, or chunked by the proxy. */
export type Framing = { body: 'none' } | { body: 'length'; length: string } | { body: 'chunked' }

/** A request the proxy does not forward: the status and a reason for the client. */
export interface Refusal {
  status: 400 | 501
  reason: string
}

/** What {@link sanitizeRequest} may keep. */
export interface SanitizeOptions {
  /** Keep the {@link OVERRIDE_HEADERS} (a trusted front proxy sets them). */
  trustForwardedHeaders: boolean
  /** The origin has a path prefix (`--upstream http://origin/api`) no request may climb out of. */
  confined: boolean
}

/** RFC 9110 §7.6.1: headers that belong to one connection, never forwarded. */
export const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
]

/**
 * Headers that make an origin (or its framework) render for another host, scheme, port, path or
 * client than the request names, none of which is in the key. A client may not set them: they
 * are dropped unless `trustForwardedHeaders` (then a front proxy sets them, and they pass).
 */
export const OVERRIDE_HEADERS = [
  // RFC 7239 (host=, proto=, for=): Rack 3, Spring, Go's gorilla/handlers.
  'forwarded',
  // The de facto family: Express (trust proxy), Rack, Django, Symfony, Laravel, Spring, Werkzeug.
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-scheme',
  'x-forwarded-ssl',
  'x-forwarded-server',
  'x-forwarded-uri',
  'front-end-https',
  'x-url-scheme',
  'x-host',
  'x-original-host',
  // Path overrides: IIS, Zend/Laminas, older Symfony; nginx's auth_request convention.
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  // The client's address as a front proxy saw it (geolocation, allow-lists, rate limits).
  'x-real-ip',
  'true-client-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
]

/** Headers that turn a GET into another method at the origin (never trusted on GET or HEAD). */
export const METHOD_OVERRIDES = ['x-http-method-override', 'x-http-method', 'x-method-override']

/**
 * RFC 9112 §6: the body's framing is re-made by the proxy from what Node's parser read, never
 * copied (a client's framing header named in Connection, or on a method Node's client would not
 * frame, let a body reach the origin unframed: a second request on a shared connection). Expect
 * was answered here.
 */
const OURS = ['content-length', 'transfer-encoding', 'expect']

/** RFC 3986 §3.2.2-3: a host (a bracketed IPv6 literal or a reg-name) and an optional port. */
const HOST = /^(?:\[([0-9a-f:.]+)\]|([a-z0-9\-._~%!$&'()*+,;=]*))(?::(\d*))?$/i

/** RFC 9112 §3.2.2: `scheme://authority` then the path and query as sent. */
const ABSOLUTE_FORM = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/is

/** What goes on, for a request that does: its header lines (the proxy adds its own) and framing. */
export interface Prepared {
  /** The client's header lines the origin gets, as `[name, value, ...]`; Host canonical. */
  lines: string[]
  framing: Framing
}

/** What the request's socket says: its server's header-line limit, and whether it is TLS. */
type ProxiedSocket = { server?: { maxHeadersCount?: number | null }; encrypted?: boolean }

/** The headers dropped from every request, by trust (of override headers) and by method. */
const DROPPED = [false, true].map((trusted) =>
  [false, true].map(
    (getOrHead) =>
      new Set([
        ...HOP_BY_HOP,
        ...OURS,
        ...(trusted ? [] : OVERRIDE_HEADERS),
        // A GET is answered from its key: the origin must not perform another method for it.
        ...(getOrHead ? METHOD_OVERRIDES : []),
      ]),
  ),
)

/**
 * Rewrites `req.url` (origin-form) and `req.headers` (one canonical Host, none of the headers the
 * origin will not get) into the request the origin will get, and returns the header lines and
 * framing it goes on with; or the reason it is refused, with nothing changed. `req.rawHeaders`
 * keeps what the client sent. A request it already rewrote comes out the same.
 */
export function sanitizeRequest(
  req: IncomingMessage,
  { trustForwardedHeaders, confined }: SanitizeOptions,
): Prepared | Refusal {
  const socket = req.socket as ProxiedSocket | null
  // Node's parser keeps this many header lines in req.headers; the origin gets no more.
  const parsed = socket?.server?.maxHeadersCount || 2000
  const raw = req.rawHeaders.length > parsed ? req.rawHeaders.slice(0, parsed) : req.rawHeaders
  const checked = check(req, raw, confined, socket?.encrypted === true)
  if ('status' in checked) return checked
  const { path, host, hostLines } = checked
  const getOrHead = req.method === 'GET' || req.method === 'HEAD'
  const dropped = DROPPED[Number(trustForwardedHeaders)]![Number(getOrHead)]!
  const named = connectionOptions(raw)
  // Host names the resource, never the connection (RFC 9110 §7.2): Connection cannot name it.
  const drops = (name: string) => dropped.has(name) || (name !== 'host' && named.includes(name))

  const lines: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (!drops(name)) lines.push(raw[i]!, name === 'host' ? host! : raw[i + 1]!)
  }
  // RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host.
  if (host !== undefined && hostLines === 0) lines.push('Host', host)
  const headers = req.headers
  const framing = framingOf(req.method, headers['transfer-encoding'], headers['content-length'])
  // A new object rather than deletes: the cache reads it on every request.
  const kept: IncomingMessage['headers'] = {}
  for (const name in headers) if (!drops(name)) kept[name] = headers[name]
  if (host !== undefined) kept.host = host
  req.headers = kept
  req.url = path
  return { lines, framing }
}

/** The request's target, Host and framing, checked: what the origin reads must be unambiguous. */
function check(
  req: IncomingMessage,
  raw: readonly string[],
  confined: boolean,
  tls: boolean,
): { path: string; host: string | undefined; hostLines: number } | Refusal {
  const target = originForm(req.url!, req.method)
  if ('status' in target) return target
  // RFC 9112 §3.2: more than one Host line, or an invalid one, is a 400.
  const hostLines = countOf(raw, 'host')
  if (hostLines > 1) return refuse(400, 'two Host header lines (RFC 9112 §3.2): send one')
  const sent = target.authority ?? req.headers.host
  const host = sent === undefined ? undefined : canonicalHost(sent, tls)
  if (host === null) {
    return refuse(400, `an invalid Host ${JSON.stringify(sent)} (RFC 9112 §3.2): send host[:port]`)
  }
  const coding = req.headers['transfer-encoding']
  if (coding !== undefined && !/^\s*chunked\s*$/i.test(coding)) {
    return refuse(
      501,
      `Transfer-Encoding ${JSON.stringify(coding)} is not implemented (RFC 9112 §6.1): ` +
        'send the body chunked or with a Content-Length',
    )
  }
  if (confined && climbs(target.path)) {
    return refuse(
      400,
      'a ".." segment in the path (however encoded) could leave the upstream path: ' +
        'send the path resolved',
    )
  }
  return { path: target.path, host, hostLines }
}

function refuse(status: Refusal['status'], reason: string): Refusal {
  return { status, reason }
}

/** RFC 9112 §3.2: the path and query of a request-target, and the authority of an absolute one. */
function originForm(
  target: string,
  method: string | undefined,
): { path: string; authority?: string } | Refusal {
  if (target.startsWith('/')) return { path: target }
  // RFC 9112 §3.2.4: the asterisk-form is for OPTIONS only.
  if (target === '*' && method === 'OPTIONS') return { path: target }
  const absolute = ABSOLUTE_FORM.exec(target)
  const scheme = absolute?.[1]!.toLowerCase()
  if (absolute === null || (scheme !== 'http' && scheme !== 'https')) {
    return refuse(
      400,
      `a request-target ${JSON.stringify(target)} that is not a path, an http(s) URL, ` +
        'or * for OPTIONS (RFC 9112 §3.2)',
    )
  }
  const authority = absolute[2]!
  const rest = absolute[3]!
  // RFC 9110 §4.2.4: userinfo in an http(s) URI is an error (and a phishing device).
  if (authority.includes('@')) {
    return refuse(400, 'userinfo in the request-target (RFC 9110 §4.2.4): send the URL without it')
  }
  return { path: rest.startsWith('/') ? rest : '/' + rest, authority }
}

/**
 * The Host as the key and the origin both get it: lower-cased, without a trailing dot, and
 * without the default port of this connection's scheme (RFC 9110 §4.2.3); `null` when it is not
 * a valid `host[:port]` (an empty host, a port past 65535, a path, userinfo, a space, ...).
 */
export function canonicalHost(value: string, tls: boolean): string | null {
  const match = HOST.exec(value)
  if (match === null) return null
  const [, ipv6, name, port] = match
  const hostname =
    ipv6 === undefined ? name!.toLowerCase().replace(/\.$/, '') : `[${ipv6.toLowerCase()}]`
  // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid.
  if (hostname === '' || Number(port) > 65535) return null
  const defaultPort = port === undefined || port === '' || Number(port) === (tls ? 443 : 80)
  return defaultPort ? hostname : `${hostname}:${Number(port)}`
}

/**
 * Whether the path of a target (the query aside) climbs out of where it starts, however the
 * origin reads it: a segment of dots after percent-decoding (repeatedly: some origins decode
 * twice), with `\` as a separator (IIS), a `;parameter` dropped (Tomcat's `..;`), spaces trimmed
 * (Windows), and a `#` or an encoded `?` ending it.
 */
export function climbs(target: string): boolean {
  let text = target.split('?')[0]!
  // Most paths: nothing encoded, and no two dots in a row.
  if (!text.includes('%') && !text.includes('..')) return false
  for (let once = percentDecode(text); once !== text; once = percentDecode(text)) text = once
  return text.split(/[/\\?#]/).some((segment) => /^\.{2,}$/.test(segment.split(';')[0]!.trim()))
}

function percentDecode(text: string): string {
  return text.replace(/%([0-9a-f]{2})/gi, (_, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  )
}

/** RFC 9110 §9.3.1, §9.3.2: a GET or HEAD body is never forwarded; any other is re-framed. */
function framingOf(
  method: string | undefined,
  coding: string | undefined,
  length: string | undefined,
): Framing {
  if (method === 'GET' || method === 'HEAD') return { body: 'none' }
  if (coding !== undefined) return { body: 'chunked' }
  // Node's parser accepted only digits; leading zeros go, and no precision is lost to a Number.
  if (length === undefined) return { body: 'none' }
  return { body: 'length', length: length.replace(/^0+(?=\d)/, '') }
}

/** The header names listed in Connection lines (RFC 9110 §7.6.1), lower-cased. */
export function connectionOptions(raw: readonly string[]): string[] {
  const names: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue
    for (const name of raw[i + 1]!.split(',')) names.push(name.trim().toLowerCase())
  }
  return names
}

function countOf(raw: readonly string[], name: string): number {
  let count = 0
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) count++
  return count
}
