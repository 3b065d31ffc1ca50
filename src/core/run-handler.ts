/**
 * Calling the handler: what it writes goes through the tee; what it returns (a string, bytes, an
 * iterable) is written for it; what it throws is reported and answered as a Node server would.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AcceleratedResponse, Handler } from '../types.js'
import type { ErrorHandler, ErrorOp } from './report.js'
import { describe } from '../lib/describe.js'
import { answersNotModified } from '../http/conditional.js'
import { isBody, writeBody, type Demand } from './body.js'

/** A plain-text 500, or the only-if-cached 504 with the cache's status headers given. */
export function sendStatus(res: ServerResponse, status: 500 | 504, headers: object = {}): void {
  const body = status === 500 ? 'Internal Server Error\n' : 'Gateway Timeout\n'
  const type = 'text/plain; charset=utf-8'
  res.writeHead(status, { 'content-type': type, 'content-length': String(body.length), ...headers })
  res.end(body)
}

/** Runs `handler` for a request; resolves false when it failed. */
export type HandlerRun = (
  req: IncomingMessage,
  res: ServerResponse,
  fallback?: () => boolean,
  op?: ErrorOp,
  demand?: Demand,
) => Promise<boolean>

/**
 * A runner of `handler`. A failure is reported as `op`; then `fallback` may answer instead
 * (stale-if-error); else a 500 while nothing was sent, a cut connection once it was.
 */
export function handlerRunner(handler: Handler, report: ErrorHandler): HandlerRun {
  return async (req, res, fallback, op = 'handler', demand) => {
    try {
      const result = await handler(req, res as AcceleratedResponse)
      if (result === undefined || result === null || result === res) return true
      if (res.writableEnded) return true
      if (!isBody(result)) {
        const expected = 'a string, Uint8Array, Iterable or AsyncIterable'
        throw new TypeError(`expected the handler to return ${expected}, got ${describe(result)}`)
      }
      const notModified = () => answersNotModified(req.headers, res.statusCode, res.getHeaders())
      await writeBody(res, result, demand ?? { notModified, shared: () => false })
      return true
    } catch (err) {
      report(err as Error, { op })
      if (fallback?.()) return false
      // Like a Node server: a 500 while nothing was sent, a cut connection once it was.
      if (res.headersSent) res.destroy()
      else {
        for (const name of res.getHeaderNames()) res.removeHeader(name)
        sendStatus(res, 500)
      }
      return false
    }
  }
}
