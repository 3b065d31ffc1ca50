/** Cache keys: which requests share a stored response. */
import type { IncomingMessage } from 'node:http'

/** The request fields a key function may read; `invalidate()` builds one from a URL. */
export type KeyRequest = Pick<IncomingMessage, 'method' | 'url' | 'headers'>

/** Which requests share a stored response: a key, or `undefined` for a request not to cache. */
export type KeyFunction = (req: KeyRequest) => string | undefined

/** RFC 3986 §3.2.2-3: a host (a reg-name or a bracketed IP literal) and an optional port. */
const VALID_HOST = /^(?:\[[0-9a-f:.]+\]|[a-z0-9\-._~%!$&'()*+,;=]*)(?::\d*)?$/i

/**
 * The default key: the normalised Host followed by the path and query, the same for GET and HEAD
 * (a HEAD is answered from the GET entry). `undefined` (the request bypasses the cache) when the
 * Host is not a valid `host[:port]` (`example.com/x` would otherwise share the key of another
 * path), or when an absolute-form target names another authority than the Host (RFC 9112
 * §3.2.2 keys it by the target, while the handler may read the Host: a poisoning).
 */
export function defaultKey(req: KeyRequest): string | undefined {
  const target = req.url ?? '/'
  const host = req.headers.host ?? ''
  if (!VALID_HOST.test(host)) return undefined
  if (target.startsWith('/') || target === '*') return normalizeHost(host) + target
  try {
    const url = new URL(target)
    return normalizeHost(url.host) === normalizeHost(host) ? normalizeHost(url.host) + url.pathname + url.search : undefined
  } catch {
    return normalizeHost(host) + target
  }
}

/**
 * Host names are case-insensitive and a trailing dot or a default port names the same origin
 * (RFC 9110 §4.2.3), so `Example.com.:80` and `example.com` share entries.
 */
export function normalizeHost(host: string | undefined): string {
  if (!host) return ''
  let h = host.trim().toLowerCase()
  if (h.endsWith(':80')) h = h.slice(0, -3)
  else if (h.endsWith(':443')) h = h.slice(0, -4)
  return h.endsWith('.') ? h.slice(0, -1) : h
}

/**
 * A tag is any string that is well-formed Unicode: a lone surrogate cannot be spelled the same way
 * in every store (Redis keys are UTF-8, where every one of them would become U+FFFD).
 */
export function isTag(tag: unknown): tag is string {
  return typeof tag === 'string' && !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(tag)
}

/** Keys of different namespaces never collide: a namespace may not contain the separator. */
export const NAMESPACE_SEPARATOR = '\u0000'

/** The store key prefix of a namespace: empty for the default namespace (the whole store). */
export function namespacePrefix(namespace: string): string {
  return namespace === '' ? '' : namespace + NAMESPACE_SEPARATOR
}

/**
 * The request `invalidate(url)` hands to the key function: an absolute URL gives its own Host; a
 * path needs `host` when the key is the default one (every default key starts with a Host).
 */
export function keyRequestFor(url: string, method: string, host: string | undefined, usesDefaultKey: boolean): KeyRequest {
  if (typeof url !== 'string') throw new TypeError(`expected url to be a string, got ${typeof url}`)
  const absolute = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? new URL(url) : undefined
  const authority = host ?? absolute?.host
  if (authority === undefined && usesDefaultKey) throw new TypeError(`expected an absolute url or options.host, got ${JSON.stringify(url)}`)
  return { method, url: absolute ? absolute.pathname + absolute.search : url, headers: authority === undefined ? {} : { host: authority } }
}
