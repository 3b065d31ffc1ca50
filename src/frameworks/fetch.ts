/**
 * node-accelerator/fetch: the accelerator around a web-standard handler
 * `(request: Request, ...rest) => Response | Promise<Response>` (Hono's `app.fetch`, Bun- and
 * Deno-style servers), returning a handler of the same shape.
 *
 * How it reuses the core: each Request becomes a Node `IncomingMessage` / `ServerResponse` pair
 * on a socket that discards its output (as the core's own background refreshes are), and runs
 * through an ordinary accelerator. Its handler calls the web handler with the original Request
 * and hands the Response's status and headers to `res` and its body back to the core as an
 * async iterable: the core writes it with backpressure, tees it into the store, and, when a
 * conditional request matches the Response's ETag, answers 304 without reading the body. What
 * the core writes to `res` (a miss, a hit, a 304) is turned back into a Response as it is
 * written: a body given whole with its headers becomes a Response over those bytes; any other
 * becomes a body stream fed by `write`/`end`, whose demand is `res`'s backpressure. So every rule of the core (stores, tags, no stale resurrection,
 * coalescing, stale handling, Vary, Cache-Status) holds here unchanged.
 *
 * A fresh hit skips that bridge (it cost a hit two thirds of its throughput): a GET or HEAD that
 * asks nothing of the cache but a 304 is keyed, looked up and answered as the core would, with
 * the core's own parts (key function and namespace, `lookupIn`, the hit's header lines, the
 * conditional rules), into a Response over the stored bytes. Anything else takes the bridge.
 */
import { channel } from 'node:diagnostics_channel'
import { IncomingMessage, ServerResponse, STATUS_CODES, type OutgoingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { accelerate } from '../accelerate.js'
import { controlsOf } from '../core/middleware.js'
import { discardingSocket } from '../core/background.js'
import type { AccelerateOptions, ResolvedOptions } from '../core/options.js'
import type { Accelerator, Stats } from '../types.js'
import { isEncrypted, namespacePrefix } from '../core/key.js'
import { CHANNELS, optionsOf, storeCallsTraced, storeOf } from '../core/diagnostics.js'
import { liveKey } from '../core/invalidation.js'
import { lookupIn, type Lookup } from '../core/lookup.js'
import { hitHeadFor } from '../core/respond.js'
import { answersNotModified } from '../http/conditional.js'
import { hasOriginOnlyPrecondition } from '../http/request.js'

/** A web-standard request handler. */
export type FetchHandler<R extends unknown[] = unknown[]> = (
  request: Request,
  ...rest: R
) => Response | Promise<Response>

/** The handler returned by {@link accelerateFetch}: the same shape, with the cache's controls. */
export type AcceleratedFetch<R extends unknown[] = unknown[]> = ((
  request: Request,
  ...rest: R
) => Promise<Response>) &
  Omit<Accelerator, 'middleware'>

/**
 * Read by this cache and not sent on: the core already leaves the surrogate headers out (unless
 * `keepSurrogateHeaders`), response and stored entry alike; CDN-Cache-Control, which a proxy
 * passes downstream (RFC 9213), ends here, at the edge a fetch handler is.
 */
const CDN_CACHE_CONTROL = 'cdn-cache-control'

/** Statuses whose Response has no body (Fetch standard: null body status). */
const NULL_BODY = new Set([101, 103, 204, 205, 304])

/** What one request was called with: the handler gets them back on a miss. */
interface Call {
  request: Request
  rest: unknown[]
}

/**
 * Wraps `handler` in a response cache. Responses opt in with `Cache-Control: s-maxage` (or
 * `public, max-age`), `CDN-Cache-Control` (RFC 9213) or `Surrogate-Control: max-age`, and are
 * tagged by `Cache-Tag` (comma-separated) and `Surrogate-Key` (space-separated); those
 * cache-only headers are stripped before the client sees the Response. A background refresh
 * (stale-while-revalidate) calls `handler` with a Request alone: no client, no `rest`.
 */
export function accelerateFetch<R extends unknown[]>(
  handler: FetchHandler<R>,
  options?: AccelerateOptions,
): AcceleratedFetch<R> {
  if (typeof handler !== 'function') {
    throw new TypeError(`accelerateFetch: expected handler to be a function, got ${typeof handler}`)
  }
  const calls = new WeakMap<IncomingMessage, Call>()
  const settings = { cdnCacheControl: true, surrogateKeys: true, ...options }
  const acc = accelerate(async (req, res) => {
    const call = calls.get(req)
    const request = call?.request ?? backgroundRequest(req)
    const response = await handler(request, ...((call?.rest ?? []) as R))
    res.statusCode = response.status
    if (response.statusText) res.statusMessage = response.statusText
    response.headers.forEach((value, name) => {
      if (name !== 'set-cookie') res.setHeader(name, value)
    })
    const cookies = response.headers.getSetCookie()
    if (cookies.length > 0) res.setHeader('set-cookie', cookies)
    // A handler that returns nothing writes res itself: a Response with no body ends it here.
    if (response.body === null) return void res.end()
    // Node's ReadableStream is an async iterable of Uint8Arrays; the core's return() cancels it.
    return response.body as unknown as AsyncIterable<Uint8Array>
  }, settings)
  const fast = fastHits(acc)

  const fetch = (request: Request, ...rest: R): Promise<Response> => {
    const url = new URL(request.url)
    const headers = parsedHeaders(request, rest[0]) ?? nodeHeaders(request, url)
    const hit = fast.hit(request.method, url, headers)
    if (hit !== undefined) return Promise.resolve(hit)
    return new Promise<Response>((resolve, reject) => {
      const { req, res, socket } = exchange(request, url, headers)
      calls.set(req, { request, rest })
      respondWith(res, socket, request.method === 'HEAD', resolve, reject)
      acc(req, res)
    })
  }
  const controls = controlsOf(acc)
  return Object.assign(fetch, controls, {
    // The fast path's hits and 304s are the accelerator's, counted where the core counts its own.
    stats: (): Stats => {
      const stats = controls.stats()
      stats.hits += fast.counts.hits
      stats.notModified += fast.counts.notModified
      return stats
    },
    close: () => {
      fast.closed = true
      return controls.close()
    },
  })
}

/**
 * The fast path of a fresh hit: `hit()` answers a request exactly as the core's hit path would
 * (its `cacheKey`, `lookup` and `serveEntry`, with the same parts), or returns undefined for the
 * bridge to run it: a request that bypasses or asks the cache for more than a 304 can answer, an
 * entry missing or stale, a store that answers only asynchronously, anyone tracing (their messages
 * carry the Node request and response, which this path does not make), or `unless` (it is given
 * an IncomingMessage, which this path does not make either).
 */
function fastHits(acc: Accelerator) {
  // The accelerator's own options, as it resolved them (not resolved a second time here).
  const opts = optionsOf<ResolvedOptions>(acc)!
  const store = storeOf(acc)!
  const responses = channel(CHANNELS.response)
  const prefix = namespacePrefix(opts.namespace)
  // A store that fails is not reported here: the bridge looks again and reports it, once.
  const lookup = lookupIn(store, opts, () => {})
  const head = hitHeadFor(opts.statusHeader, opts.xCache)
  const counts = { hits: 0, notModified: 0 }
  const state = { closed: false, counts, hit }
  const skip = store.peek === undefined || opts.unless !== undefined
  function hit(method: string, url: URL, headers: NodeHeaders): Response | undefined {
    if (skip || state.closed || (method !== 'GET' && method !== 'HEAD')) return undefined
    if (responses.hasSubscribers || storeCallsTraced()) return undefined
    // Client directives (RFC 9111 §5.2.1, Pragma §5.4), a Range, an origin-only precondition
    // (RFC 9111 §4.3.2): the core's other branches decide those.
    const { range, pragma } = headers
    const directives = headers['cache-control'] !== undefined || pragma !== undefined
    if (directives || range !== undefined || hasOriginOnlyPrecondition(headers)) return undefined
    const keyRequest = { method, url: url.pathname + url.search, headers, socket: encryption(url) }
    let key: string | undefined
    try {
      key = liveKey(opts.key, keyRequest)
    } catch {
      return undefined // the bridge calls it again and reports its failure
    }
    if (typeof key !== 'string') return undefined
    // Synchronous: the store has peek and nobody traces store calls.
    const { entry } = lookup(prefix + key, headers) as Lookup
    const now = opts.now()
    if (entry === undefined || now >= entry.staleAt) return undefined
    counts.hits++
    const notModified = answersNotModified(headers, entry.status, entry.headers)
    if (notModified) counts.notModified++
    const lines = head(entry, now, 'hit', undefined, notModified)
    const out = headersOf(lines)
    const status = notModified ? 304 : entry.status
    const body = method === 'HEAD' || NULL_BODY.has(status) ? null : entry.body
    // The reason phrase Node's writeHead gives the bridge's response.
    const statusText = STATUS_CODES[status] ?? 'unknown'
    return new Response(body, { status, statusText, headers: out })
  }
  return state
}

/**
 * A hit's header lines for a Response, all but CDN-Cache-Control: a plain object when no name
 * repeats (a server with a light Response, as @hono/node-server's, hands it to writeHead as it
 * is, where a Headers would first be copied into one), else a Headers keeping every line.
 */
function headersOf(lines: readonly string[]): Record<string, string> | Headers {
  // No prototype: a stored header may be named __proto__.
  const out: Record<string, string> = Object.create(null)
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i]!.toLowerCase()
    if (name === CDN_CACHE_CONTROL) continue
    if (Object.hasOwn(out, name)) return everyLine(lines)
    out[name] = lines[i + 1]!
  }
  return out
}

function everyLine(lines: readonly string[]): Headers {
  const out = new Headers()
  for (let i = 0; i < lines.length; i += 2) {
    if (lines[i]!.toLowerCase() !== CDN_CACHE_CONTROL) out.append(lines[i]!, lines[i + 1]!)
  }
  return out
}

/**
 * The headers Node already parsed for `request`, when the server passed its IncomingMessage
 * (@hono/node-server's `env.incoming`) and `request` is that server's own view of it, headers
 * untouched: its Request keeps the IncomingMessage under a symbol and builds a Headers from it
 * only when asked (a hit reading them would cost more than Hono's whole route). Anything else
 * (another server, a Request made anew, headers already read and so perhaps changed, HTTP/2's
 * pseudo-headers): undefined, and the Request's own headers are read.
 */
function parsedHeaders(request: Request, env: unknown): NodeHeaders | undefined {
  const incoming = (env as { incoming?: unknown } | undefined)?.incoming
  // (HTTP/2's request is no IncomingMessage: its headers hold pseudo-headers, and no Host.)
  if (!(incoming instanceof IncomingMessage) || typeof incoming.headers.host !== 'string')
    return undefined
  let own = false
  for (const symbol of Object.getOwnPropertySymbols(request)) {
    const value = (request as unknown as Record<symbol, unknown>)[symbol]
    if (symbol.description === 'headersKey' && value !== undefined) return undefined
    if (symbol.description === 'incomingKey') own = value === incoming
  }
  return own ? (incoming.headers as NodeHeaders) : undefined
}

/** A Request's headers as Node's request holds them: lower-case names, Host first. */
type NodeHeaders = Record<string, string>

function nodeHeaders(request: Request, url: URL): NodeHeaders {
  const headers: NodeHeaders = { host: url.host }
  request.headers.forEach((value, name) => (headers[name] = value))
  return headers
}

/** The connection's scheme, where the core reads it (the key's port, a background refresh's URL). */
function encryption(url: URL): { encrypted: boolean } {
  return { encrypted: url.protocol === 'https:' }
}

/** The Node view of a Request: its method, path, headers (with Host) on a discarding socket. */
function exchange(request: Request, url: URL, headers: NodeHeaders) {
  const socket = discardingSocket()
  Object.assign(socket, encryption(url))
  const req = new IncomingMessage(socket as unknown as Socket)
  const rawHeaders = Object.entries(headers).flat()
  const path = url.pathname + url.search
  Object.assign(req, {
    method: request.method,
    url: path,
    headers,
    rawHeaders,
    httpVersion: '1.1',
    httpVersionMajor: 1,
    httpVersionMinor: 1,
    complete: true,
  })
  // The body stays in the Request the handler gets; the Node request is only looked at.
  req.push(null)
  const res = new ServerResponse(req)
  res.assignSocket(socket as unknown as Socket)
  // Ended, not destroyed, once the response is done: destroying it with Node's last write still
  // queued made an ERR_STREAM_DESTROYED error per request (its stack included) for nothing.
  res.once('finish', () => socket.end())
  return { req, res, socket }
}

/**
 * The Request of a background refresh: the URL and headers the core's request carries, over the
 * scheme of the request that found the entry stale (the refresh's socket copies `encrypted`).
 */
function backgroundRequest(req: IncomingMessage): Request {
  const headers = new Headers()
  for (const [name, value] of Object.entries(req.headers)) headers.set(name, String(value))
  const scheme = isEncrypted(req) ? 'https:' : 'http:'
  return new Request(`${scheme}//${req.headers.host}${req.url}`, { headers })
}

/**
 * Turns what is written to `res` into a Response. A body given whole (`writeHead` then `end` in
 * the same turn: every hit, and most small misses) becomes a Response over those bytes, which
 * servers send without reading a stream. Otherwise the Response is resolved a microtask after
 * `writeHead` (or at the first `write`) with a body stream that `write`/`end` feed; its reader is
 * the backpressure: `write` returns false while its queue is full, and `drain` follows its next
 * pull. A reader that cancels ends the exchange as a client that went away would. (Only the core
 * and this module's handler write `res`, and neither gives writeHead a reason phrase.)
 */
function respondWith(
  res: ServerResponse,
  socket: Duplex,
  head: boolean,
  resolve: (response: Response) => void,
  reject: (err: Error) => void,
): void {
  const proto = ServerResponse.prototype
  // The status and headers, until the Response is made.
  let init: ResponseInit | undefined
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let waiting = false
  let open = true
  let nullBody = head
  const streaming = () => {
    if (init === undefined) return
    const body = new ReadableStream<Uint8Array>(
      {
        start: (c) => void (controller = c),
        pull: () => {
          if (!waiting) return
          waiting = false
          res.emit('drain')
        },
        cancel: () => void socket.destroy(),
      },
      new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }),
    )
    resolve(new Response(body, init))
    init = undefined
  }
  const push = (bytes: Uint8Array | false) => {
    if (!bytes) return
    streaming()
    // A copy: the writer may reuse its buffer once the write is done.
    controller.enqueue(new Uint8Array(bytes))
    if (controller.desiredSize! <= 0) waiting = true
  }
  const whole = (bytes: Uint8Array | null) => {
    resolve(new Response(bytes, init))
    init = undefined
    open = false
  }

  res.writeHead = function (status: number, given?: unknown) {
    setAll(res, given)
    proto.writeHead.call(res, status)
    nullBody ||= NULL_BODY.has(status)
    init = { status, statusText: res.statusMessage, headers: clientHeaders(res.getHeaders()) }
    if (nullBody) whole(null)
    else queueMicrotask(streaming)
    return res
  } as ServerResponse['writeHead']
  res.write = function (chunk: unknown, encoding?: unknown, cb?: unknown) {
    // Node's own answer is not the backpressure: its socket discards at once, and no server
    // relays that socket's 'drain' to `res`. The Response's reader is the client.
    proto.write.call(res, chunk as never, encoding as never, cb as never)
    if (open) push(bytesOf(chunk, encoding))
    return !waiting
  } as ServerResponse['write']
  res.end = function (chunk?: unknown, encoding?: unknown, cb?: unknown) {
    proto.end.call(res, chunk as never, encoding as never, cb as never)
    if (open && init !== undefined) whole(bytesOf(chunk, encoding) || null)
    if (open) {
      push(bytesOf(chunk, encoding))
      open = false
      controller.close()
    }
    return res
  } as ServerResponse['end']
  // Cut before its end (a handler that failed mid-body): the body stream errors.
  res.once('close', () => {
    // The core answers every request it is given: this is for a defect there, which must reject
    // the handler's promise rather than leave it pending.
    /* c8 ignore next 3 */
    if (!res.headersSent) {
      reject(new Error('node-accelerator/fetch: the response closed before any header was sent'))
    }
    if (!open) return
    open = false
    streaming()
    controller.error(new Error('node-accelerator/fetch: the response was cut before its end'))
  })
}

/** A chunk given to write/end as bytes; false for none (a callback in its place, nothing). */
function bytesOf(chunk: unknown, encoding: unknown): Uint8Array | false {
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding as BufferEncoding | undefined)
  return chunk instanceof Uint8Array && chunk
}

/** writeHead's headers (an object, or a flat `[name, value, ...]` list) set on `res`. */
function setAll(res: ServerResponse, given: unknown): void {
  if (Array.isArray(given)) {
    for (let i = 0; i + 1 < given.length; i += 2) res.appendHeader(given[i], given[i + 1])
  } else if (given) {
    for (const [name, value] of Object.entries(given)) res.setHeader(name, value as string)
  }
}

/** The headers the client sees: all but CDN-Cache-Control. */
function clientHeaders(headers: OutgoingHttpHeaders): Headers {
  const out = new Headers()
  for (const [name, value] of Object.entries(headers)) {
    if (name === CDN_CACHE_CONTROL) continue
    if (Array.isArray(value)) for (const one of value) out.append(name, one)
    else out.set(name, String(value))
  }
  return out
}
