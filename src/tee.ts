/**
 * The tee: watches a response the handler writes, without delaying or reordering it, and keeps
 * a copy of its bytes when it is to be stored.
 *
 * `writeHead`, `write` and `end` are wrapped on the response object itself. Node routes every
 * other way of sending headers through `writeHead` (`write`, `end` and `flushHeaders` call
 * `_implicitHeader`, which calls `this.writeHead`), and `pipe()` calls `write`/`end`. The
 * decision of what to do with the response is taken once, in `writeHead`, when the status and
 * headers are final, so an unstorable response is never buffered at all.
 */
import type { ServerResponse } from 'node:http'
import { notModifiedHeaders } from './conditional.js'

/** Headers as a lower-case-keyed record of strings. */
export type HeaderRecord = Record<string, string | string[]>

/** The response as it is about to go out. */
export interface Head {
  status: number
  headers: HeaderRecord
  /** The whole body, when `end(chunk)` sends it before any header went out; else undefined. */
  wholeBody(): Buffer | undefined
}

/** What to do with it, decided by the caller's `onHead`. */
export interface HeadPlan {
  /** Answer `304 Not Modified` instead, and drop whatever the handler writes after. */
  notModified: boolean
  /** Keep a copy of the body (up to the byte limit); with `notModified`, only a whole body. */
  capture: boolean
  /** Headers to add to the response (the cache's status header, a computed ETag). */
  extraHeaders: Readonly<Record<string, string>>
}

/** What the tee saw, read once the response finished. */
export interface TeeResult {
  /** The status and headers as sent (the 304 replacement excepted), once headers went out. */
  readonly head: Head | undefined
  /** The copied body: every byte written, or undefined when not captured or over the limit. */
  body(): Buffer | undefined
}

type Chunk = string | Uint8Array
type Callback = (err?: Error | null) => void

/** Starts watching `res`. Call before the handler runs. */
export function teeResponse(res: ServerResponse, onHead: (head: Head) => HeadPlan, maxBytes: number): TeeResult {
  // The originals, called with the arguments exactly as the handler gave them.
  const { writeHead, write, end } = res as unknown as Record<'writeHead' | 'write' | 'end', (...args: unknown[]) => ServerResponse & boolean>
  let head: Head | undefined
  let notModified = false
  let copy: BodyCopy | undefined
  let ending = false
  // The chunk given to end() before any header went out: the whole body, encoded on demand.
  let last: { chunk: Chunk; encoding: BufferEncoding | undefined; bytes?: Buffer | undefined } | undefined
  const wholeBody = () => (last ? (last.bytes ??= toBuffer(last.chunk, last.encoding)) : undefined)

  res.writeHead = function (this: ServerResponse, statusCode: number, reason?: unknown, headersArg?: unknown): ServerResponse {
    // Node throws on a second writeHead or a bad status; let it, with its own error.
    if (res.headersSent || !Number.isInteger(Number(statusCode))) return writeHead.apply(res, arguments as never)
    const given = typeof reason === 'string' ? headersArg : reason
    head = { status: Number(statusCode), headers: finalHeaders(res, given), wholeBody }
    const plan = onHead(head)
    if (plan.capture) copy = new BodyCopy(contentLength(head.headers), maxBytes)
    if (plan.notModified) {
      notModified = true
      for (const name of res.getHeaderNames()) res.removeHeader(name)
      writeHead.call(res, 304, notModifiedHeaders({ ...head.headers, ...plan.extraHeaders }))
      // End now so the client and the socket are free at once; what the handler writes next
      // is dropped by the wrappers below (inside end(), Node is already ending).
      if (!ending) end.call(res)
      return res
    }
    if (typeof reason === 'string') return writeHead.call(res, statusCode, reason, withHeaders(res, given, plan.extraHeaders))
    return writeHead.call(res, statusCode, withHeaders(res, given, plan.extraHeaders))
  } as ServerResponse['writeHead']

  res.write = function (this: ServerResponse, chunk: Chunk, encoding?: BufferEncoding | Callback, cb?: Callback): boolean {
    if (notModified) return dropped(typeof encoding === 'function' ? encoding : cb)
    // Bytes written after end() never go out (Node reports the error): they are not copied.
    const sendable = !res.writableEnded
    const ok = write.apply(res, arguments as never)
    if (sendable) copy?.append(chunk, typeof encoding === 'string' ? encoding : undefined)
    return ok
  } as ServerResponse['write']

  res.end = function (this: ServerResponse, chunk?: Chunk | Callback, encoding?: BufferEncoding | Callback, cb?: Callback): ServerResponse {
    if (notModified) {
      dropped([chunk, encoding, cb].find((arg) => typeof arg === 'function') as Callback | undefined)
      return res
    }
    const data = typeof chunk === 'function' ? undefined : chunk
    const enc = typeof encoding === 'string' ? encoding : undefined
    const sendable = data != null && !res.writableEnded
    // The whole body is known before the headers: let onHead see it (to compute an ETag).
    if (sendable && !res.headersSent) last = { chunk: data, encoding: enc }
    ending = true
    try {
      end.apply(res, arguments as never)
    } finally {
      ending = false
    }
    // After a 304 decided inside this end(), only a whole body is copied (the plan asked for a
    // copy only then): the client gets no body, the store gets all of it.
    if (sendable) copy?.append(last?.bytes ?? data, enc)
    return res
  } as ServerResponse['end']

  return {
    get head() {
      return head
    },
    body: () => copy?.bytes(),
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
  const headers: HeaderRecord = {}
  const set = res.getHeaders()
  const sentAsGiven = res.getHeaderNames().length === 0
  for (const name in set) headers[name] = normalize(set[name])
  const put = (name: unknown, value: unknown) => {
    if (!name || value === undefined) return
    const lower = String(name).toLowerCase()
    const previous = headers[lower]
    if (sentAsGiven && previous !== undefined) headers[lower] = [previous, normalize(value)].flat()
    else headers[lower] = normalize(value)
  }
  if (Array.isArray(given)) for (let i = 0; i + 1 < given.length; i += 2) put(given[i], given[i + 1])
  else if (given !== null && typeof given === 'object') for (const name of Object.keys(given)) put(name, (given as Record<string, unknown>)[name])
  return headers
}

/**
 * The handler's writeHead headers plus the cache's own, keeping Node's choice of path: adding a
 * header with setHeader would switch a given flat array from "sent as is" to "merged".
 */
function withHeaders(res: ServerResponse, given: unknown, extra: Readonly<Record<string, string>>): unknown {
  const names = Object.keys(extra)
  if (names.length === 0) return given
  if (Array.isArray(given)) return [...given, ...names.flatMap((name) => [name, extra[name]])]
  if (given !== null && typeof given === 'object') return { ...given, ...extra }
  for (const name of names) res.setHeader(name, extra[name] as string)
  return given
}

function normalize(value: unknown): string | string[] {
  return Array.isArray(value) ? value.map(String) : String(value)
}

function contentLength(headers: HeaderRecord): number | undefined {
  const value = headers['content-length']
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined
}

function toBuffer(chunk: Chunk, encoding: BufferEncoding | undefined): Buffer | undefined {
  try {
    return typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
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
  ) {
    this.buffer = Buffer.allocUnsafeSlow(expected !== undefined && expected <= max ? expected : Math.min(16 * 1024, max))
  }

  append(chunk: Chunk, encoding: BufferEncoding | undefined): void {
    if (this.overflowed) return
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.byteLength
    if (this.length + size > this.max) {
      // Too large to store: stop copying, keep streaming.
      this.overflowed = true
      this.buffer = Buffer.alloc(0)
      return
    }
    if (this.length + size > this.buffer.length) {
      const grown = Buffer.allocUnsafeSlow(Math.min(this.max, Math.max(this.length + size, this.buffer.length * 2)))
      this.buffer.copy(grown, 0, 0, this.length)
      this.buffer = grown
    }
    if (typeof chunk === 'string') this.length += this.buffer.write(chunk, this.length, encoding)
    else {
      this.buffer.set(chunk, this.length)
      this.length += size
    }
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

/** Resolves true when the response finished (every byte handed to the OS), false when it was cut. */
export function completion(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    res.once('finish', () => resolve(true))
    res.once('close', () => resolve(res.writableFinished))
  })
}
