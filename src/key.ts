/** Cache keys: which requests share a stored response. */
import type { IncomingMessage } from 'node:http'

/** The request fields a key function may read; `invalidate()` builds one from a URL. */
export type KeyRequest = Pick<IncomingMessage, 'method' | 'url' | 'headers'>

/**
 * The default key: the normalised Host followed by the path and query, the same for GET and HEAD
 * (a HEAD is answered from the GET entry). Absolute-form targets (`GET http://host/p`) use their
 * own authority, as RFC 9112 §3.2.2 tells servers to.
 */
export function defaultKey(req: KeyRequest): string {
  const target = req.url ?? '/'
  if (target.startsWith('/') || target === '*') return normalizeHost(req.headers.host) + target
  try {
    const url = new URL(target)
    return normalizeHost(url.host) + url.pathname + url.search
  } catch {
    return normalizeHost(req.headers.host) + target
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
