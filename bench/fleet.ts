/**
 * `npm run bench:fleet`: many processes, one cache (issue 19), measured with real processes on a
 * private redis-server. Four app processes (bench/fleet-app.ts: RedisStore with localCache and
 * the lease) serve one page:
 *  1. 200 concurrent requests for the cold page, spread over the four: handler runs in all.
 *  2. 1,000 rounds of purge-then-read: each process reads the page twice (the second read is
 *     from its local copy), one process (in turn) purges its tag, then each process is asked
 *     once more, at once: a body rendered before the purge is a stale hit. Also counted: handler
 *     runs per round (the lease makes it one for the four).
 * Prints a Markdown summary; writes nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import { choosePinning, RedisProcess } from './processes.js'

const PROCESSES = 4
const ROUNDS = Number(process.argv.find((arg) => arg.startsWith('--rounds='))?.slice(9) ?? 1000)
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

function call(
  port: number,
  method: string,
  path: string,
): Promise<{ body: string; status: string }> {
  return new Promise((resolve, reject) => {
    // One Host for all, as behind a load balancer: the key includes the Host.
    const req = http.request(
      { host: '127.0.0.1', port, method, path, agent, headers: { host: 'fleet.example' } },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => resolve({ body, status: String(res.headers['cache-status'] ?? '') }))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

function start(redisUrl: string, prefix: string): Promise<{ child: ChildProcess; port: number }> {
  const script = fileURLToPath(new URL('./fleet-app.js', import.meta.url))
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, FLEET_REDIS_URL: redisUrl, FLEET_PREFIX: prefix },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (data: Buffer) =>
      resolve({ child, port: (JSON.parse(String(data)) as { port: number }).port }),
    )
    child.once('exit', (code) =>
      reject(new Error(`an app process exited with ${code} before listening`)),
    )
  })
}

const redis = await RedisProcess.start(choosePinning('driver'))
if (!redis) {
  console.log('bench:fleet needs redis-server; skipped')
  process.exit(0)
}
const apps = await Promise.all(
  Array.from({ length: PROCESSES }, () => start(redis.url, `fleet${process.pid}:`)),
)
const ports = apps.map((app) => app.port)
const renders = async () =>
  (
    await Promise.all(ports.map(async (port) => Number((await call(port, 'GET', '/renders')).body)))
  ).reduce((a, b) => a + b, 0)
try {
  // 1. A cold burst.
  const cold = await Promise.all(
    Array.from({ length: 200 }, (_, i) => call(ports[i % PROCESSES]!, 'GET', '/cold')),
  )
  const coldRuns = await renders()
  const coldBodies = new Set(cold.map((reply) => reply.body)).size

  // 2. Purge, then read at once, many times over.
  let stale = 0
  const staleAt: string[] = []
  let localReads = 0
  const runsBefore = await renders()
  const started = performance.now()
  for (let round = 0; round < ROUNDS; round++) {
    const seen = new Set<string>()
    for (const port of ports) {
      seen.add((await call(port, 'GET', '/page')).body)
      const again = await call(port, 'GET', '/page')
      seen.add(again.body)
      if (/hit/.test(again.status)) localReads++
    }
    await call(ports[round % PROCESSES]!, 'POST', '/invalidate')
    const after = await Promise.all(ports.map((port) => call(port, 'GET', '/page')))
    after.forEach((reply, i) => {
      if (!seen.has(reply.body)) return
      stale++
      staleAt.push(
        `round ${round} (purged by process ${round % PROCESSES}), process ${i}: ${reply.status}`,
      )
    })
  }
  const seconds = (performance.now() - started) / 1000
  const roundRuns = (await renders()) - runsBefore

  console.log(`## Many processes, one cache (${PROCESSES} processes, RedisStore with localCache and the lease, redis ${redis.version})

| measure | result |
|---|---|
| 200 concurrent requests for one cold key, spread over ${PROCESSES} processes | ${coldRuns} handler run${coldRuns === 1 ? '' : 's'}, ${coldBodies} distinct bod${coldBodies === 1 ? 'y' : 'ies'} served |
| ${ROUNDS} rounds of purge (in one process, in turn), then a read from each process at once | **${stale} stale hits** in ${ROUNDS * PROCESSES} reads |
| handler runs over those rounds | ${roundRuns} (${(roundRuns / ROUNDS).toFixed(2)} a purge; ${PROCESSES} without the lease) |
| reads answered as hits before each purge (the second read in each process) | ${localReads} of ${ROUNDS * PROCESSES} |
| time | ${seconds.toFixed(1)} s |
${staleAt.length > 0 ? `\nStale hits: ${staleAt.join('; ')}\n` : ''}`)
} finally {
  for (const { child } of apps) child.kill('SIGTERM')
  await Promise.all(
    apps.map(
      ({ child }) =>
        new Promise((resolve) =>
          child.exitCode === null ? child.once('exit', resolve) : resolve(undefined),
        ),
    ),
  )
  agent.destroy()
  redis.stop()
}
