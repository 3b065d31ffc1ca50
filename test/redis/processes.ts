// Two OS processes sharing one Redis: one serves what the other stored, an invalidation in one
// reaches the other, and a generation that began before another process's invalidation is not
// stored (no stale resurrection across processes).
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import http from 'node:http'
import { redisUrl } from '../fixtures/redis-server.js'
import { eventually, request } from '../fixtures/http.js'

const script = fileURLToPath(new URL('../fixtures/app-process.ts', import.meta.url))

/** Starts an app process (with this one's TypeScript loader); resolves its base URL. */
async function appProcess(
  t: Test,
  env: Record<string, string>,
): Promise<{ url: string; pid: number }> {
  const child = spawn(process.execPath, [...process.execArgv, script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  )
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes('\n')) resolve(out.split('\n')[0]!)
    })
    child.once('exit', (code) => reject(new Error(`app process exited with ${code}`)))
  })
  return { url: `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`, pid: child.pid! }
}

const post = (url: string) => request(url, { method: 'POST' }).then((reply) => reply.text)
// Behind one load balancer, every process sees the site's Host: the default key includes it.
const site = { host: 'www.example.com' }
const get = (url: string) => request(url, { headers: site })

/**
 * Resolves once `url` is answered from the cache: a process stores a response just after it
 * finished it, so another process may ask before the write landed. `only-if-cached` asks
 * without ever running the handler (a 504 while nothing is stored).
 */
async function stored(url: string): Promise<void> {
  await eventually(
    async () =>
      (await request(url, { headers: { ...site, 'cache-control': 'only-if-cached' } })).status ===
      200,
    `${url} stored`,
  )
}

// Two app processes for every subtest, started before the first one runs (subtests are still
// created synchronously at the top level).
let a!: { url: string; pid: number }
let b!: { url: string; pid: number }
t.before(async () => {
  const env = { ACC_REDIS_URL: await redisUrl(t), ACC_PREFIX: `procs:${process.pid}:` }
  ;[a, b] = await Promise.all([appProcess(t, env), appProcess(t, env)])
})

t.test('a hit in one process for what the other stored', async (t) => {
  const first = await get(a.url + '/page?tag=page')
  t.equal(first.text, `rendered by ${a.pid}, render 1`)
  await stored(b.url + '/page?tag=page')
  const hit = await get(b.url + '/page?tag=page')
  t.equal(hit.text, `rendered by ${a.pid}, render 1`, "B serves A's response")
  t.match(hit.headers['cache-status'], /; hit;/)
})

t.test('an invalidation in one process reaches the other', async (t) => {
  await get(a.url + '/post?tag=post:1')
  await stored(b.url + '/post?tag=post:1')
  t.match((await get(b.url + '/post?tag=post:1')).headers['cache-status'], /hit/)
  t.equal(await post(b.url + '/invalidate?tag=post:1'), '1')
  const regenerated = await get(a.url + '/post?tag=post:1')
  t.match(regenerated.headers['cache-status'], /fwd=miss; stored/, 'A regenerates')
  t.match(regenerated.text, new RegExp(`rendered by ${a.pid}`))
})

t.test("a generation that began before another process's invalidation is not stored", async (t) => {
  // A starts rendering /slow and sends its first chunk, then waits.
  const slow = new Promise<string>((resolve, reject) => {
    const req = http.get(
      a.url + '/slow?tag=slow',
      { headers: { ...site, 'x-hold': '1' } },
      (res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString()
          started()
        })
        res.on('end', () => resolve(text))
      },
    )
    req.on('error', reject)
  })
  let started!: () => void
  await new Promise<void>((resolve) => (started = resolve))
  // The data changes: B invalidates the tag while A is still generating.
  await post(b.url + '/invalidate?tag=slow')
  t.equal(await post(a.url + '/release'), 'released')
  t.match(await slow, new RegExp(`rendered by ${a.pid}`), "the client that asked gets A's render")
  // A's store write, whatever it was, has landed once A is drained.
  t.equal(await post(a.url + '/drain'), 'drained')
  const fromB = await get(b.url + '/slow?tag=slow')
  t.match(
    fromB.text,
    new RegExp(`rendered by ${b.pid}`),
    "B regenerates: A's render was never stored",
  )
  t.match(fromB.headers['cache-status'], /fwd=miss/)
})
