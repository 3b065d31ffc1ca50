/**
 * Cache-key helpers: key functions that normalise a request (its query, its Host) and hand it to
 * another key function, `defaultKey` unless given, so they compose.
 *
 * The rule they keep (docs/security.md): two requests that share a key must be one request to
 * the handler, or a request could get a response made from something its own request did not
 * say (a reflected `utm_source`, say). So each helper rewrites the request the handler then
 * gets, in place, the way it rewrote the key's: the handler sees the sorted query, never an
 * ignored parameter, the canonical Host. A request the cache bypasses (the key function said
 * `undefined`) is handed back untouched; plain objects (what `invalidate()` builds) are only read.
 */
import type { IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import { defaultKey, type KeyFunction, type KeyRequest } from '../core/key.js'
import { normalizeHost } from '../http/target.js'
import { describe } from '../lib/describe.js'
import { setRawHeaders } from '../core/raw-headers.js'

/** The tracking parameters analytics tools add to links, which never change a page. */
export const trackingParams: readonly string[] = Object.freeze(['utm_*', 'fbclid', 'gclid'])

/**
 * Query parameters in order of name, so `?b=2&a=1` and `?a=1&b=2` share a key. Parameters of the
 * same name keep their order (`?a=1&a=2` is not `?a=2&a=1`), and each is kept byte for byte.
 */
export function sortedQuery(base: KeyFunction = defaultKey): KeyFunction {
  checkBase('sortedQuery', base)
  return (req) => {
    const { path, pairs } = split(req.url)
    if (pairs.length < 2) return base(req)
    const named = pairs.map((pair) => ({ pair, name: paramName(pair) }))
    // Array.prototype.sort is stable (ES2019): same names keep their order.
    named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    return withUrl(req, `${path}?${named.map(({ pair }) => pair).join('&')}`, base)
  }
}

/**
 * Query parameters that never change the page, left out of the key and out of the request the
 * handler gets. `names` are exact parameter names (as decoded) or prefixes ending in `*`
 * (`'utm_*'`); {@link trackingParams} is the usual list.
 */
export function ignoreParams(names: Iterable<string>, base: KeyFunction = defaultKey): KeyFunction {
  const iterable = typeof names === 'object' && names !== null && Symbol.iterator in names
  const list: unknown[] | undefined = iterable ? [...names] : undefined
  // A name, or a prefix: a `*` only at the end.
  if (!list?.every((name) => typeof name === 'string' && /^[^*]+\*?$|^\*$/.test(name))) {
    throw new TypeError(
      'keys.ignoreParams: expected names to be a list of parameter names or ' +
        `prefixes ending in * ('utm_*'), got ${describe(names)}`,
    )
  }
  checkBase('ignoreParams', base)
  const patterns = list as string[]
  const exact = new Set(patterns.filter((name) => !name.endsWith('*')))
  const prefixes = patterns.filter((name) => name.endsWith('*')).map((name) => name.slice(0, -1))
  const ignored = (name: string) => exact.has(name) || prefixes.some((p) => name.startsWith(p))
  return (req) => {
    const { path, pairs } = split(req.url)
    const kept = pairs.filter((pair) => !ignored(paramName(pair)))
    if (kept.length === pairs.length) return base(req)
    return withUrl(req, kept.length > 0 ? `${path}?${kept.join('&')}` : path, base)
  }
}

/**
 * A host allow-list: each alias (`'www.example.com'`) shares its canonical host's entries
 * (`'example.com'`), and the handler sees the canonical Host. Canonical hosts are allowed
 * themselves; a request for any other Host bypasses the cache (the handler still answers it),
 * so that no Host an attacker picks ever gets an entry. Names are compared as `defaultKey` does:
 * case-insensitive, without a trailing dot or a default port.
 */
export function hostAliases(
  aliases: Readonly<Record<string, string>>,
  base: KeyFunction = defaultKey,
): KeyFunction {
  const object = typeof aliases === 'object' && aliases !== null && !Array.isArray(aliases)
  if (!object || Object.keys(aliases).length === 0) {
    throw new TypeError(
      'keys.hostAliases: expected an object mapping aliases to canonical hosts ' +
        `({ 'www.example.com': 'example.com' }), got ${describe(aliases)}`,
    )
  }
  checkBase('hostAliases', base)
  const canonicalOf = new Map<string, string>()
  for (const [alias, canonical] of Object.entries(aliases)) {
    const what = `canonical host of ${JSON.stringify(alias)}`
    canonicalOf.set(host(alias, 'alias'), host(canonical, what))
  }
  for (const [alias, canonical] of canonicalOf) {
    const next = canonicalOf.get(canonical)
    if (next !== undefined && next !== canonical) {
      const [a, c, n] = [alias, canonical, next].map((name) => JSON.stringify(name))
      throw new TypeError(
        `keys.hostAliases: ${a} maps to ${c}, itself an alias of ${n}; map ` +
          'every alias to its canonical host directly',
      )
    }
    canonicalOf.set(canonical, canonical)
  }
  return (req) => {
    const canonical = canonicalOf.get(normalizeHost(req.headers.host))
    if (canonical === undefined) return undefined
    return canonical === req.headers.host ? base(req) : withHost(req, canonical, base)
  }
}

function checkBase(helper: string, base: unknown): void {
  if (typeof base === 'function') return
  throw new TypeError(
    `keys.${helper}: expected base to be a key function ` +
      `(req) => string | undefined, got ${describe(base)}`,
  )
}

/** A host of the allow-list, normalised; a TypeError when it is not a `host[:port]`. */
function host(value: unknown, what: string): string {
  const normalized = typeof value === 'string' ? normalizeHost(value) : ''
  // defaultKey's own rule for a Host it keys.
  const keyed = defaultKey({ url: '/', headers: { host: normalized } } as KeyRequest) !== undefined
  if (normalized === '' || !keyed) {
    throw new TypeError(
      `keys.hostAliases: expected the ${what} to be a host name (with a port ` +
        `if not the default), got ${describe(value)}`,
    )
  }
  return normalized
}

/** A request-target's path (all of it, without a query) and its query's `&`-separated pairs. */
function split(url: string | undefined): { path: string; pairs: string[] } {
  const target = url ?? '/'
  const at = target.indexOf('?')
  if (at === -1) return { path: target, pairs: [] }
  return { path: target.slice(0, at), pairs: target.slice(at + 1).split('&') }
}

/**
 * A parameter's name as parsers read it (URLSearchParams, qs): `+` is a space, percent-escapes are
 * UTF-8 (invalid ones replaced). `%2B` also reads as a space here: parsers disagree on it, and
 * equal names keep their order, so the coarser reading is the one that reorders nothing a
 * parser could take for one name.
 */
function paramName(pair: string): string {
  const eq = pair.indexOf('=')
  const raw = eq === -1 ? pair : pair.slice(0, eq)
  if (!raw.includes('%') && !raw.includes('+')) return raw
  // One pair without `&` or `=`: URLSearchParams reads exactly one name from it.
  return new URLSearchParams(raw).keys().next().value!.replace(/\+/g, ' ')
}

/** The fields of a KeyRequest, copied from a plain object. */
function pick({ method, url, headers }: KeyRequest): KeyRequest {
  return { method, url, headers }
}

/** A request a handler will get (an IncomingMessage, Express's, HTTP/2's), not a plain object. */
function isLive(req: KeyRequest): req is IncomingMessage {
  return req instanceof Readable
}

/**
 * `base` on the request with `url` as its target: set on a live request (and on Express's
 * `originalUrl`, which holds the same query), and set back when the request bypasses the cache.
 */
function withUrl(req: KeyRequest, url: string, base: KeyFunction): string | undefined {
  if (!isLive(req)) return base({ ...pick(req), url })
  const live = req as IncomingMessage & { originalUrl?: string }
  const before = { url: live.url, originalUrl: live.originalUrl }
  live.url = url
  // Express mounts strip a path prefix from req.url, never the query: equal queries, same request.
  const query = (target: string | undefined) => split(target).pairs.join('&')
  const original = before.originalUrl
  const sameQuery = typeof original === 'string' && query(original) === query(before.url)
  if (sameQuery) live.originalUrl = split(original).path + url.slice(split(url).path.length)
  return keyed(
    () => base(live),
    () => {
      live.url = before.url!
      if (sameQuery) live.originalUrl = before.originalUrl!
    },
  )
}

/** `base` on the request with `host` as its Host (both views of the headers on a live request). */
function withHost(req: KeyRequest, host: string, base: KeyFunction): string | undefined {
  if (!isLive(req)) return base({ ...pick(req), headers: { ...req.headers, host } })
  const before = { host: req.headers.host, rawHeaders: req.rawHeaders }
  req.headers.host = host
  const isHost = (i: number, all: string[]) => i % 2 === 1 && all[i - 1]!.toLowerCase() === 'host'
  setRawHeaders(
    req,
    req.rawHeaders.map((value, i, all) => (isHost(i, all) ? host : value)),
  )
  return keyed(
    () => base(req),
    () => {
      req.headers.host = before.host
      setRawHeaders(req, before.rawHeaders)
    },
  )
}

/** Runs `key`; undoes the rewrite when the request bypasses the cache (or a key function threw). */
function keyed(key: () => string | undefined, undo: () => void): string | undefined {
  let result: string | undefined
  try {
    result = key()
  } finally {
    if (typeof result !== 'string') undo()
  }
  return result
}
