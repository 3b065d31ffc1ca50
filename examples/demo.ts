/**
 * The node-accelerator demo: `npm start`, then open http://localhost:3000 (`PORT` to change).
 * `REDIS_URL=redis://127.0.0.1:6379 npm start` runs it on Redis: start a second one with
 * `PORT=3001` and the two processes share one cache, and one invalidation.
 *
 * One plain `(req, res)` handler wrapped by `accelerate()`. Nothing is stored unless the handler
 * opts in with `res.cacheFor`, so each route below says exactly what it wants from the cache.
 * The dashboard (`/`) is itself cached: reload it and its own load turns from miss to hit.
 * `startDemo()` is what the tests start (on a free port, closed after); run as a program, this
 * file reads PORT and REDIS_URL and closes on SIGINT/SIGTERM.
 */
import http from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { accelerate, MemoryStore } from '../src/index.js'
import type { AcceleratedResponse, Accelerator, CacheStore } from '../src/index.js'
import { RedisStore } from '../stores/redis.js'
import { Activity } from './activity.js'
import { dashboard, esc, page } from './dashboard.js'

export interface DemoOptions {
  /** 0 for a free one. @default 3000 */
  port?: number
  /** A Redis shared by demo processes; the in-memory store when not given. */
  redisUrl?: string | undefined
  /** How long to wait for Redis to answer before giving up, in ms. @default 3000 */
  redisWaitMs?: number
  /** Where the handler says it ran (a hit never does). @default console.log */
  log?: (line: string) => void
}

export interface Demo {
  /** `http://localhost:<port>` */
  url: string
  port: number
  app: Accelerator
  /** Stops serving (open dashboards' streams included), then closes the cache and its store. */
  close(): Promise<void>
}

/** The demo's "database": editing a post bumps its version. */
interface Post {
  title: string
  version: number
}

// A real app derives the ETag from its data's version, without rendering anything.
const REPORT_ETAG = '"report-v3"'
/** How long the dashboard takes to render on a miss: long enough to see, short enough to wait. */
const DASHBOARD_MS = 300

/** Starts the demo on `port`; resolves once it listens. */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const { port = 3000, redisUrl, redisWaitMs = 3000, log = console.log } = options
  let store: CacheStore = new MemoryStore()
  if (redisUrl) {
    // 1 s, not the 100 ms default: beside a browser on a laptop, a slow moment is not an outage,
    // and a command given up on reads as a miss that nothing explains on the page.
    const redis = new RedisStore({ url: redisUrl, prefix: 'demo:', timeoutMs: 1000 })
    await redis.ready(redisWaitMs).catch(async (err: Error) => {
      await redis.close()
      throw new Error(
        `Redis at ${redisUrl} is not answering (${err.message}): start it, or run without REDIS_URL`,
      )
    })
    store = redis
  }
  const server = http.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, resolve)
  }).catch(async (err: Error) => {
    await store.close()
    throw new Error(`Cannot listen on port ${port}: ${err.message} (set PORT to use another)`)
  })
  const actual = (server.address() as AddressInfo).port
  const proc = `:${actual} (pid ${process.pid})`
  const posts = new Map<string, Post>([
    ['1', { title: 'Hello, cache', version: 1 }],
    ['2', { title: 'Tags drop what changed', version: 1 }],
  ])
  const app: Accelerator = accelerate(
    (req, res) => handle(req, res, { proc, posts, redisUrl, port: actual, log }),
    {
      store,
      // One site, whatever port a process listens on: two demo processes share their entries.
      key: (req) => req.url,
    },
  )
  const activity = new Activity(app, proc, redisUrl, log)
  await activity.start()
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // Node's server always sets req.url.
    const { pathname, searchParams } = new URL(req.url!, 'http://localhost')
    // The dashboard's own plumbing stays outside the cache, so it never counts in its counters.
    if (pathname === '/_demo/events') return activity.stream(res)
    if (pathname === '/_demo/purge' && req.method === 'POST')
      return void purge(app, activity, searchParams, res)
    if (pathname === '/stats') return json(res, 200, activity.stats())
    if (pathname === '/posts' && req.method === 'POST')
      return void edit(app, activity, posts, searchParams, res)
    activity.track(req, res, pathname === '/')
    app(req, res)
  })
  return {
    url: `http://localhost:${actual}`,
    port: actual,
    app,
    close: async () => {
      // Open dashboards' event streams included.
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      // Waits for responses still being stored, then closes the store.
      await app.close()
      activity.close()
      await store.close()
    },
  }
}

interface Context {
  proc: string
  posts: Map<string, Post>
  redisUrl: string | undefined
  port: number
  log: (line: string) => void
}

async function handle(req: IncomingMessage, res: AcceleratedResponse, context: Context) {
  const { proc, posts, redisUrl, port, log } = context
  // Hits never reach this line: the log shows every time the handler really ran.
  log(`handler ran: ${req.method} ${req.url}`)
  const { pathname } = new URL(req.url!, 'http://localhost')
  const started = performance.now()
  // Stored with the body: a hit in another process still names the one that rendered it.
  res.setHeader('x-rendered-by', proc)

  if (pathname === '/') {
    await sleep(DASHBOARD_MS) // a page that takes a while to build
    res.cacheFor = 30
    res.tags = ['page']
    res.setHeader('content-type', 'text/html; charset=utf-8')
    return dashboard({ proc, redisUrl, port, renderedAt: clock(), renderMs: elapsed(started) })
  }

  if (pathname === '/slow') {
    await sleep(1000) // a slow query, say
    res.cacheFor = 30
    res.setHeader('content-type', 'text/html; charset=utf-8')
    return page(
      'A slow page',
      `<p>Generated at <b>${clock()}</b> by ${esc(proc)}, which took <b>${elapsed(started)} ms</b>.
      For 30 s it comes from the cache, instantly, with the same time.</p>`,
    )
  }

  const id = /^\/posts\/(\d+)$/.exec(pathname)?.[1]
  const post = posts.get(id ?? '')
  if (post) {
    await sleep(200)
    res.cacheFor = 60
    // Tags name what the page was built from: one post, and the list of all posts.
    res.tags = [`post:${id}`, 'posts']
    res.setHeader('content-type', 'text/html; charset=utf-8')
    return page(
      post.title,
      `<p>Version <b>${post.version}</b>, rendered by ${esc(proc)} at ${clock()}
      in ${elapsed(started)} ms. Tags: <code>post:${id}</code>, <code>posts</code>.</p>`,
    )
  }

  if (pathname === '/report') {
    res.cacheFor = 10
    res.setHeader('etag', REPORT_ETAG)
    res.setHeader('content-type', 'text/html; charset=utf-8')
    // Returned, not written: the accelerator compares If-None-Match with the ETag first and
    // answers 304 without starting the generator, so the expensive part below never runs.
    return (async function* () {
      log('generating report… (the expensive part is running)')
      yield page('Quarterly report', '')
      for (const quarter of ['Q1', 'Q2', 'Q3', 'Q4']) {
        await sleep(250)
        yield `<p>${quarter}: ${Math.floor(Math.random() * 1000)} widgets</p>\n`
      }
      yield `<p>Generated at ${clock()}, ETag ${esc(REPORT_ETAG)}.</p>`
    })()
  }

  res.statusCode = 404
  res.setHeader('content-type', 'text/html; charset=utf-8')
  return page('Not found', '<p>Try the <a href="/">dashboard</a>.</p>')
}

/**
 * `POST /_demo/purge?tag=posts` (`&soft=1` to mark stale instead), or `?url=/slow`: what the
 * dashboard's buttons call. Answers with what it did, and logs it on the dashboard.
 */
async function purge(
  app: Accelerator,
  activity: Activity,
  params: URLSearchParams,
  res: ServerResponse,
) {
  const tag = params.get('tag')
  const url = params.get('url')
  const soft = params.get('soft') === '1'
  let what: string
  let entries: number
  if (tag) {
    what = `invalidateTags(['${tag}']${soft ? ', { soft: true }' : ''})`
    entries = await app.invalidateTags([tag], { soft })
  } else if (url) {
    what = `invalidate('${url}')`
    entries = await app.invalidate(url)
  } else
    return json(res, 400, {
      error: 'POST /_demo/purge needs ?tag=<tag> (and &soft=1) or ?url=<path>',
    })
  activity.purged(what, entries)
  json(res, 200, { what, entries })
}

/** `POST /posts?id=1`: the data changed, so drop every page built from it. */
async function edit(
  app: Accelerator,
  activity: Activity,
  posts: Map<string, Post>,
  params: URLSearchParams,
  res: ServerResponse,
) {
  const id = params.get('id') ?? ''
  const post = posts.get(id)
  if (!post)
    return json(res, 404, {
      error: `POST /posts?id=<id>: no post ${JSON.stringify(id)} (try 1 or 2)`,
    })
  post.version++
  const what = `edit post ${id}: invalidateTags(['post:${id}'])`
  const entries = await app.invalidateTags([`post:${id}`])
  activity.purged(what, entries)
  json(res, 200, { what, entries, version: post.version })
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(JSON.stringify(body, null, 2) + '\n')
}

const clock = () => new Date().toLocaleTimeString('en-GB')
const elapsed = (since: number) => Math.round(performance.now() - since)

/** What `npm start` prints: where the demo is, and what to try. */
export function banner(
  { url, port }: Pick<Demo, 'url' | 'port'>,
  redisUrl: string | undefined,
): string {
  const lines = [
    `node-accelerator demo on ${url} (${redisUrl ? `Redis store at ${redisUrl}` : 'in-memory store'})`,
    'Open it in a browser: reload it, press its buttons, and watch the counters.',
  ]
  if (redisUrl)
    lines.push(
      `Two processes, one cache: run \`PORT=${port + 1} REDIS_URL=${redisUrl} npm start\` in another terminal.`,
    )
  const curl: Array<[string, string]> = [
    [`curl -si ${url}/posts/1`, 'twice: a miss, then a hit'],
    [`curl -s -X POST '${url}/posts?id=1'`, "edit post 1: invalidateTags(['post:1'])"],
    [
      `curl -s -X POST '${url}/_demo/purge?tag=posts&soft=1'`,
      'soft purge: served stale, then refreshed',
    ],
    [
      `curl -si -H 'If-None-Match: ${REPORT_ETAG}' ${url}/report`,
      '304: the report is never generated',
    ],
    [`curl -s ${url}/stats`, 'the counters as JSON'],
  ]
  const width = Math.max(...curl.map(([command]) => command.length))
  lines.push('', 'Or with curl (watch the Cache-Status header, and this log):')
  for (const [command, what] of curl) lines.push(`  ${command.padEnd(width)}  # ${what}`)
  return lines.join('\n')
}

/** `npm start`: PORT and REDIS_URL from the environment, closing on SIGINT and SIGTERM. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<Demo | undefined> {
  const redisUrl = env.REDIS_URL || undefined
  const demo = await startDemo({ port: Number(env.PORT ?? 3000), redisUrl }).catch((err: Error) => {
    console.error(err.message)
    process.exitCode = 1
  })
  if (!demo) return undefined
  console.log(banner(demo, redisUrl))
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.log(`\n${signal}: closing`)
      void demo.close().then(() => process.exit(0))
    })
  }
  return demo
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
