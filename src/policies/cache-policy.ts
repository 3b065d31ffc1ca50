/**
 * Cache policies per route: one declaration sets both sides of a response's caching, this cache's
 * TTL and tags (`res.locals.cacheFor`, `res.locals.tags`) and the `Cache-Control` and `Vary` that
 * browsers and shared caches in front read, and refuses, when it is made, the combinations that
 * would silently not do what they say (a `private` page "cached" here, a browser `max-age` that
 * outlives a tag purge).
 *
 * What the accelerator does with the headers set here (src/policy.ts, src/stale.ts): the policy
 * always sets `res.locals.cacheFor` (0 when it declares none), so its `s-maxage` or `max-age`
 * never opt a response in to this cache behind its back; `stale-while-revalidate` and
 * `stale-if-error` are read by this cache too (one window for every cache); `no-cache` and
 * `must-revalidate` keep the accelerator's own stale options from applying to the response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { describe, rejectUnknown } from '../lib/describe.js'
import { isTag } from '../http/tags.js'
import { varyNames } from '../http/vary.js'

/** Tags as a policy accepts them: strings, or a function of the request returning them. */
export type PolicyTags<Req extends IncomingMessage = IncomingMessage> =
  Iterable<string> | string | ((req: Req) => Iterable<string> | string)

/** Options of {@link cachePolicy}. Durations are in seconds, like the directives they set. */
export interface CachePolicyOptions<Req extends IncomingMessage = IncomingMessage> {
  /** Seconds this cache stores the response (`res.locals.cacheFor`); 0: not here. @default 0 */
  cacheFor?: number
  /** What `invalidateTags` drops the response by (`res.locals.tags`); needs `cacheFor`. */
  tags?: PolicyTags<Req>
  /** Seconds browsers reuse it without asking (`max-age`). @default 0: they revalidate */
  maxAge?: number
  /** Seconds shared caches in front of this one (CDNs, proxies) reuse it (`s-maxage`). */
  sMaxage?: number
  /** One user's response: browsers may keep it, shared caches never (`private`). @default false */
  private?: boolean
  /** Every cache may keep it, but revalidates it before each use (`no-cache`). @default false */
  noCache?: boolean
  /** No cache anywhere keeps a copy (`no-store`). @default false */
  noStore?: boolean
  /** Once stale, never used unrevalidated, even when the origin fails. @default false */
  mustRevalidate?: boolean
  /** Never changes while fresh: no revalidation on reload (RFC 8246). @default false */
  immutable?: boolean
  /** Seconds a stale copy is served while one refresh runs, by every cache. @default 0 */
  staleWhileRevalidate?: number
  /** Seconds a stale copy is served when refreshing it fails, by every cache. @default 0 */
  staleIfError?: number
  /** Request headers the response varies on, added to its `Vary`. */
  vary?: string | Iterable<string>
  /**
   * Accept a `maxAge` or `sMaxage` longer than `cacheFor` on a tagged response: a tag purge
   * cannot reach browsers or caches in front, which keep the old response that long. @default false
   */
  allowStaleAfterPurge?: boolean
}

/** Applies a policy to a response: Connect/Express middleware, or called in a handler. */
export interface CachePolicy<Req extends IncomingMessage = IncomingMessage> {
  (req: Req, res: ServerResponse, next?: (err?: unknown) => void): void
  /** In a handler: the request is `res.req`. */
  (res: ServerResponse): void
  /** The `Cache-Control` it sends. */
  readonly cacheControl: string
  /** Seconds this cache stores the response (0: not stored here). */
  readonly cacheFor: number
}

const KNOWN: ReadonlyArray<keyof CachePolicyOptions> = [
  'cacheFor',
  'tags',
  'maxAge',
  'sMaxage',
  'private',
  'noCache',
  'noStore',
  'mustRevalidate',
  'immutable',
  'staleWhileRevalidate',
  'staleIfError',
  'vary',
  'allowStaleAfterPurge',
]
const FLAGS = [
  'private',
  'noCache',
  'noStore',
  'mustRevalidate',
  'immutable',
  'allowStaleAfterPurge',
] as const
/** RFC 9111 §1.2.2: the directives take delta-seconds, a whole number. */
const DIRECTIVE_SECONDS = ['maxAge', 'sMaxage', 'staleWhileRevalidate', 'staleIfError'] as const
type Seconds = 'cacheFor' | (typeof DIRECTIVE_SECONDS)[number]

/** Names other caching libraries use (folded: lower case, no `_` or `-`), and ours. */
const SYNONYMS: Readonly<Record<string, string>> = {
  ttl: 'cacheFor',
  timeout: 'cacheFor',
  servertimeout: 'cacheFor',
  clienttimeout: 'maxAge',
  cacheable: 'noStore',
  clientonly: 'private',
  public: 'sMaxage',
}

/**
 * A policy: `(req, res, next?)` middleware that sets the response's `Cache-Control` (and `Vary`),
 * and `res.locals.cacheFor` / `res.locals.tags` for this cache. The handler's own `res.cacheFor`
 * and `res.tags`, or headers it sets afterwards, win. Throws a TypeError naming the problem when
 * the options are malformed or contradict each other.
 */
export function cachePolicy<Req extends IncomingMessage = IncomingMessage>(
  options: CachePolicyOptions<Req>,
): CachePolicy<Req> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`cachePolicy: expected an options object, got ${describe(options)}`)
  }
  rejectUnknown(options, KNOWN, 'cachePolicy()', SYNONYMS)
  const o = checked(options as CachePolicyOptions)
  refuseContradictions(o)
  const cacheControl = directives(o)
  const cacheFor = o.cacheFor ?? 0
  const { tags, vary } = o

  function apply(req: IncomingMessage, res: ServerResponse): void {
    if (res.headersSent) {
      throw new Error(
        `cachePolicy: the headers of ${req.method} ${req.url} were already sent; ` +
          'apply the policy before the handler writes its response',
      )
    }
    res.setHeader('cache-control', cacheControl)
    if (vary.length > 0) res.setHeader('vary', withVary(res.getHeader('vary'), vary))
    const locals = ((res as ServerResponse & { locals?: Record<string, unknown> }).locals ??= {})
    locals.cacheFor = cacheFor
    // A copy per response, so that a handler adding tags never changes the policy's.
    if (tags !== undefined) {
      locals.tags = typeof tags === 'function' ? tagsFrom(tags(req)) : [...tags]
    }
  }

  function policy(
    first: IncomingMessage | ServerResponse,
    second?: ServerResponse,
    next?: (err?: unknown) => void,
  ): void {
    const resOnly = second === undefined && isResponse(first)
    const [req, res] = resOnly ? [first.req, first] : [first as IncomingMessage, second]
    if (!isResponse(res)) {
      throw new TypeError(
        'cachePolicy: expected to be called with (req, res[, next]) or (res), ' +
          `got ${describe(res)} for res`,
      )
    }
    if (typeof next !== 'function') return apply(req, res)
    try {
      apply(req, res)
    } catch (err) {
      return next(err)
    }
    next()
  }
  return Object.assign(policy as CachePolicy<Req>, { cacheControl, cacheFor })
}

/** `Cache-Control: no-cache`: every cache may keep it, and revalidates it before each use. */
export function noCache<Req extends IncomingMessage = IncomingMessage>(
  options: Omit<CachePolicyOptions<Req>, 'noCache'> = {},
): CachePolicy<Req> {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`noCache: expected an options object, got ${describe(options)}`)
  }
  return cachePolicy<Req>({ ...options, noCache: true })
}

/** `Cache-Control: no-store`: no cache anywhere keeps a copy (this one included). */
export function noStore(...rest: unknown[]): CachePolicy {
  if (rest.length > 0) {
    throw new TypeError(
      'noStore: expected no options (nothing else applies to a response no ' +
        `cache keeps), got ${describe(rest[0])}`,
    )
  }
  return cachePolicy({ noStore: true })
}

/** The options, type-checked, with tags and vary made lists. */
interface Checked extends Omit<CachePolicyOptions, 'tags' | 'vary'> {
  tags: readonly string[] | ((req: IncomingMessage) => Iterable<string> | string) | undefined
  vary: readonly string[]
}

function checked(options: CachePolicyOptions): Checked {
  for (const name of FLAGS) {
    if (options[name] !== undefined && typeof options[name] !== 'boolean') {
      const got = describe(options[name])
      throw new TypeError(`cachePolicy: expected options.${name} to be a boolean, got ${got}`)
    }
  }
  const { cacheFor, tags } = options
  const finite = typeof cacheFor === 'number' && cacheFor >= 0 && cacheFor < Infinity
  if (cacheFor !== undefined && !finite) {
    throw new TypeError(
      'cachePolicy: expected options.cacheFor to be a number of seconds >= 0, ' +
        `got ${describe(cacheFor)}`,
    )
  }
  for (const name of DIRECTIVE_SECONDS) {
    const value = options[name]
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw new TypeError(
        `cachePolicy: expected options.${name} to be a whole number of ` +
          `seconds >= 0, got ${describe(value)}`,
      )
    }
  }
  const fixed = typeof tags === 'function' || tags === undefined
  const list = fixed ? tags : tagsFrom(tags, 'options.tags')
  return { ...options, tags: list, vary: varyList(options.vary) }
}

/** Tags as a list of well-formed strings, or a TypeError naming `what`. */
function tagsFrom(value: unknown, what = 'options.tags(req)'): string[] {
  if (typeof (value as PromiseLike<unknown> | undefined)?.then === 'function') {
    throw new TypeError(
      `cachePolicy: expected ${what} to return tags, got a Promise; ` +
        'compute tags that need I/O in the handler and set res.tags',
    )
  }
  const list = typeof value === 'string' ? [value] : iterable(value) ? [...value] : undefined
  if (list?.every(isTag)) return list as string[]
  throw new TypeError(
    `cachePolicy: expected ${what} to be a string or an iterable of ` +
      `well-formed strings, got ${describe(value)}`,
  )
}

/** RFC 9110 §12.5.5: `Vary` is `*` or a list of field names (tokens). */
function varyList(value: CachePolicyOptions['vary']): string[] {
  if (value === undefined) return []
  const list =
    typeof value === 'string'
      ? value.split(',').map((name) => name.trim())
      : iterable(value)
        ? [...value]
        : undefined
  const token = /^(?:\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/
  if (list?.every((name) => typeof name === 'string' && token.test(name))) return list
  throw new TypeError(
    'cachePolicy: expected options.vary to be header names (a string or a ' +
      `list), got ${describe(value)}`,
  )
}

function iterable(value: unknown): value is Iterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.iterator in value
}

/**
 * Throws on the combinations whose two halves cannot both hold, saying why and what to do
 * instead. Numbers count only when above 0: 0 is the same as leaving the option out.
 */
function refuseContradictions(o: Checked): void {
  const cacheFor = o.cacheFor ?? 0
  const given = (name: Seconds) => (o[name] ?? 0) > 0
  const them = (names: readonly string[]) => (names.length > 1 ? 'them' : 'it')
  const refuse = (why: string) => {
    throw new TypeError(`cachePolicy: ${why}`)
  }
  if (o.noStore) {
    const pointless: string[] = (['cacheFor', ...DIRECTIVE_SECONDS] as const).filter(given)
    pointless.push(...(['noCache', 'mustRevalidate', 'immutable'] as const).filter((f) => o[f]))
    if (o.tags !== undefined) pointless.push('tags')
    if (pointless.length > 0) {
      refuse(
        'noStore keeps every cache (this one included) from storing the response, so ' +
          `${pointless.join(', ')} would never apply; drop ${them(pointless)}, or noStore`,
      )
    }
  }
  // RFC 9111 §5.2.2.7: a shared cache (one entry serves every client: this one) must not store it.
  if (o.private && cacheFor > 0) {
    refuse(
      'cacheFor with private: this cache is shared by every client and never stores a ' +
        'private response (RFC 9111 §5.2.2.7), so it would silently not be cached; drop cacheFor ' +
        'for a per-user page, or private if the page is the same for everyone',
    )
  }
  if (o.private && o.sMaxage !== undefined) {
    refuse(
      'sMaxage with private: private forbids the shared caches sMaxage is for from storing ' +
        'the response (RFC 9111 §5.2.2.7); drop one of them',
    )
  }
  if (o.tags !== undefined && cacheFor === 0) {
    refuse(
      'tags without cacheFor: nothing is stored here without cacheFor, so a purge of these ' +
        'tags would have nothing to drop; add cacheFor (seconds), or drop tags',
    )
  }
  if (o.noCache) {
    const loose: string[] = DIRECTIVE_SECONDS.filter(given)
    if (o.immutable) loose.push('immutable')
    if (loose.length > 0) {
      const names = loose.join(', ')
      refuse(
        'noCache makes every cache revalidate before each use (RFC 9111 §5.2.2.4), which ' +
          `${names} would contradict; use maxAge: 0 with ${names} for "browsers revalidate, other ` +
          `caches may reuse", or drop ${them(loose)}`,
      )
    }
  }
  if (o.immutable && !given('maxAge')) {
    refuse(
      'immutable without maxAge: immutable only spares revalidations while the response is ' +
        'fresh (RFC 8246), and without maxAge it never is; add maxAge (seconds)',
    )
  }
  if (o.mustRevalidate && (given('staleWhileRevalidate') || given('staleIfError'))) {
    refuse(
      'mustRevalidate forbids using a stale response without revalidating it (RFC 9111 ' +
        '§5.2.2.2), while staleWhileRevalidate / staleIfError ask for it; drop one of them',
    )
  }
  if (o.vary.includes('*') && cacheFor > 0) {
    refuse(
      'vary "*" with cacheFor: a response with Vary: * is never stored (RFC 9110 §12.5.5); ' +
        'name the request headers it varies on instead',
    )
  }
  if (o.tags === undefined || o.allowStaleAfterPurge) return
  const outOfReach = [
    ['maxAge', 'browsers'],
    ['sMaxage', 'caches in front of this one'],
  ] as const
  for (const [name, who] of outOfReach) {
    const seconds = o[name] ?? 0
    if (seconds > cacheFor) {
      refuse(
        `${name} (${seconds} s) is longer than cacheFor (${cacheFor} s) on a tagged ` +
          `response: a tag purge cannot reach ${who}, which would keep the old response for up ` +
          `to ${seconds} s after it; lower ${name} to at most ${cacheFor}, or pass ` +
          'allowStaleAfterPurge: true if that is acceptable',
      )
    }
  }
}

/** The Cache-Control value of a policy (RFC 9111 §5.2.2). */
function directives(o: Checked): string {
  const parts: string[] = []
  if (o.private) parts.push('private')
  // Anything else was refused or zero: nothing else applies to a response no cache keeps.
  if (o.noStore) return [...parts, 'no-store'].join(', ')
  if (o.noCache) parts.push('no-cache')
  // Always explicit: without it, browsers guess a freshness from Last-Modified (RFC 9111 §4.2.2).
  else parts.push(`max-age=${o.maxAge ?? 0}`)
  if (o.sMaxage !== undefined) parts.push(`s-maxage=${o.sMaxage}`)
  if (o.mustRevalidate) parts.push('must-revalidate')
  if (o.immutable) parts.push('immutable')
  if (o.staleWhileRevalidate) parts.push(`stale-while-revalidate=${o.staleWhileRevalidate}`)
  if (o.staleIfError) parts.push(`stale-if-error=${o.staleIfError}`)
  return parts.join(', ')
}

/** The response's Vary with `names` added once each (compression middleware adds its own too). */
function withVary(current: number | string | string[] | undefined, names: readonly string[]) {
  const existing = current === undefined ? [] : Array.isArray(current) ? current : [String(current)]
  const have = new Set(varyNames(existing))
  if (have.has('*')) return '*'
  const added: string[] = []
  for (const name of names) {
    if (have.has(name.toLowerCase())) continue
    have.add(name.toLowerCase())
    added.push(name)
  }
  return [...existing, ...added].join(', ')
}

function isResponse(value: unknown): value is ServerResponse {
  return typeof (value as ServerResponse | undefined)?.setHeader === 'function'
}
