/**
 * The purge API of the proxy: `PURGE /any/path` drops that URL on the request's Host (`PURGE
 * http://host/path` on that host), and `POST /.accelerator/purge` with `{"tags": [...], "urls":
 * [...], "soft": bool}` drops by tag and by URL (a path on the request's Host, an absolute URL on
 * its own). Only requests with `Authorization: Bearer <token>` are served; any other gets a plain
 * 401, never a hint of which part was wrong. Input the accelerator refuses (a tag that is not
 * well-formed Unicode, a URL that does not parse, a Host the key refuses) is a 400 saying why;
 * only a failing store is a 500.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Accelerator } from '../index.js'
import { isTag } from '../http/tags.js'
import { isWellFormed, splitAbsolute } from '../http/target.js'
import { describe } from '../lib/describe.js'

/** Where the JSON purge endpoint lives. */
export const PURGE_PATH = '/.accelerator/purge'
/** Purge requests are small: a body over this many bytes is refused. */
const MAX_BODY = 1024 * 1024

/**
 * Returns a function that answers purge requests and returns true, or returns false for any
 * other request (to be served as usual).
 */
export function purgeApi(
  app: Pick<Accelerator, 'invalidate' | 'invalidateTags'>,
  token: string,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  // (A token that is a string is never echoed: error messages end up in logs.)
  if (typeof token !== 'string' || token === '') {
    const got = token === '' ? 'an empty string' : describe(token)
    const how = 'purgeApi(app, process.env.PURGE_TOKEN), a long random secret'
    throw new TypeError(`expected purgeApi's token to be a non-empty string (${how}), got ${got}`)
  }
  const expected = digest(token)
  return (req, res) => {
    // http.Server always sets req.url; an absolute-form target counts by its path.
    const path = (splitAbsolute(req.url!)?.path ?? req.url!).split('?')[0]
    const isPurge = req.method === 'PURGE' || (req.method === 'POST' && path === PURGE_PATH)
    if (!isPurge) return false
    if (!authorized(req.headers.authorization, expected)) {
      reply(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer' })
      return true
    }
    const host = req.headers.host ?? 'localhost'
    const work = req.method === 'PURGE' ? purgeUrl(app, req.url!, host) : purgeBody(app, req, host)
    work.then(
      (counts) => reply(res, 200, counts),
      // The accelerator refuses input it cannot key with a TypeError: the client's mistake.
      (err: Error & { status?: number }) =>
        reply(res, err.status ?? (err instanceof TypeError ? 400 : 500), { error: err.message }),
    )
    return true
  }
}

/** A constant-time comparison: both sides hashed first, so their lengths match whatever was sent. */
function authorized(header: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '')
  return timingSafeEqual(digest(match?.[1]?.trim() ?? ''), expected) && match !== null
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

async function purgeUrl(
  app: Pick<Accelerator, 'invalidate'>,
  url: string,
  host: string,
): Promise<{ purged: number }> {
  return { purged: await app.invalidate(url, { host }) }
}

async function purgeBody(
  app: Pick<Accelerator, 'invalidate' | 'invalidateTags'>,
  req: IncomingMessage,
  host: string,
): Promise<{ tags: number; urls: number }> {
  const {
    tags = [],
    urls = [],
    soft = false,
  } = parse(await readBody(req)) as { tags?: unknown; urls?: unknown; soft?: unknown }
  if (!isStrings(tags) || !isStrings(urls) || typeof soft !== 'boolean') {
    throw badRequest('expected {"tags": [strings], "urls": [strings], "soft": boolean}')
  }
  // Checked before anything is dropped; URLs are checked by invalidate(), one by one.
  const bad = tags.findIndex((tag) => !isTag(tag))
  if (bad !== -1)
    throw badRequest(
      `tags[${bad}] is ${describe(tags[bad])}: ${isWellFormed(tags[bad]!) ? 'tags of the form "\\u0000name\\u0000..." are reserved' : 'not well-formed Unicode (a lone surrogate)'}`,
    )
  const tagged = tags.length > 0 ? await app.invalidateTags(tags, { soft }) : 0
  let dropped = 0
  for (const [i, url] of urls.entries()) {
    dropped += await app.invalidate(url, { host }).catch((err: Error) => {
      throw err instanceof TypeError ? badRequest(`urls[${i}]: ${err.message}`) : err
    })
  }
  return { tags: tagged, urls: dropped }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY) throw Object.assign(new Error('purge body too large'), { status: 413 })
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function parse(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text)
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value
  } catch {
    // reported below, like any other body that is not an object
  }
  throw badRequest('expected a JSON object')
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}

function badRequest(message: string): Error {
  return Object.assign(new Error(message), { status: 400 })
}

function reply(
  res: ServerResponse,
  status: number,
  body: object,
  headers: Record<string, string> = {},
): void {
  const json = JSON.stringify(body) + '\n'
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(json)),
    'cache-control': 'no-store',
    ...headers,
  })
  res.end(json)
}
