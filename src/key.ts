/** Cache keys: which requests share a stored response. */
import type { IncomingHttpHeaders } from 'node:http'

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
let lastHost: { given: string; secure: boolean; normal: string | undefined } = { given: '', secure: false, normal: '' }

/** RFC 3986 §3: `scheme://authority` and the rest, as written (no resolution, no re-encoding). */
const ABSOLUTE = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/is

/** An absolute URL or absolute-form request-target, split as written. */
export interface AbsoluteTarget {
  /** Lower-cased: `http`, `https`, ... */
  scheme: string
  /** As written: `host[:port]`, possibly with userinfo or worse (check it before use). */
  authority: string
  /** The path and query as written, `/` when the path is empty (RFC 9112 §3.2.1). */
  path: string
}

/**
 * Splits `scheme://authority/path?query` without parsing it as a WHATWG URL, which would resolve
 * dot-segments and re-encode characters the cache keys as sent; `undefined` for anything else.
 */
export function splitAbsolute(target: string): AbsoluteTarget | undefined {
  const match = ABSOLUTE.exec(target)
  if (match === null) return undefined
  const rest = match[3]!
  return { scheme: match[1]!.toLowerCase(), authority: match[2]!, path: rest.startsWith('/') ? rest : '/' + rest }
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
    lastHost = { given: host, secure, normal: VALID_HOST.test(host) ? normalizeHost(host, secure) : undefined }
  }
  if (lastHost.normal === undefined) return undefined
  if (target.startsWith('/')) return lastHost.normal + target
  const absolute = splitAbsolute(target)
  if (absolute === undefined) return lastHost.normal + target
  const authority = normalizeHost(absolute.authority, secure)
  const sameOrigin = absolute.scheme === (secure ? 'https' : 'http') && VALID_HOST.test(absolute.authority) && authority === lastHost.normal
  return sameOrigin ? authority + absolute.path : undefined
}

/**
 * Host names are case-insensitive, and a trailing dot or the scheme's own default port name the
 * same origin (RFC 9110 §4.2.3), so `Example.com.:80` and `example.com` share entries over plain
 * HTTP. Only the scheme's own port is dropped: `:443` over plain HTTP (or `:80` over TLS) is
 * another origin, which the application may well answer differently.
 */
export function normalizeHost(host: string | undefined, secure = false): string {
  if (!host) return ''
  let h = host.trim().toLowerCase()
  const port = secure ? ':443' : ':80'
  if (h.endsWith(port)) h = h.slice(0, -port.length)
  return h.endsWith('.') ? h.slice(0, -1) : h
}

/** A lone surrogate: not well-formed Unicode. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Whether a string is well-formed Unicode (no lone surrogate): what every store spells alike. */
export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text)
}

/**
 * The accelerator's own tags (every variant of a resource; every entry of a path) start with NUL,
 * a lower-case name and NUL. Tags of that shape are refused from users, so that theirs can never
 * collide with these.
 */
const RESERVED_TAG = /^\u0000[a-z]+\u0000/

/** Whether a tag is one of the accelerator's own (see {@link isTag}). */
export function isReservedTag(tag: string): boolean {
  return RESERVED_TAG.test(tag)
}

/**
 * A tag is any string that is well-formed Unicode (a lone surrogate cannot be spelled the same way
 * in every store: Redis keys are UTF-8, where every one of them would become U+FFFD), except the
 * reserved `\0name\0...` shape of the accelerator's own tags.
 */
export function isTag(tag: unknown): tag is string {
  return typeof tag === 'string' && isWellFormed(tag) && !isReservedTag(tag)
}

/**
 * Tags as given, as an array: one string is one tag; any other iterable (an array, a Set, a
 * generator, iterated once) gives its items; anything else is `undefined`. The items are not
 * checked here (see {@link isTag}).
 */
export function tagList(tags: unknown): unknown[] | undefined {
  if (typeof tags === 'string') return [tags]
  if (typeof tags !== 'object' || tags === null || !(Symbol.iterator in tags)) return undefined
  return Array.isArray(tags) ? tags : [...(tags as Iterable<unknown>)]
}

/** Keys of different namespaces never collide: a namespace may not contain the separator. */
export const NAMESPACE_SEPARATOR = '\u0000'

/** The store key prefix of a namespace: empty for the default namespace (the whole store). */
export function namespacePrefix(namespace: string): string {
  return namespace === '' ? '' : namespace + NAMESPACE_SEPARATOR
}
