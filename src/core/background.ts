/**
 * Background refreshes: running the handler when no client is waiting (stale-while-revalidate,
 * soft invalidation). The handler gets a real `IncomingMessage` and `ServerResponse`, on a socket
 * that discards what is written: what it writes goes to the tee, and to the store, only.
 */
import { IncomingMessage, ServerResponse, type IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { Duplex, type DuplexOptions } from 'node:stream'

/** A request/response pair with no client behind it. */
export interface Exchange {
  req: IncomingMessage
  res: ServerResponse
  /** Ends it early (on close): the handler's next writes fail as on a dropped connection. */
  abort(): void
}

/** Requests made by the cache itself carry this symbol set to true. */
export const BACKGROUND = Symbol.for('node-accelerator.background')

/**
 * A GET for the same URL as `from`, with `headers` (the client's, with the cache's validators),
 * on a socket that reports the client's addresses (handlers may log them) and swallows output.
 */
export function backgroundExchange(from: IncomingMessage, headers: IncomingHttpHeaders): Exchange {
  const socket = discardingSocket()
  Object.assign(socket, {
    remoteAddress: from.socket?.remoteAddress,
    remotePort: from.socket?.remotePort,
    encrypted: (from.socket as { encrypted?: boolean } | undefined)?.encrypted,
    setTimeout: () => socket,
    setNoDelay: () => socket,
    setKeepAlive: () => socket,
  })
  const req = new IncomingMessage(socket as unknown as Socket)
  // Both views of the headers, as a parsed request has them: a proxying handler sends rawHeaders.
  // (A request's repeated headers arrive joined in `headers`: one value each.)
  const rawHeaders = Object.entries(headers).flatMap(([name, value]) => [name, String(value)])
  Object.assign(req, {
    method: 'GET',
    url: from.url,
    headers,
    rawHeaders,
    httpVersion: '1.1',
    httpVersionMajor: 1,
    httpVersionMinor: 1,
    complete: true,
    [BACKGROUND]: true,
  })
  req.push(null)
  const res = new ServerResponse(req)
  res.assignSocket(socket as unknown as Socket)
  // Free the socket once the response is done, as the server does for a real one.
  res.once('finish', () => socket.destroy())
  return { req, res, abort: () => socket.destroy() }
}

/**
 * A socket that swallows what Node writes to it, for a request no client sent (a background
 * refresh, the fetch adapter's exchanges). Nothing reads from it: a request's end is pushed, not
 * parsed off the wire. (Node's Duplex honours `readable: false`; @types/node 20 does not list it.)
 */
export function discardingSocket(): Duplex {
  return new Duplex({
    readable: false,
    write(_chunk: unknown, _encoding: unknown, done: () => void) {
      done()
    },
  } as DuplexOptions)
}
