/**
 * Invalidation by URL: which store keys a URL names, derived exactly as the store derived them for
 * the requests it answered (the request-target as sent, never re-encoded or resolved through a
 * WHATWG URL), and the accelerator's own tags, which let `invalidate()` drop every variant of a
 * resource, and every host's entries of a path, without scanning the store.
 *
 * - A resource (an absolute URL, or a path with a host) is a base key: the entry there (a response,
 *   or its vary record) goes with `delete`, its variants with their resource tag.
 * - A path without a host is the key the key function gives a request for it with no header at
 *   all (the default key: the path and query as sent). Every stored entry carries the tag of its
 *   own request's path key, so one tag drops the path under every Host it was stored under.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { isEncrypted, namespacePrefix, type KeyFunction, type KeyRequest } from './key.js'
import { isReservedTag, isTag, tagList } from '../http/tags.js'
import { isWellFormed, normalizeHost, splitAbsolute } from '../http/target.js'
import { describe } from '../lib/describe.js'
import { variantsTag } from './variants.js'

/** What URL invalidation needs of the accelerator's options. */
export interface KeyOptions {
  key: KeyFunction
  namespace: string
}

/** A request as frameworks hand it over: Express and Connect add `originalUrl` under a mount path. */
export type FrameworkRequest = KeyRequest & { originalUrl?: unknown }

/**
 * Set on a request to the request-target the cache first saw (the whole URL, before any handler
 * or router rewrote `req.url`): what its entry's path tag is made of. A property, not a WeakMap:
 * an ephemeron per request cost the garbage collector about 2 µs a request.
 */
const TARGET = Symbol('node-accelerator.target')

/**
 * The request as the key function sees it: the whole URL, `req.originalUrl` when a framework set
 * it (under a mount path Express's `req.url` is relative to the mount point, so `/admin/report`
 * would otherwise share the key of `/report`). Remembers that URL for {@link ownTags}. A view
 * for reading; {@link keyOf} runs the key function on the request itself.
 */
export function keyRequest<R extends FrameworkRequest>(req: R): R {
  const whole = wholeUrl(req)
  if (whole === req.url) return req
  // A view, not a copy: a key function may read anything else the framework put on the request.
  return Object.create(req, {
    url: { value: whole, enumerable: true, writable: true, configurable: true },
  }) as R
}

/**
 * `key` of the request with its whole URL in `req.url` (see {@link keyRequest}), on the request
 * itself: key helpers (keys.ts) rewrite the query of the request the handler gets the way they
 * rewrote its key, and that query is carried back to the framework's mount-relative `req.url`
 * (whose path a mount, or a router before the cache, made differ from the whole URL's).
 */
export function liveKey<R extends FrameworkRequest>(key: KeyFunction, req: R): string | undefined {
  // http.Server and the frameworks on it always set req.url.
  const relative = req.url as string
  const whole = wholeUrl(req) as string
  if (whole === relative) return key(req)
  req.url = whole
  try {
    return key(req)
  } finally {
    const query = (url: string) => (url.includes('?') ? url.slice(url.indexOf('?')) : '')
    req.url = relative.slice(0, relative.length - query(relative).length) + query(req.url as string)
  }
}

/** The whole request-target, remembered on the request as the one the cache first saw. */
function wholeUrl(req: FrameworkRequest): string | undefined {
  const whole = typeof req.originalUrl === 'string' ? req.originalUrl : req.url
  ;(req as { [TARGET]?: string | undefined })[TARGET] = whole
  return whole
}

/** The reserved tag every entry stored for a path carries (`pathKey` from {@link pathKeyOf}). */
export function pathTag(pathKey: string): string {
  return `\u0000path\u0000${pathKey}`
}

/**
 * The path key of a request-target: the namespace prefix and what the key function returns for a
 * GET of its path and query with no header (no Host); `undefined` when it returns no string, or
 * throws. An absolute-form target counts by its path as written.
 */
export function pathKeyOf({ key, namespace }: KeyOptions, target: string): string | undefined {
  try {
    const pathKey = key({ method: 'GET', url: splitAbsolute(target)?.path ?? target, headers: {} })
    return typeof pathKey === 'string' ? namespacePrefix(namespace) + pathKey : undefined
  } catch {
    return undefined
  }
}

/**
 * The tags an entry is stored with: the response's, plus the accelerator's own: a variant carries
 * its resource's tag (`invalidate(url)` reaches every variant), and every entry its path's
 * (`invalidate(path)` reaches it under any host). `req` is the request it was generated for.
 */
export function ownTags(
  opts: KeyOptions,
  req: object,
  base: string,
  key: string,
  tags: readonly string[],
): readonly string[] {
  const own = key === base ? [] : [variantsTag(base)]
  const target = (req as { [TARGET]?: string })[TARGET] ?? (req as FrameworkRequest).url
  const pathKey = target === undefined ? undefined : pathKeyOf(opts, target)
  if (pathKey !== undefined) own.push(pathTag(pathKey))
  const missing = own.filter((tag) => !tags.includes(tag))
  return missing.length === 0 ? tags : [...tags, ...missing]
}

/** A stored entry's tags without the accelerator's own: what its handler gave it. */
export function userTags(tags: readonly string[]): readonly string[] {
  return tags.some(isReservedTag) ? tags.filter((tag) => !isReservedTag(tag)) : tags
}

/** What `invalidate(url)` drops: one resource at its base key, or a path under every host. */
export type UrlPurge = { base: string } | { tag: string }

/** Options of `invalidate(url, options)`. */
export interface InvalidateUrlOptions {
  /** The method the key function is told. @default 'GET' */
  method?: string
  /** The Host a path is dropped under; without it, under every host. An absolute URL's own wins. */
  host?: string
}

/**
 * What `invalidate(url, options)` drops. An absolute `http:`/`https:` URL names one resource, its
 * own host winning over `options.host`; a path with `host` one resource on that host; a path alone
 * that path (and query) under every host. Throws a TypeError naming the input when it is not a
 * well-formed string, names another scheme, or is not something the key function keys.
 */
export function urlPurge(
  opts: KeyOptions,
  url: unknown,
  { method = 'GET', host }: InvalidateUrlOptions = {},
): UrlPurge {
  if (typeof url !== 'string' || !isWellFormed(url))
    throw new TypeError(`expected url to be a well-formed string, got ${describe(url)}`)
  if (host !== undefined && (typeof host !== 'string' || !isWellFormed(host)))
    throw new TypeError(`expected options.host to be a well-formed string, got ${describe(host)}`)
  const absolute = splitAbsolute(url)
  if (absolute !== undefined && absolute.scheme !== 'http' && absolute.scheme !== 'https') {
    throw new TypeError(`expected an http: or https: URL or a path, got ${describe(url)}`)
  }
  const prefix = namespacePrefix(opts.namespace)
  // The same request pathKeyOf hands the key function for every stored entry's path tag.
  if (absolute === undefined && host === undefined)
    return { tag: pathTag(prefix + keyOf(opts.key, { method, url, headers: {} }, url)) }
  const req: KeyRequest = absolute
    ? {
        method,
        url: absolute.path,
        headers: { host: absolute.authority },
        socket: { encrypted: absolute.scheme === 'https' },
      }
    : { method, url, headers: { host } }
  return { base: prefix + keyOf(opts.key, req, url) }
}

/** The key of `req`, or a TypeError saying why `url` has none. */
function keyOf(key: KeyFunction, req: KeyRequest, url: string): string {
  let result: unknown
  try {
    result = key(req)
  } catch (err) {
    throw new TypeError(
      `the key function threw for ${describe(url)}: ${(err as Error)?.message ?? String(err)}`,
    )
  }
  if (typeof result !== 'string') {
    const host = req.headers.host === undefined ? '' : ` on Host ${describe(req.headers.host)}`
    throw new TypeError(
      `expected a URL the key function keys, got ${describe(url)}${host} (its key: ${describe(result)})`,
    )
  }
  return result
}

/**
 * RFC 9111 §4.4: the base keys a non-error response to an unsafe method invalidates: its target,
 * and the same-origin URLs of its `Location` and `Content-Location`. Each as written (the way the
 * store keyed the requests for it: `/search?q=o'reilly`, `/items/{1}`, `/a/./b`), and as a browser
 * resolving it would request it (`/search?q=o%27reilly`, `/a/b`). Never throws: a reference that
 * does not parse, or names another origin, drops nothing.
 */
export function changedKeys(
  opts: KeyOptions,
  req: KeyRequest,
  headers: Readonly<Record<string, unknown>>,
): string[] {
  const target = req.url ?? '/'
  const path = splitAbsolute(target)?.path ?? target
  const paths = new Set<string>([target, ...browserForm(path)])
  for (const name of ['location', 'content-location']) {
    const value = headers[name]
    const resolved = typeof value === 'string' ? sameOriginPath(value, path, req) : undefined
    if (resolved !== undefined)
      for (const form of [resolved, ...browserForm(resolved)]) paths.add(form)
  }
  const keys = new Set<string>()
  for (const url of paths) {
    try {
      const key = opts.key({ method: 'GET', url, headers: req.headers, socket: req.socket })
      if (typeof key === 'string') keys.add(namespacePrefix(opts.namespace) + key)
    } catch {
      // A key function that throws for this URL keyed nothing under it: nothing to drop.
    }
  }
  return [...keys]
}

/**
 * The path and query a URI reference in a response names, resolved against the request's path
 * (RFC 3986 §5.2) without removing dot-segments or re-encoding anything; `undefined` when it names
 * another origin (scheme, host or port) than the request's.
 */
export function sameOriginPath(
  reference: string,
  base: string,
  req: { headers: IncomingHttpHeaders; socket?: KeyRequest['socket'] },
): string | undefined {
  const ref = reference.split('#')[0]!.trim()
  const secure = isEncrypted(req)
  const absolute =
    splitAbsolute(ref) ??
    (ref.startsWith('//') ? splitAbsolute(`${secure ? 'https' : 'http'}:${ref}`) : undefined)
  if (absolute !== undefined) {
    const sameOrigin =
      absolute.scheme === (secure ? 'https' : 'http') &&
      normalizeHost(absolute.authority, secure) === normalizeHost(req.headers.host, secure)
    return sameOrigin ? absolute.path : undefined
  }
  // A reference with a scheme but no authority (`mailto:`, `data:`): not a page of this origin.
  if (/^[a-z][a-z0-9+.-]*:/i.test(ref)) return undefined
  if (ref.startsWith('/')) return ref
  // RFC 3986 §5.2.3: merged with the base path up to its last slash (`/` when it has none).
  const basePath = base.startsWith('/') ? base.split('?')[0]! : '/'
  if (ref === '') return base.startsWith('/') ? base : basePath
  if (ref.startsWith('?')) return basePath + ref
  return basePath.slice(0, basePath.lastIndexOf('/') + 1) + ref
}

/**
 * A path as a browser would request it (WHATWG URL: dot-segments resolved, characters such as `'`,
 * `{`, `}` percent-encoded), when that differs from the path as written; nothing for a target that
 * is not a path (`*`).
 */
function browserForm(path: string): string[] {
  if (!path.startsWith('/')) return []
  // Never throws: the base is fixed and every path parses after it.
  const url = new URL(`http://x${path}`)
  const form = url.pathname + url.search
  return form === path ? [] : [form]
}

/** The tags given to `invalidateTags` as an array, or undefined when they are not valid tags. */
export function validTags(given: unknown): readonly string[] | undefined {
  const tags = tagList(given)
  return tags?.every(isTag) ? (tags as string[]) : undefined
}

/** What is wrong with tags {@link validTags} refused. */
export function tagsError(given: unknown): TypeError {
  const reserved = '(none of the reserved form "\\u0000name\\u0000...")'
  const message = `expected tags to be an iterable of well-formed strings or one string ${reserved}`
  return new TypeError(`${message}, got ${describe(given)}`)
}
