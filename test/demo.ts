// The demo (`npm start`) in a real browser: Debian's chromium, headless, driven by playwright-core
// (no browser download: it runs /usr/bin/chromium). The page's own load reads miss, then hit on
// reload; its buttons purge and the counters and the request log follow without a reload; on
// Redis, two demo processes share hits and purges, each row naming the process that answered.
// The first test takes the screenshot the README shows (docs/demo.png, rewritten with
// UPDATE_SCREENSHOT=1). Without chromium the
// file is skipped, saying how to install it (.ci/run does).
//
// Every wait is on page state (a selector that matches once the page shows it), never a sleep;
// playwright's 30 s bound on each wait is for a stuck test, not a guess of the machine's speed.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { eventually } from './fixtures/http.js'
import { startRedis } from './fixtures/redis-server.js'

const CHROMIUM = '/usr/bin/chromium'
// The picture the README shows is rewritten only when asked (`UPDATE_SCREENSHOT=1 npm test`): its
// times and pids differ on every run, and a test run must not leave the tree changed.
const SCREENSHOT =
  process.env.UPDATE_SCREENSHOT === '1'
    ? fileURLToPath(new URL('../docs/demo.png', import.meta.url))
    : join(tmpdir(), `node-accelerator-demo-${process.pid}.png`)
const DEMO = fileURLToPath(new URL('../examples/demo.ts', import.meta.url))

if (!existsSync(CHROMIUM)) {
  t.plan(
    0,
    `the demo's browser tests need Debian's chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run installs it)`,
  )
} else {
  // Loaded only with a browser to drive it: without one, the demo is not measured for coverage.
  const { banner, main, startDemo } = await import('../examples/demo.js')

  let browser: Browser
  t.before(async () => {
    // The one generous bound: starting chromium on a busy machine.
    browser = await chromium.launch({ executablePath: CHROMIUM, timeout: 120_000 })
  })
  t.teardown(() => browser?.close())

  /** A demo in this process on a free port, closed at teardown; `lines`: what it logged. */
  const demo = async (tt: Test, redisUrl?: string) => {
    const lines: string[] = []
    const started = await startDemo({ port: 0, redisUrl, log: (line) => lines.push(line) })
    tt.teardown(() => started.close())
    return Object.assign(started, { lines })
  }
  /**
   * `npm start` as its own process on a free port (PORT=0), stopped with SIGTERM at teardown.
   * The browser tests use these: in this process, the browser driver's work would delay the
   * server's and show in the times the page reports. `lines()`: what it printed so far.
   */
  const program = async (tt: Test, redisUrl = '') => {
    const env = { ...process.env, PORT: '0', REDIS_URL: redisUrl }
    const child = spawn(process.execPath, [...process.execArgv, DEMO], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk))
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    const found = await new Promise<RegExpExecArray>((resolve, reject) => {
      child.stdout.on('data', () => {
        const started = /demo on (http:\/\/localhost:(\d+))/.exec(out)
        if (started) resolve(started)
      })
      void exited.then(() => reject(new Error(`the demo exited before serving: ${out}`)))
    })
    /** What Ctrl-C does: resolves the exit code. */
    const stop = () => {
      child.kill('SIGTERM')
      return exited
    }
    tt.teardown(stop)
    const lines = () => out.split('\n')
    return {
      url: found[1]!,
      port: Number(found[2]),
      proc: `:${found[2]} (pid ${child.pid})`,
      lines,
      stop,
    }
  }
  /** How many times the handler ran for `what` ("GET /posts/1"), by the demo's log. */
  const runs = (server: { lines: () => string[] }, what: string) =>
    server.lines().filter((line) => line === `handler ran: ${what}`).length
  const open = async (tt: Test, { url }: { url: string }) => {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 860 },
      deviceScaleFactor: 1,
    })
    tt.teardown(() => context.close())
    const page = await context.newPage()
    page.on('pageerror', (err) => errorsOf.get(page)!.push(err))
    errorsOf.set(page, [])
    await page.goto(url)
    await live(page)
    return page
  }
  /** What each page threw: a test checks none before it ends. */
  const errorsOf = new WeakMap<Page, Error[]>()
  /** Resolves once the page has its events stream (after a reload too: the attribute is new). */
  const live = (page: Page) => page.locator('body[data-live=yes]').waitFor()
  /** The text of the page's counter `stat` for the process answering the page. */
  const counter = (page: Page, stat: string) => page.locator(`.card.mine [data-stat=${stat}]`)
  /** Resolves once the page shows its process stored `n` responses. */
  const stored = (page: Page, n: number) =>
    counter(page, 'stores')
      .filter({ hasText: new RegExp(`^${n}$`) })
      .waitFor()
  /** Resolves once a request log row matches: `what` ("GET /posts/1"), and more attributes. */
  const row = (page: Page, what: string, more = '') =>
    page.locator(`tr[data-what="${what}"]${more}`).first().waitFor()

  t.test(
    "the page's own load: a miss that ran the handler, then on reload a hit that did not",
    async (t) => {
      const server = await program(t)
      const page = await open(t, server)
      await page.locator('#own-outcome', { hasText: /^miss$/ }).waitFor()
      t.match(
        await page.textContent('#own-detail'),
        /the handler ran to render it · answered by :\d+ \(pid \d+\)/,
      )
      // The line is written before the response goes out (a pipe is synchronous on Linux).
      t.equal(runs(server, 'GET /'), 1)
      // Each wait on `stores` below: the entry is in the store (its write ends after the response).
      await stored(page, 1)
      await page.reload()
      await live(page)
      await page.locator('#own-outcome', { hasText: /^hit$/ }).waitFor()
      t.match(
        await page.textContent('#own-detail'),
        /the handler did not run: served from the cache/,
      )
      t.match(
        await page.textContent('#history'),
        /^miss \d+ ms → hit \d+ ms$/,
        'both loads, in order',
      )
      t.equal(runs(server, 'GET /'), 1, 'the handler ran once for two loads')
      // Its own row in the log, marked: the Cache-Status it was served with, the handler not run.
      const own = page.locator('tr.mine')
      await own.waitFor()
      t.match(
        await own.textContent(),
        /GET \/ ← this page.*hit.*node-accelerator; hit; ttl=\d+.*not run.*\d+ ms/,
      )
      await counter(page, 'ratio').filter({ hasText: /^50%$/ }).waitFor()
      t.same(
        [await counter(page, 'hits').textContent(), await counter(page, 'misses').textContent()],
        ['1', '1'],
      )

      // Requests from the page, then the purges: the log and counters follow, no reload.
      await page.click('[data-get="/posts/1"]')
      await row(page, 'GET /posts/1', '[data-outcome=miss]')
      await stored(page, 2)
      await page.click('[data-get="/posts/1"]')
      await row(page, 'GET /posts/1', '[data-outcome=hit]')
      await counter(page, 'hits').filter({ hasText: /^2$/ }).waitFor()
      await counter(page, 'entries').filter({ hasText: /^2$/ }).waitFor()

      await page.click('[data-purge="tag=posts"]')
      await row(page, "invalidateTags(['posts'])", '[data-kind=purge]')
      await counter(page, 'entries').filter({ hasText: /^1$/ }).waitFor()
      t.equal(await page.textContent('#said'), "invalidateTags(['posts']): 1 entry")
      await page.click('[data-get="/posts/1"]')
      await counter(page, 'misses').filter({ hasText: /^3$/ }).waitFor()
      await stored(page, 3)
      t.equal(runs(server, 'GET /posts/1'), 2, 'a miss again after the purge')

      // Soft purge: the next request is answered stale at once, and one refresh runs behind it.
      await page.click('[data-purge="tag=posts&soft=1"]')
      await row(page, "invalidateTags(['posts'], { soft: true })", '[data-kind=purge]')
      await page.click('[data-get="/posts/1"]')
      await row(page, 'GET /posts/1', '[data-outcome=stale]')
      await row(page, 'GET /posts/1', '[data-kind=refresh]')
      await counter(page, 'staleHits').filter({ hasText: /^1$/ }).waitFor()
      await stored(page, 4)

      // The picture the README shows: clear of the cursor's hover, rows no longer flashing.
      await page.mouse.move(0, 0)
      mkdirSync(new URL('../docs', import.meta.url), { recursive: true })
      await page.screenshot({ path: SCREENSHOT, fullPage: true, animations: 'disabled' })
      t.same(readFileSync(SCREENSHOT).subarray(1, 4), Buffer.from('PNG'))
      if (process.env.UPDATE_SCREENSHOT !== '1') rmSync(SCREENSHOT)

      // A URL purge, and the lazy report streamed whole: its time is the last byte's, not the first.
      await page.click('[data-get="/slow"]')
      await row(page, 'GET /slow', '[data-outcome=miss]')
      await stored(page, 5)
      await page.click('[data-purge="url=/slow"]')
      await row(page, "invalidate('/slow')", '[data-kind=purge]')
      t.equal(await page.textContent('#said'), "invalidate('/slow'): 1 entry")
      await page.click('[data-get="/report"]')
      await row(page, 'GET /report', '[data-outcome=miss]')
      const reportMs = Number(
        (await page.locator('tr[data-what="GET /report"] td.num').last().textContent())!.replace(
          ' ms',
          '',
        ),
      )
      t.ok(reportMs >= 1000, `the report's four 250 ms quarters are in its time (${reportMs} ms)`)

      t.same(errorsOf.get(page), [], 'no error in the page')
      t.equal(
        await server.stop(),
        0,
        'SIGTERM: the demo closed, open dashboard included, and exited 0',
      )
      t.ok(server.lines().includes('SIGTERM: closing'), 'it said so')
    },
  )

  t.test(
    'on Redis, two processes: a hit on one for what the other rendered, a purge on one seen by both',
    async (t) => {
      const redis = await startRedis(t)
      const [a, b] = await Promise.all([program(t, redis.url), program(t, redis.url)])
      const pageA = await open(t, a)
      await stored(pageA, 1)
      const pageB = await open(t, b)
      const [procA, procB] = [a.proc, b.proc]
      // Each page shows both processes' counters, its own first.
      await pageA.locator(`.card[data-proc="${procB}"]`).waitFor()
      await pageB.locator(`.card[data-proc="${procA}"]`).waitFor()
      t.match(await pageA.locator('.card').first().getAttribute('data-proc'), procA)

      await pageA.click('[data-get="/posts/1"]')
      await row(pageA, 'GET /posts/1', '[data-outcome=miss]')
      // Stored in Redis (the write ends after the response): the dashboard, then /posts/1.
      await stored(pageA, 2)
      await pageB.click('[data-get="/posts/1"]')
      await row(pageB, 'GET /posts/1', '[data-outcome=hit]')
      // A's page shows B's hit, naming B, and that the body came from A.
      const shared = pageA.locator('tr[data-what="GET /posts/1"][data-outcome=hit]')
      await shared.waitFor()
      t.match(
        await shared.textContent(),
        new RegExp(`:${b.port}.*other process.*hit.*rendered by :${a.port}`),
      )
      t.same(
        b.lines().filter((line) => line.startsWith('handler ran')),
        [],
        "B's handler never ran, not even for its dashboard: A rendered it",
      )

      await pageB.click('[data-purge="tag=posts"]')
      await row(pageA, "invalidateTags(['posts'])", '[data-kind=purge]')
      await pageA.click('[data-get="/posts/1"]')
      await pageA.locator('tr[data-what="GET /posts/1"][data-outcome=miss]').nth(1).waitFor()
      t.equal(runs(a, 'GET /posts/1'), 2, 'a miss on A after the purge on B')
      await pageB
        .locator(`.card[data-proc="${procA}"] [data-stat=misses]`)
        .filter({ hasText: /^3$/ })
        .waitFor()

      // Redis gone: the cache fails open, each demo goes on serving, and says its relay failed.
      await redis.kill()
      const reply = await fetch(a.url + '/posts/2')
      t.equal(reply.status, 200)
      await reply.text()
      await eventually(
        () =>
          a
            .lines()
            .some((line) =>
              /^demo: relaying the dashboard's events through Redis failed \(.+\)/.test(line),
            ),
        'the relay failure logged',
      )
      t.same([errorsOf.get(pageA), errorsOf.get(pageB)], [[], []], 'no error in the pages')
    },
  )

  t.test(
    'what curl sees: the JSON endpoints, a 304 before the report is generated, and the errors',
    async (t) => {
      const server = await demo(t)
      const post = (path: string) => fetch(server.url + path, { method: 'POST' })
      t.equal((await post('/posts?id=1')).status, 200)
      t.same(await (await post('/posts?id=1')).json(), {
        what: "edit post 1: invalidateTags(['post:1'])",
        entries: 0,
        version: 3,
      })
      t.match(await (await post('/posts')).json(), {
        error: /POST \/posts\?id=<id>: no post "" \(try 1 or 2\)/,
      })
      const bad = await post('/_demo/purge')
      t.equal(bad.status, 400)
      t.match(await bad.json(), { error: /needs \?tag=<tag>/ })
      const notModified = await fetch(server.url + '/report', {
        headers: { 'if-none-match': '"report-v3"' },
      })
      t.equal(notModified.status, 304)
      t.notOk(
        server.lines.some((line) => line.startsWith('generating report')),
        'the report was never generated',
      )
      const missing = await fetch(server.url + '/nowhere')
      t.equal(missing.status, 404)
      t.match(await missing.text(), /Not found/)
      const stats = (await (await fetch(server.url + '/stats')).json()) as Record<
        string,
        { misses: number }
      >
      t.equal(Object.values(stats)[0]!.misses, 2, 'two misses: the 304 and the 404')
    },
  )

  t.test('a demo that cannot start says why and what to do, and leaves nothing open', async (t) => {
    const taken = net.createServer().listen(0)
    await new Promise((resolve) => taken.once('listening', resolve))
    t.teardown(() => void taken.close())
    const port = (taken.address() as net.AddressInfo).port
    const err = t.capture(console, 'error')
    t.teardown(() => void (process.exitCode = undefined))
    t.equal(await main({ PORT: String(port) }), undefined)
    t.equal(process.exitCode, 1)
    t.match(
      err()[0]!.args[0],
      new RegExp(`^Cannot listen on port ${port}: .*EADDRINUSE.* \\(set PORT to use another\\)$`),
    )

    const closed = await new Promise<number>((resolve) => taken.close(() => resolve(port)))
    await t.rejects(
      startDemo({ port: 0, redisUrl: `redis://127.0.0.1:${closed}`, redisWaitMs: 200 }),
      /^Redis at redis:\/\/127\.0\.0\.1:\d+ is not answering \(.*\): start it, or run without REDIS_URL$/,
    )
  })

  t.test(
    'what `npm start` prints: the in-memory store, or Redis and how to start the second process',
    async (t) => {
      const at = { url: 'http://localhost:3000', port: 3000 }
      t.match(
        banner(at, undefined),
        /^node-accelerator demo on http:\/\/localhost:3000 \(in-memory store\)\n/,
      )
      t.notMatch(banner(at, undefined), /Two processes/)
      t.match(
        banner(at, 'redis://127.0.0.1:6379'),
        /\(Redis store at redis:\/\/127.0.0.1:6379\)\n.*\n.*`PORT=3001 REDIS_URL=redis:\/\/127.0.0.1:6379 npm start`/,
      )
    },
  )
}
