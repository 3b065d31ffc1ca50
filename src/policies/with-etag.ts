/**
 * withEtag(etagFn, handler): the handler runs only when the client's copy is not current. A cheap
 * `etagFn(req)` gives the resource's current entity-tag, and the request's ETag preconditions are
 * evaluated against it (RFC 9110 §13.2.2) before the handler is called: a matching
 * `If-None-Match` is answered 304 (GET, HEAD) or 412 (other methods), a failed `If-Match` 412,
 * and the handler never runs. Otherwise a GET or HEAD gets the ETag and the handler runs.
 *
 * Under the accelerator this is also what revalidates a stale entry without regenerating it:
 * the cache sends the stored ETag as If-None-Match, the 304 refreshes the entry (RFC 9111 §4.3.4).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { BODY_HEADERS, isNotModified } from '../http/conditional.js'
import { describe } from '../lib/describe.js'
import { conditionalHeaders } from '../core/revalidate.js'

/** What `etagFn` returns: an entity-tag (`"v1"`, `W/"v1"`), a bare value to quote, or none. */
export type EtagValue = string | undefined | null

/** RFC 9110 §8.8.3: `[W/]"etagc*"`, etagc = %x21 / %x23-7E / obs-text. */
const ENTITY_TAG = /^(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"$/
const BARE_VALUE = /^[\x21\x23-\x7e\x80-\xff]+$/
/** An If-Match member at the sticky position: `*` or an entity-tag, then `,` or the end. */
const IF_MATCH_MEMBER = /[ \t]*(\*|(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?:,|$)/y

/**
 * Wraps `handler` (a raw `(req, res)` handler, an Express route, anything called with the request
 * and response first) so that `etagFn(req)` (sync or async) decides first whether it runs. When
 * `etagFn` gives nothing (`undefined`, `null`: a resource it does not know), the handler runs
 * as it would without the wrapper. Throws a TypeError (to the caller, like the handler's own
 * errors) when `etagFn` returns something that is not an entity-tag.
 */
export function withEtag<
  Req extends IncomingMessage,
  Res extends ServerResponse,
  Rest extends unknown[],
  R,
>(
  etagFn: (req: Req) => EtagValue | PromiseLike<EtagValue>,
  handler: (req: Req, res: Res, ...rest: Rest) => R,
): (req: Req, res: Res, ...rest: Rest) => R | undefined | Promise<Awaited<R> | undefined> {
  for (const [name, fn] of [
    ['etagFn', etagFn],
    ['handler', handler],
  ] as const) {
    if (typeof fn !== 'function') {
      throw new TypeError(`withEtag: expected ${name} to be a function, got ${describe(fn)}`)
    }
  }
  return (req, res, ...rest) => {
    const decide = (value: EtagValue): R | undefined => {
      const etag = entityTag(value)
      if (etag === undefined) return handler(req, res, ...rest)
      const safe = req.method === 'GET' || req.method === 'HEAD'
      const status = failedPrecondition(conditionalHeaders(req), etag, safe)
      if (status !== undefined) return void answer(res, status, etag)
      // After an unsafe method the resource has changed: the old tag would describe nothing.
      if (safe) res.setHeader('etag', etag)
      return handler(req, res, ...rest)
    }
    const value = etagFn(req)
    // A sync etagFn keeps the handler sync: the wrapper changes nothing else about how it runs.
    if (!isThenable(value)) return decide(value)
    return Promise.resolve(value).then(decide) as Promise<Awaited<R> | undefined>
  }
}

/** The entity-tag `etagFn` gave, quoted when it gave a bare value, or a TypeError. */
function entityTag(value: EtagValue): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string' && ENTITY_TAG.test(value)) return value
  if (typeof value === 'string' && BARE_VALUE.test(value)) return `"${value}"`
  throw new TypeError(
    'withEtag: expected etagFn to return an entity-tag ("v1", W/"v1"), a bare ' +
      `value of visible ASCII, or undefined, got ${describe(value)}`,
  )
}

/**
 * RFC 9110 §13.2.2, the steps an ETag can decide (the date steps need Last-Modified, which is the
 * handler's): the status that answers the request instead of the handler, or undefined.
 */
export function failedPrecondition(
  headers: IncomingHttpHeaders,
  etag: string,
  safe: boolean,
): 304 | 412 | undefined {
  const { 'if-match': match, 'if-none-match': noneMatch } = headers
  // Step 1, §13.1.1: If-Match, strong comparison.
  if (match !== undefined && !ifMatch(match, etag)) return 412
  // Step 3, §13.1.2: If-None-Match, weak comparison; a match means the condition is false.
  const current = noneMatch !== undefined && isNotModified({ 'if-none-match': noneMatch }, { etag })
  return current ? (safe ? 304 : 412) : undefined
}

/**
 * RFC 9110 §13.1.1: whether If-Match holds for the current `etag`: `*`, or a member equal to it by
 * the strong comparison (§8.8.3.2: both strong, same opaque-tag). Malformed members never match,
 * so a header with none well-formed fails: it guards a change, and the client asked for a guard.
 */
export function ifMatch(value: string, etag: string): boolean {
  const strong = !etag.startsWith('W/')
  let i = 0
  while (i < value.length) {
    IF_MATCH_MEMBER.lastIndex = i
    const member = IF_MATCH_MEMBER.exec(value)
    if (member === null) {
      // Skip a malformed member: resume after the next comma.
      const comma = value.indexOf(',', i)
      if (comma === -1) return false
      i = comma + 1
      continue
    }
    if (member[1] === '*' || (strong && member[1] === etag)) return true
    i = IF_MATCH_MEMBER.lastIndex
  }
  return false
}

/** 304 or 412 in place of the handler's response, with the current ETag (RFC 9110 §15.4.5). */
function answer(res: ServerResponse, status: 304 | 412, etag: string): void {
  // Content headers set before (by a policy, a middleware) described a body that is not sent.
  for (const name of BODY_HEADERS) res.removeHeader(name)
  res.setHeader('etag', etag)
  if (status === 304) return void res.writeHead(304).end()
  const body = 'Precondition Failed\n'
  res.writeHead(412, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length })
  res.end(body)
}

function isThenable(value: unknown): value is PromiseLike<EtagValue> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function'
}
