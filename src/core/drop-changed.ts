/**
 * RFC 9111 §4.4: a non-error response to an unsafe method invalidates what it changed. The drop
 * starts once the status is known, and the response's end waits for it: a client that reads after
 * its write completed never gets the old page.
 */
import type { ServerResponse } from 'node:http'
import { teeResponse } from './tee.js'

/**
 * Runs `run` with `res` watched: `drop` gets the response's headers (for Location and
 * Content-Location) when its status is below 400; `res.end()` goes out once the drop settled.
 * `drop` must not reject (its failures are the caller's to report).
 */
export function dropChanged(
  res: ServerResponse,
  run: () => unknown,
  drop: (headers: Record<string, unknown>) => Promise<unknown>,
): void {
  let dropping: Promise<unknown> | undefined
  const start = (status: number, headers: Record<string, unknown>) => {
    if (dropping !== undefined || status >= 400) return
    dropping = drop(headers)
  }
  teeResponse(res, (head) => (start(head.status, head.headers), { capture: false }), 1)
  const end = res.end
  res.end = function (this: ServerResponse, ...args: unknown[]) {
    if (!res.headersSent) start(res.statusCode, res.getHeaders())
    void Promise.resolve(dropping).then(() => end.apply(res, args as never))
    return res
  } as ServerResponse['end']
  void run()
}
