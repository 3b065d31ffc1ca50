// One generation per key across OS processes (RedisStore leases): 4 app processes on one Redis.
// Many concurrent misses for one cold key run the handler once in all; the lease dies with its
// holder (kill -9); a holder whose response cannot be shared releases the others at once; a
// paused Redis costs a request its timeout, never a wait on a lease.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startRedis, type RedisServer } from '../fixtures/redis-server.js'
import { eventually, request, type Reply } from '../fixtures/http.js'

const script = fileURLToPath(new URL('../fixtures/lease-process.ts', import.meta.url))
const TIMEOUT_MS = 1000
const COALESCE_MS = 4000

interface App {
  url: string
  pid: number
  child: ChildProcess
}

async function appProcess(t: Test, env: Record<string, string>): Promise<App> {
  const child = spawn(process.execPath, [...process.execArgv, script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  )
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes('\n')) resolve(out.split('\n')[0]!)
    })
    child.once('exit', (code) => reject(new Error(`app process exited with ${code}`)))
  })
  return {
    url: `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`,
    pid: child.pid!,
    child,
  }
}

interface Stats {
  arrived: number
  renders: number
  busy: number
}
const stats = async (app: App): Promise<Stats> =>
  JSON.parse((await request(app.url + '/stats')).text) as Stats
const total = async (apps: App[]): Promise<Stats> => {
  const all = await Promise.all(apps.map(stats))
  return all.reduce((sum, one) => ({
    arrived: sum.arrived + one.arrived,
    renders: sum.renders + one.renders,
    busy: sum.busy + one.busy,
  }))
}
const release = (app: App) => request(app.url + '/release', { method: 'POST' })
const get = (app: App, path: string, headers: Record<string, string> = {}) =>
  request(app.url + path, { headers: { host: 'www.example.com', ...headers } })

let redis!: RedisServer
let apps!: App[]
t.before(async () => {
  redis = await startRedis(t)
  const env = {
    ACC_REDIS_URL: redis.url,
    ACC_PREFIX: 'lease:',
    ACC_TIMEOUT_MS: String(TIMEOUT_MS),
    ACC_COALESCE_MS: String(COALESCE_MS),
  }
  apps = await Promise.all([0, 1, 2, 3].map(() => appProcess(t, env)))
})

t.test(
  '200 concurrent requests over 4 processes for one cold key: one handler run in all',
  async (t) => {
    const before = await total(apps)
    const firstBefore = (await stats(apps[0]!)).renders
    // The first request holds its render; the other 199 arrive while it runs.
    const replies: Array<Promise<Reply>> = [get(apps[0]!, '/cold', { 'x-hold': '1' })]
    await eventually(
      async () => (await stats(apps[0]!)).renders > firstBefore,
      'the first render started',
    )
    for (let i = 1; i < 200; i++) replies.push(get(apps[i % 4]!, '/cold'))
    // Every process is rendering or waiting on another's lease before the render is let go.
    await eventually(async () => {
      const now = await total(apps)
      return (
        now.arrived - before.arrived === 200 &&
        now.renders - before.renders + now.busy - before.busy >= 4
      )
    }, '200 requests in, each process rendering or waiting')
    await Promise.all(apps.map(release))
    const answered = await Promise.all(replies)
    const after = await total(apps)
    t.equal(after.renders - before.renders, 1, 'the handler ran once in all 4 processes')
    t.same(new Set(answered.map((reply) => reply.status)), new Set([200]))
    t.same(
      new Set(answered.map((reply) => reply.text)),
      new Set([`rendered by ${apps[0]!.pid}`]),
      'everyone got the one render',
    )
    // A request served after waiting on another process is a hit from the store.
    const fromOthers = answered.filter((_, i) => i % 4 !== 0)
    t.ok(
      fromOthers.every((reply) => /; hit/.test(String(reply.headers['cache-status']))),
      'Cache-Status: hit in the other processes',
    )
  },
)

t.test(
  'a holder whose response cannot be shared (Set-Cookie) releases the others at once',
  async (t) => {
    const before = await Promise.all(apps.map(stats))
    const first = get(apps[0]!, '/cookie', { 'x-hold': '1', 'x-cookie': '1' })
    await eventually(
      async () => (await stats(apps[0]!)).renders > before[0]!.renders,
      'the holder renders',
    )
    const others = [1, 2, 3].map((i) => get(apps[i]!, '/cookie', { 'x-cookie': '1' }))
    await eventually(async () => {
      const now = await Promise.all(apps.slice(1).map(stats))
      return now.every(
        (one, i) => one.busy > before[i + 1]!.busy || one.renders > before[i + 1]!.renders,
      )
    }, 'the other processes rendering or waiting')
    const now = await Promise.all(apps.slice(1).map(stats))
    t.same(
      now.map((one, i) => one.renders - before[i + 1]!.renders),
      [0, 0, 0],
      'they wait on the lease',
    )
    const released = performance.now()
    await release(apps[0]!)
    t.match((await first).headers['set-cookie'], ['session=1'])
    const answered = await Promise.all(others)
    const waited = performance.now() - released
    t.same(
      answered.map((reply) => reply.text),
      [1, 2, 3].map((i) => `rendered by ${apps[i]!.pid}`),
      'each generates its own',
    )
    // Woken by the release, not by the lease's expiry (COALESCE_MS / 2) nor the wait bound.
    t.ok(waited < COALESCE_MS / 2, `answered ${Math.round(waited)} ms after the release`)
  },
)

t.test(
  'kill -9 of the lease holder mid-generation: another process generates within coalesceTimeoutMs',
  async (t) => {
    const [holder, ...rest] = apps
    const before = await Promise.all(rest.map(stats))
    const holderBefore = (await stats(holder!)).renders
    void get(holder!, '/killed', { 'x-hold': '1' }).catch(() => {})
    await eventually(
      async () => (await stats(holder!)).renders > holderBefore,
      'the holder renders',
    )
    const replies = rest.map((app) => get(app, '/killed'))
    await eventually(async () => {
      const now = await Promise.all(rest.map(stats))
      return now.every((one, i) => one.busy > before[i]!.busy || one.renders > before[i]!.renders)
    }, 'the other processes rendering or waiting')
    const now = await Promise.all(rest.map(stats))
    t.same(
      now.map((one, i) => one.renders - before[i]!.renders),
      [0, 0, 0],
      'they wait on the lease',
    )
    const killed = performance.now()
    holder!.child.kill('SIGKILL')
    const answered = await Promise.all(replies)
    const took = performance.now() - killed
    t.ok(
      took < COALESCE_MS,
      `answered ${Math.round(took)} ms after the kill (coalesceTimeoutMs ${COALESCE_MS})`,
    )
    t.same(new Set(answered.map((reply) => reply.status)), new Set([200]))
    const after = await Promise.all(rest.map(stats))
    const renders = after.reduce((sum, one, i) => sum + one.renders - before[i]!.renders, 0)
    t.equal(renders, 1, 'one of them generated, the others got its entry')
    apps = rest
  },
)

t.test(
  'Redis paused: a cold miss is answered within timeoutMs, not after a lease wait',
  async (t) => {
    redis.pause()
    t.teardown(() => redis.resume())
    const started = performance.now()
    const answered = await Promise.all(apps.map((app) => get(app, '/paused')))
    const took = performance.now() - started
    t.same(
      answered.map((reply) => reply.status),
      apps.map(() => 200),
    )
    t.ok(
      answered.every((reply, i) => reply.text === `rendered by ${apps[i]!.pid}`),
      'each generated its own',
    )
    // One timed-out lookup (then the store is not asked for a second), the handler, and slack.
    t.ok(took < TIMEOUT_MS + 1000, `answered in ${Math.round(took)} ms (timeoutMs ${TIMEOUT_MS})`)
  },
)
