/**
 * What the cross-process lease costs a miss: an accelerated server on RedisStore with `lease`
 * on and off, each miss a cold key (get, lease claim, checkpoint, handler, set; the release
 * after the response is stored), one request at a time so that latency shows round trips.
 * Rounds alternate the two stores; the figures are medians over the rounds.
 *
 *   tsc -p bench/tsconfig.json && node dist/bench/bench/lease-miss.js   (needs redis-server)
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { accelerate } from '../src/index.js'
import { RedisStore } from '../stores/redis.js'
import { RedisProcess } from './processes.js'

const ROUNDS = 5
const MISSES = 400

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!

function get(port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get({ port, host: '127.0.0.1', path, agent }, (res) => {
        res.resume()
        res.on('end', resolve)
      })
      .on('error', reject)
  })
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })

async function server(lease: boolean, url: string) {
  const store = new RedisStore({ url, prefix: `miss-${lease}:`, timeoutMs: 5000, lease })
  await store.ready()
  const app = accelerate(
    (_req, res) => {
      res.cacheFor = 60
      return 'a page'
    },
    { store },
  )
  const srv = http.createServer(app)
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as AddressInfo).port
  let n = 0
  return {
    /** Median µs per miss and CPU µs per miss of one round. */
    async round(): Promise<{ wall: number; cpu: number }> {
      const times: number[] = []
      const cpu = process.cpuUsage()
      for (let i = 0; i < MISSES; i++) {
        const started = performance.now()
        await get(port, `/page/${n++}`)
        times.push(performance.now() - started)
      }
      const used = process.cpuUsage(cpu)
      return { wall: median(times) * 1000, cpu: (used.user + used.system) / MISSES }
    },
    async close() {
      srv.close()
      await app.close()
      await store.close()
    },
  }
}

const redis = await RedisProcess.start({ note: 'not pinned' })
if (!redis) throw new Error('redis-server is not installed')
const raw = new Redis(redis.url)
try {
  const pings: number[] = []
  for (let i = 0; i < 2000; i++) {
    const started = performance.now()
    await raw.ping()
    pings.push(performance.now() - started)
  }
  const on = await server(true, redis.url)
  const off = await server(false, redis.url)
  await on.round()
  await off.round()
  const rows = {
    on: [] as Array<{ wall: number; cpu: number }>,
    off: [] as Array<{ wall: number; cpu: number }>,
  }
  for (let r = 0; r < ROUNDS; r++) {
    rows.on.push(await on.round())
    rows.off.push(await off.round())
  }
  const wallOn = median(rows.on.map((row) => row.wall))
  const wallOff = median(rows.off.map((row) => row.wall))
  const cpuOn = median(rows.on.map((row) => row.cpu))
  const cpuOff = median(rows.off.map((row) => row.cpu))
  console.log(`Redis round trip (PING, median): ${(median(pings) * 1000).toFixed(0)} µs`)
  console.log(
    `miss, lease off: ${wallOff.toFixed(0)} µs median latency, ${cpuOff.toFixed(0)} µs CPU (client and server in this process)`,
  )
  console.log(`miss, lease on:  ${wallOn.toFixed(0)} µs median latency, ${cpuOn.toFixed(0)} µs CPU`)
  console.log(
    `the lease adds ${(wallOn - wallOff).toFixed(0)} µs latency and ${(cpuOn - cpuOff).toFixed(0)} µs CPU per miss`,
  )
  await on.close()
  await off.close()
} finally {
  raw.disconnect()
  agent.destroy()
  redis.stop()
}
