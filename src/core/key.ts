/** Cache keys: which requests share a stored response. */
import type { IncomingHttpHeaders } from 'node:http'
import { normalizeHost, splitAbsolute } from '../http/target.js'

/**
 * The request fields a key function may read; `invalidate()` builds one from a URL. An
 * `IncomingMessage` is one.
 */
export interface KeyRequest {
  method?: string | undefined
  /** The request-target exactly as sent (origin-form `/p?q`, or absolute-form `http://h/p`). */
  url?: string | undefined
  headers: IncomingHttpHeaders
  /** The connection: `encrypted` is true over TLS (Node's TLSSocket). Absent means plain HTTP. */
  socket?: { encrypted?: boolean; remoteAddress?: string | undefined } | null | undefined
}

/** Which requests share a stored response: a key, or `undefined` for a request not to cache. */
export type KeyFunction = (req: KeyRequest) => string | undefined

/** RFC 3986 §3.2.2-3: a host (a reg-name or a bracketed IP literal) and an optional port. */
const VALID_HOST = /^(?:\[[0-9a-f:.]+\]|[a-z0-9\-._~%!$&'()*+,;=]*)(?::\d*)?$/i

/** The last Host header {@link defaultKey} saw, and its normal form (undefined: not valid). */
let lastHost: { given: string; secure: boolean; normal: string | undefined } = {
  given: '',
  secure: false,
  normal: '',
}

/** Whether the request came over TLS (the connection's scheme is https). */
export function isEncrypted(req: Pick<KeyRequest, 'socket'>): boolean {
  return req.socket?.encrypted === true
}

/**
 * The default key: the normalised Host followed by the request-target as sent (path and query),
 * the same for GET and HEAD (a HEAD is answered from the GET entry). `undefined` (the request
 * bypasses the cache) when the Host is not a valid `host[:port]` (`example.com/x` would otherwise
 * share the key of another path), or when an absolute-form target names another authority than
 * the Host, or another scheme than the connection's (RFC 9112 §3.2.2 keys it by the target, while
 * the handler may read the Host: a poisoning). An absolute-form target is keyed by its path as
 * written: `http://h/files/../profile` is not `/profile`.
 */
export function defaultKey(req: KeyRequest): string | undefined {
  const target = req.url ?? '/'
  const host = req.headers.host ?? ''
  const secure = isEncrypted(req)
  // Nearly every request of a process names the same Host: its check and normal form are kept
  // for the next request (a regular expression and four string operations less per request).
  if (host !== lastHost.given || secure !== lastHost.secure) {
    lastHost = {
      given: host,
      secure,
      normal: VALID_HOST.test(host) ? normalizeHost(host, secure) : undefined,
    }
  }
  if (lastHost.normal === undefined) return undefined
  if (target.startsWith('/')) return lastHost.normal + target
  const absolute = splitAbsolute(target)
  if (absolute === undefined) return lastHost.normal + target
  const authority = normalizeHost(absolute.authority, secure)
  const sameOrigin =
    absolute.scheme === (secure ? 'https' : 'http') &&
    VALID_HOST.test(absolute.authority) &&
    authority === lastHost.normal
  return sameOrigin ? authority + absolute.path : undefined
}

/** Keys of different namespaces never collide: a namespace may not contain the separator. */
export const NAMESPACE_SEPARATOR = '\u0000'

/** The store key prefix of a namespace: empty for the default namespace (the whole store). */
export function namespacePrefix(namespace: string): string {
  return namespace === '' ? '' : namespace + NAMESPACE_SEPARATOR
}
