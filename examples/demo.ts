/**
 * The node-accelerator demo: `npm start`, then open http://localhost:3000 (`PORT` to change).
 * `REDIS_URL=redis://127.0.0.1:6379 npm start` runs it on Redis: start a second one with
 * `PORT=3001` and the two processes share one cache, and one invalidation.
 *
 * One plain `(req, res)` handler wrapped by `accelerate()`. Nothing is stored unless the handler
 * opts in with `res.cacheFor`, so each route below says exactly what it wants from the cache.
 */
import http from 'node:http'
import type { IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { accelerate, MemoryStore } from '../src/index.js'
import type { AcceleratedResponse, Accelerator, CacheStore } from '../src/index.js'
import { RedisStore } from '../stores/redis.js'

const port = Number(process.env.PORT ?? 3000)
const me = `process ${process.pid} on port ${port}`
const redisUrl = process.env.REDIS_URL
let store: CacheStore = new MemoryStore()
if (redisUrl) {
  const redis = new RedisStore({ url: redisUrl, prefix: 'demo:' })
  // Not waiting forever: with Redis down the demo still serves (every request a miss).
  await redis.ready(3000).catch((err: Error) => console.log(`Redis at ${redisUrl} is not answering (${err.message}); serving anyway, uncached until it is.`))
  store = redis
}

// The demo's "database": the edit forms bump a post's version.
const posts = new Map([
  ['1', { title: 'Hello, cache', version: 1, renders: 0 }],
  ['2', { title: 'Tags drop what changed', version: 1, renders: 0 }],
])
// A real app derives the ETag from its data's version, without rendering anything.
const REPORT_ETAG = '"report-v3"'

// What to try, printed on startup and shown on the index page ({host} is filled in).
const TRY: Array<[string, string]> = [
  ['Miss then hit: run twice. 1st takes ~1 s (fwd=miss; stored), 2nd is instant (hit; ttl=N, and an Age header)',
    `curl -s -D - -o /dev/null -w 'took %{time_total}s\\n' {host}/slow`],
  ['A tagged page: run twice, its render counter only moves on a miss', `curl -si {host}/posts/1`],
  ['Edit post 1 (a POST, never cached): bumps it and calls invalidateTags(["post:1"])', `curl -si -X POST {host}/posts/1/edit`],
  ['...then /posts/1 is a miss again and its counter moves (post 2 keeps its entry)', `curl -si {host}/posts/1`],
  ['Drop every post at once by the tag both carry', `curl -si -X POST '{host}/invalidate?tag=posts'`],
  ['Lazy body, before /report is cached: 304 with fwd=miss, and NO "generating report…" in the server log',
    `curl -si -H 'If-None-Match: "report-v3"' {host}/report`],
  ['A plain GET runs the generator (the log line appears) and streams; repeat the 304 for a hit', `curl -si {host}/report`],
  ['The counters: hits, misses, notModified, stores, entries, bytes', `curl -s {host}/stats`],
]
const tryText = (host: string) => TRY.map(([what, cmd]) => `# ${what}\n${cmd.replaceAll('{host}', host)}`).join('\n\n')

const app: Accelerator = accelerate(async (req, res) => {
  // Hits never reach this line: the log shows every time the handler really ran.
  console.log(`handler ran: ${req.method} ${req.url}`)
  const { pathname, searchParams } = new URL(req.url ?? '/', 'http://localhost')
  const started = performance.now()
  const host = req.headers.host ?? `localhost:${port}`
  if (req.method === 'POST') return post(req, res, pathname, searchParams, host)

  if (pathname === '/') {
    // Not cached (no cacheFor): its banner says fwd=miss, showing that caching is opt-in.
    const shared = redisUrl
      ? `<p>On Redis (${esc(redisUrl)}): start another demo with <code>PORT=${port + 1} REDIS_URL=${esc(redisUrl)} npm start</code>.
         A post rendered here is a hit there (its page names the process that rendered it), and an edit there drops it here.</p>`
      : ''
    const routes = [
      ['/slow', 'sleeps 1 s, then is cached for 30 s: the second load is instant, the generated-at time stays'],
      ['/posts/1', 'tagged post:1 and posts, cached 60 s; edit it to invalidate its tag'],
      ['/posts/2', 'the same, tagged post:2 and posts'],
      ['/report', 'a lazy body with ETag "report-v3", cached 10 s: If-None-Match gets 304 before it is generated'],
      ['/stats', 'app.stats() as JSON, never cached'],
    ]
    return html(res, 'node-accelerator demo', `
      <p>This index page is not cached. Every other page says what it asks of the cache. Served by ${me}.</p>${shared}
      <ul>${routes.map(([path, what]) => `<li><a href="${path}">${path}</a>: ${what}</li>`).join('')}</ul>
      <h2>Try</h2><pre>${esc(tryText(host))}</pre>`)
  }

  if (pathname === '/slow') {
    await sleep(1000) // a slow query, say
    res.cacheFor = 30
    return html(res, 'A slow page', `
      <p>Generated at <b>${clock()}</b>, which took <b>${elapsed(started)} ms</b>.</p>
      <p>Reload: for 30 s the page comes from the cache, instantly, with the same time.</p>
      ${button(`app.invalidate('/slow')`, '/invalidate?path=/slow&back=/slow')}`)
  }

  const id = /^\/posts\/(\d+)$/.exec(pathname)?.[1]
  const item = posts.get(id ?? '')
  if (id && item) {
    item.renders++
    await sleep(200)
    res.cacheFor = 60
    // Tags name what the page was built from: one post, and the list of all posts.
    res.tags = [`post:${id}`, 'posts']
    const other = id === '1' ? '2' : '1'
    return html(res, item.title, `
      <p>Version <b>${item.version}</b>. Rendered <b>${item.renders}</b> time(s) by ${me}, last at ${clock()} in ${elapsed(started)} ms.</p>
      <p>Tags: <code>post:${id}</code>, <code>posts</code>. See also <a href="/posts/${other}">post ${other}</a>.</p>
      ${button(`Edit: version ${item.version + 1}, invalidateTags(['post:${id}'])`, `/posts/${id}/edit`)}
      ${button(`invalidateTags(['posts']): drops both posts`, `/invalidate?tag=posts&back=/posts/${id}`)}`)
  }

  if (pathname === '/report') {
    res.cacheFor = 10
    res.setHeader('etag', REPORT_ETAG)
    res.setHeader('content-type', 'text/html; charset=utf-8')
    // Returned, not written: the accelerator compares If-None-Match with the ETag first and
    // answers 304 without starting the generator, so the expensive part below never runs.
    return (async function* () {
      console.log('generating report… (the expensive part is running)')
      yield top('Quarterly report')
      for (const quarter of ['Q1', 'Q2', 'Q3', 'Q4']) {
        await sleep(250)
        yield `<p>${quarter}: ${Math.floor(Math.random() * 1000)} widgets</p>\n`
      }
      yield `<p>Generated at ${clock()}, ETag ${esc(REPORT_ETAG)}. Reload: the browser sends If-None-Match and gets 304,
        and the log shows no "generating report…", even once the 10 s entry expired.</p>${bottom(REPORT_ETAG)}`
    })()
  }

  if (pathname === '/stats') {
    res.setHeader('content-type', 'application/json')
    return JSON.stringify(app.stats(), null, 2) + '\n' // no cacheFor: never stored
  }

  res.statusCode = 404
  return html(res, 'Not found', '<p>Try the <a href="/">index</a>.</p>')
}, {
  store,
  // One site, whatever port a process listens on: two demo processes share their entries.
  key: (req) => req.url ?? '/',
})

/** The forms' POSTs: the accelerator passes them straight through, so they can invalidate. */
async function post(req: IncomingMessage, res: AcceleratedResponse, pathname: string, params: URLSearchParams, host: string): Promise<void> {
  req.resume() // the forms send no fields
  const back = params.get('back') ?? '/'
  const id = /^\/posts\/(\d+)\/edit$/.exec(pathname)?.[1]
  const item = posts.get(id ?? '')
  const tag = params.get('tag')
  const path = params.get('path')
  let done: string
  if (id && item) {
    item.version++
    done = `invalidateTags(['post:${id}']) dropped ${await app.invalidateTags([`post:${id}`])}`
  } else if (pathname === '/invalidate' && tag) {
    done = `invalidateTags(['${tag}']) dropped ${await app.invalidateTags([tag])}`
  } else if (pathname === '/invalidate' && path) {
    // Keys include the Host, so name the one this request came in on.
    done = `invalidate('${path}') dropped ${await app.invalidate(path, { host })}`
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n')
    return
  }
  console.log(`  ${done} entr(ies)`)
  // 303: the browser GETs the page again, which is now a miss.
  const location = id ? `/posts/${id}` : /^\/(?!\/)/.test(back) ? back : '/'
  res.writeHead(303, { location, 'content-type': 'text/plain' }).end(`${done}\n`)
}

function html(res: AcceleratedResponse, title: string, body: string): string {
  res.setHeader('content-type', 'text/html; charset=utf-8')
  return top(title) + body + bottom()
}

const top = (title: string) => `<!doctype html><meta charset="utf-8"><title>${title}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
pre,code{background:#f4f4f4;border-radius:4px}pre{padding:.75rem;overflow-x:auto}
#status{background:#fff7d6;padding:.5rem .75rem;border-radius:4px}form{display:inline}</style>
<p id="status">Cache-Status: …</p><p><a href="/">index</a> · <a href="/stats">stats</a></p>
<h1>${title}</h1>\n`

// A hit never runs the handler, so the page cannot print the Cache-Status it was served with.
// Instead the script asks the server for this URL again and shows what that answer carried
// (with the page's ETag, when given, so that asking does not generate a lazy body).
const bottom = (etag?: string) => `
<script>
const nav = performance.getEntriesByType('navigation')[0]
fetch(location.href, { cache: 'no-store', headers: ${JSON.stringify(etag ? { 'if-none-match': etag } : {})} }).then((r) => {
  document.getElementById('status').textContent = 'This load took ' + (nav ? Math.round(nav.responseStart - nav.requestStart) : '?') +
    ' ms. Asking again${etag ? ' with If-None-Match' : ''} now got ' + r.status + ', Cache-Status: ' + r.headers.get('cache-status') +
    (r.headers.has('age') ? ', Age: ' + r.headers.get('age') : '')
})
</script>`

const button = (label: string, action: string) => `<form method="post" action="${esc(action)}"><button>${esc(label)}</button></form>`
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const clock = () => new Date().toLocaleTimeString('en-GB')
const elapsed = (since: number) => Math.round(performance.now() - since)

const server = http.createServer(app)
server.on('error', (err) => {
  console.error(`Cannot listen on port ${port}: ${err.message} (set PORT to use another)`)
  process.exit(1)
})
server.listen(port, () => {
  console.log(`node-accelerator demo on http://localhost:${port} (${redisUrl ? `Redis store at ${redisUrl}` : 'in-memory store'})\n`)
  if (redisUrl) {
    console.log(`Two processes, one cache: run \`PORT=${port + 1} REDIS_URL=${redisUrl} npm start\` in another terminal, then:`)
    const steps: Array<[string, string]> = [
      [`curl -s localhost:${port}/posts/1 | grep Rendered`, 'rendered here'],
      [`curl -s localhost:${port + 1}/posts/1 | grep Rendered`, 'a hit there: it names this process'],
      [`curl -s -X POST localhost:${port + 1}/posts/1/edit`, "invalidateTags(['post:1']) there"],
      [`curl -s localhost:${port}/posts/1 | grep Rendered`, 'a miss here again'],
    ]
    for (const [command, what] of steps) console.log(`  ${command.padEnd(48)} # ${what}`)
    console.log()
  }
  console.log(`Try (watch the Cache-Status and Age headers, and this log):\n\n${tryText(`localhost:${port}`)}\n`)
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log(`\n${signal}: closing`)
    server.close() // stops accepting, closes idle keep-alive connections
    // Waits for responses still being stored, then closes the store.
    void app.close().then(() => store.close()).then(() => process.exit(0))
  })
}
