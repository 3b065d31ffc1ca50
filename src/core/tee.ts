/**
 * The tee: watches a response the handler writes, without delaying or reordering it, and keeps
 * a copy of its bytes when it is to be stored.
 *
 * `writeHead`, `write`, `end` and `flushHeaders` are wrapped on the response object itself, and
 * `pipe()` calls `write`/`end`. What to do with the response is decided once, when its status and
 * headers are final: in `writeHead`, or, when the handler lets Node send the headers implicitly,
 * just before `write`/`end`/`flushHeaders` hand over to Node. Deciding before Node runs lets the
 * decision replace the response entirely (a 304, a stored entry) without re-entering Node's own
 * `end()`; and an unstorable response is never buffered at all.
 */
import type { ServerResponse } from 'node:http'
import { merged, setOwn } from '../http/merged.js'

/** Headers as a lower-case-keyed record of strings. */
export type HeaderRecord = Record<string, string | string[]>

/** The response as it is about to go out. */
export interface Head {
  status: number
  headers: HeaderRecord
  /** The whole body, when `end(chunk)` sends it before any header went out; else undefined. */
  wholeBody(): Buffer | undefined
  /** The body's length when known before it is written: Content-Length, or the whole body's. */
  length(): number | undefined
}

/** A response sent instead of the handler's. */
export interface Replacement {
  status: number
  headers: Readonly<Record<string, string | string[]>>
  body?: Buffer | undefined
}

/** What to do with it, decided by the caller's `onHead`. */
export interface HeadPlan {
  /** Send this instead, and drop whatever the handler writes after (a 304, a stored entry). */
  replace?: Replacement | undefined
  /** Keep a copy of the body (up to the byte limit); with `replace`, only a whole body. */
  capture: boolean
  /** Headers to add to the handler's response (the cache's status header, a computed ETag). */
  extraHeaders?: Readonly<Record<string, string>>
  /** Headers (lower-case names) to keep from the client: those meant for the cache alone. */
  omitHeaders?: readonly string[]
  /** Where the body goes besides this client (a shared generation's readers), when captured. */
  sink?: BodySink | undefined
}

/** A consumer of the body besides the client: the generation others read. */
export interface BodySink {
  /** Bytes of the body as they are written, copied (the handler may reuse its buffer). */
  appended(bytes: Buffer): void
  /** The handler ended the body (called once, whether its client is still there or not). */
  ended(): void
  /** True while others read the body: their pace is the handler's then, not the client's. */
  readonly wanted: boolean
}

/** What the tee saw. */
export interface TeeResult {
  /** The copied body: every byte written, or undefined when not captured or over the limit. */
  body(): Buffer | undefined
  /** Sends `replacement` instead of anything the handler writes (its headers must not be sent yet). */
  replace(replacement: Replacement): void
}

type Chunk = string | Uint8Array
type Callback = (err?: Error | null) => void
type Original = (...args: unknown[]) => ServerResponse & boolean

/**
 * Starts watching `res`; call before the handler runs. `onOverflow` is called when a body being
 * copied outgrows `maxBytes` (the copy stops there; the response goes on).
 */
export function teeResponse(
  res: ServerResponse,
  onHead: (head: Head) => HeadPlan,
  maxBytes: number,
  onOverflow?: () => void,
  bodyless = false,
): TeeResult {
  // The originals, called with the arguments exactly as the handler gave them.
  const { writeHead, write, end, flushHeaders } = res as unknown as Record<
    'writeHead' | 'write' | 'end' | 'flushHeaders',
    Original
  >
  let plan: HeadPlan | undefined
  let replaced = false
  // True while our own call to Node's end() runs: HTTP/2's compatibility end(data) calls
  // this.write(data), whose bytes the end() wrapper already counted (Node 20 lib/internal/http2/
  // compat.js). Those writes go straight to Node, copied once, never dropped as a replacement's.
  let ending = false
  const endOnce = (args: ArrayLike<unknown>) => {
    ending = true
    try {
      end.apply(res, args as never)
    } finally {
      ending = false
    }
  }
  let copy: BodyCopy | undefined
  // The handler called end(): its body is complete (whether its client is still there or not).
  let ended = false
  const feed = (chunk: Chunk, encoding: BufferEncoding | undefined) => {
    // Not something Node can send either: Node's own write or end throws for it.
    if (encoding !== undefined && !Buffer.isEncoding(encoding)) return
    const view = copy?.append(chunk, encoding)
    const sink = plan?.sink
    if (sink && (view !== undefined || sink.wanted))
      sink.appended(view ?? Buffer.from(toBuffer(chunk, encoding) ?? ''))
  }
  // The chunk given to end() before any header went out: the whole body, encoded on demand.
  let last:
    { chunk: Chunk; encoding: BufferEncoding | undefined; bytes?: Buffer | undefined } | undefined
  const wholeBody = () => (last ? (last.bytes ??= toBuffer(last.chunk, last.encoding)) : undefined)

  const decide = (status: number, given: unknown): HeadPlan => {
    const headers = finalHeaders(res, given)
    const length = () => contentLength(headers) ?? wholeBody()?.length
    plan = onHead({ status, headers, wholeBody, length })
    // Sized exactly when the length is known (Content-Length, or a whole body given to end()):
    // one allocation per stored body, none freed again, which keeps the allocator's slack low.
    if (plan.capture) copy = new BodyCopy(length(), maxBytes, onOverflow)
    if (plan.replace) replace(plan.replace)
    return plan
  }
  const replace = (replacement: Replacement) => {
    replaced = true
    for (const name of res.getHeaderNames()) res.removeHeader(name)
    writeHead.call(res, replacement.status, replacement.headers)
    endOnce([replacement.body])
  }
  // Before handing over to Node with no header sent: decide, as Node is about to send them.
  const decideImplicitly = () =>
    res.headersSent || plan !== undefined || decide(res.statusCode, undefined)

  const teeWriteHead = function (
    this: ServerResponse,
    statusCode: number,
    reason?: unknown,
    headersArg?: unknown,
  ): ServerResponse {
    // Node throws on a second writeHead or a bad status; let it, with its own error.
    if (replaced || res.headersSent || !Number.isInteger(Number(statusCode)))
      return writeHead.apply(res, arguments as never)
    const given = typeof reason === 'string' ? headersArg : reason
    const {
      replace: replacement,
      extraHeaders = {},
      omitHeaders = [],
    } = plan ?? decide(Number(statusCode), given)
    if (replacement) return res
    const headers = withHeaders(res, without(res, given, omitHeaders), extraHeaders)
    if (typeof reason === 'string') return writeHead.call(res, statusCode, reason, headers)
    return writeHead.call(res, statusCode, headers)
  } as ServerResponse['writeHead']

  const teeWrite = function (
    this: ServerResponse,
    chunk: Chunk,
    encoding?: BufferEncoding | Callback,
    cb?: Callback,
  ): boolean {
    if (ending) return write.apply(res, arguments as never)
    if (!replaced) decideImplicitly()
    const enc = typeof encoding === 'string' ? encoding : undefined
    if (replaced) {
      // After a 304 to this client, the body others wait for is still copied, not sent.
      if (!ended && plan?.capture) feed(chunk, enc)
      return dropped(typeof encoding === 'function' ? encoding : cb)
    }
    // Bytes written after end() never go out (Node reports the error): they are not copied.
    const sendable = !res.writableEnded
    if (bodyless) {
      // A HEAD client: the body is for the cache alone (HTTP/2 would fail writes after HEADERS).
      if (sendable) feed(chunk, enc)
      if (!res.headersSent) flushHeaders.call(res)
      return dropped(typeof encoding === 'function' ? encoding : cb)
    }
    const ok = write.apply(res, arguments as never)
    if (sendable) feed(chunk, enc)
    // While others read the body, their pace is the handler's, not this client's alone.
    return ok || plan?.sink?.wanted === true
  } as ServerResponse['write']

  const teeEnd = function (
    this: ServerResponse,
    chunk?: Chunk | Callback,
    encoding?: BufferEncoding | Callback,
    cb?: Callback,
  ): ServerResponse {
    const callback = [chunk, encoding, cb].find((arg) => typeof arg === 'function') as
      Callback | undefined
    const data = typeof chunk === 'function' ? undefined : chunk
    const enc = typeof encoding === 'string' ? encoding : undefined
    const sendable = data != null && !ended && (!res.writableEnded || replaced)
    // The whole body is known before the headers: let onHead see it (to compute an ETag).
    if (sendable && !res.headersSent) last = { chunk: data, encoding: enc }
    const wasReplaced = replaced
    if (!replaced) decideImplicitly()
    // A replacement still keeps a copy of the body, when the plan asked for one.
    if (sendable && (!wasReplaced || plan?.capture)) feed(last?.bytes ?? data, enc)
    const first = !ended
    ended = true
    if (replaced) dropped(callback)
    else endOnce(bodyless ? [callback] : arguments)
    if (first) plan?.sink?.ended()
    return res
  } as ServerResponse['end']

  const teeFlushHeaders = function (this: ServerResponse): void {
    if (!replaced) decideImplicitly()
    if (!replaced) flushHeaders.call(res)
  }

  // Installed together, once each wrapper exists, from locals rather than as function literals
  // stored straight onto the response: with the literals stored in place, V8 kept every miss's
  // objects through young-generation collections on Node 20 (3 MB surviving each scavenge instead
  // of 0.2 MB, a miss's CPU doubled; bench/README.md, "GC"). Not understood beyond that
  // measurement: keep this shape, and watch the bench's `GC µs/req` column when changing it.
  res.writeHead = teeWriteHead
  res.write = teeWrite
  res.end = teeEnd
  res.flushHeaders = teeFlushHeaders

  return {
    body: () => copy?.bytes(),
    replace,
  }
}

/** Write callbacks of dropped writes still run, as Node runs them for a body-less response. */
function dropped(cb: Callback | undefined): true {
  if (cb) process.nextTick(cb)
  return true
}

/**
 * The headers Node will send: those set with setHeader, merged with those given to writeHead the
 * way Node merges them. With headers already set, each given pair is set in turn (the last value
 * of a name wins); with none set, Node sends the given object or flat `[name, value, ...]` array
 * as is, repeated names included (Node 20 `ServerResponse.prototype.writeHead`).
 */
function finalHeaders(res: ServerResponse, given: unknown): HeaderRecord {
  // getHeaders() returns a copy of its own (null-prototype, http and http2 alike): its values
  // are made strings in place rather than copied once more (a keyed store per header per miss).
  const headers = res.getHeaders() as Record<string, unknown>
  let sentAsGiven = true
  for (const name in headers) {
    const value = headers[name]
    if (typeof value !== 'string') headers[name] = normalize(value)
    sentAsGiven = false
  }
  const put = (name: unknown, value: unknown) => {
    if (!name || value === undefined) return
    const lower = String(name).toLowerCase()
    const previous = Object.hasOwn(headers, lower) ? headers[lower] : undefined
    setOwn(
      headers,
      lower,
      sentAsGiven && previous !== undefined
        ? [previous, normalize(value)].flat()
        : normalize(value),
    )
  }
  if (Array.isArray(given))
    for (let i = 0; i + 1 < given.length; i += 2) put(given[i], given[i + 1])
  else if (given !== null && typeof given === 'object')
    for (const name of Object.keys(given)) put(name, (given as Record<string, unknown>)[name])
  return headers as HeaderRecord
}

/**
 * The handler's writeHead headers plus the cache's own, keeping Node's choice of path: adding a
 * header with setHeader would switch a given flat array from "sent as is" to "merged".
 */
function withHeaders(
  res: ServerResponse,
  given: unknown,
  extra: Readonly<Record<string, string>>,
): unknown {
  const names = Object.keys(extra)
  if (names.length === 0) return given
  if (Array.isArray(given)) return [...given, ...names.flatMap((name) => [name, extra[name]])]
  if (given !== null && typeof given === 'object')
    return merged(given as Record<string, unknown>, extra)
  for (const name of names) res.setHeader(name, extra[name] as string)
  return given
}

/** The handler's writeHead headers, and those it set, without the names in `omit`. */
function without(res: ServerResponse, given: unknown, omit: readonly string[]): unknown {
  if (omit.length === 0) return given
  for (const name of omit) res.removeHeader(name)
  const omitted = (name: unknown) => omit.includes(String(name).toLowerCase())
  if (Array.isArray(given)) return given.filter((_, i) => !omitted(given[i - (i % 2)]))
  if (typeof given !== 'object' || given === null) return given
  return Object.fromEntries(Object.entries(given).filter(([name]) => !omitted(name)))
}

function normalize(value: unknown): string | string[] {
  return Array.isArray(value) ? value.map(String) : String(value)
}

/** The Content-Length declared, when it is one well-formed number. */
function contentLength(headers: HeaderRecord): number | undefined {
  const value = headers['content-length']
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined
}

function toBuffer(chunk: Chunk, encoding: BufferEncoding | undefined): Buffer | undefined {
  try {
    return typeof chunk === 'string'
      ? Buffer.from(chunk, encoding)
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  } catch {
    // Not something Node can send either: Node's own end() reports it.
    return undefined
  }
}

/**
 * A copy of the body, in one buffer that grows by doubling (linear in the body size), sized
 * exactly up front when Content-Length is known. Chunks are copied as they are written: a
 * handler may reuse its buffer once `write()` returns.
 */
class BodyCopy {
  private buffer: Buffer
  private length = 0
  private overflowed = false

  constructor(
    expected: number | undefined,
    private readonly max: number,
    private readonly onOverflow: (() => void) | undefined,
  ) {
    this.buffer = Buffer.allocUnsafeSlow(
      expected !== undefined && expected <= max ? expected : Math.min(16 * 1024, max),
    )
  }

  /** Copies a chunk; returns the copy (a view of the buffer), or undefined once over the limit. */
  append(chunk: Chunk, encoding: BufferEncoding | undefined): Buffer | undefined {
    if (this.overflowed) return undefined
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.byteLength
    if (this.length + size > this.max) {
      // Too large to store: stop copying, keep streaming.
      this.overflowed = true
      this.buffer = Buffer.alloc(0)
      this.onOverflow?.()
      return undefined
    }
    if (this.length + size > this.buffer.length) {
      const grown = Buffer.allocUnsafeSlow(
        Math.min(this.max, Math.max(this.length + size, this.buffer.length * 2)),
      )
      this.buffer.copy(grown, 0, 0, this.length)
      this.buffer = grown
    }
    const start = this.length
    if (typeof chunk === 'string') this.length += this.buffer.write(chunk, this.length, encoding)
    else {
      this.buffer.set(chunk, this.length)
      this.length += size
    }
    return this.buffer.subarray(start, this.length)
  }

  /** The bytes, in a buffer of exactly their size, so a stored entry holds no slack. */
  bytes(): Buffer | undefined {
    if (this.overflowed) return undefined
    if (this.length === this.buffer.length) return this.buffer
    const exact = Buffer.allocUnsafeSlow(this.length)
    this.buffer.copy(exact, 0, 0, this.length)
    return exact
  }
}

/**
 * Keeps `'finish'` and `'close'` from the handler while `holds()` says others still want the body
 * it writes: the requests reading it as it streams, or the store behind a HEAD run as the cache's
 * own GET, or a client answered 304 while others wait for the body. Such a response finishes
 * before the handler does (HTTP/2 ends a stream with the headers of a HEAD or a 304), and a pipe()
 * unpipes on either event: a client done or vanished must stop nobody else. Released, in the
 * order Node emitted them, by `release()` (the body is complete, or the generation over), or
 * after `stallMs` without a byte (`progress()` counts one): a handler that waits for 'close'
 * before it ends learns of it then.
 */
export function holdClose(
  res: ServerResponse,
  holds: () => boolean,
  stallMs: number,
): { release(): void; progress(): void } {
  const emit = res.emit
  const held: [string, unknown[]][] = []
  let holding = true
  let stall: NodeJS.Timeout | undefined
  const release = () => {
    holding = false
    clearTimeout(stall)
    for (const [event, args] of held.splice(0)) emit.call(res, event, ...args)
  }
  const holdingEmit = function (
    this: ServerResponse,
    event: string | symbol,
    ...args: unknown[]
  ): boolean {
    if ((event !== 'close' && event !== 'finish') || !holding || !holds())
      return emit.call(this, event, ...args)
    held.push([event, args])
    stall ??= setTimeout(release, stallMs).unref()
    return true
  } as ServerResponse['emit']
  // Stored from a local, not as a literal in place: see teeResponse.
  res.emit = holdingEmit
  return { release, progress: () => stall?.refresh() }
}

/** Resolves true when the response finished (every byte handed to the OS), false when it was cut. */
export function completion(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    res.once('finish', () => resolve(true))
    res.once('close', () => resolve(res.writableFinished))
  })
}
