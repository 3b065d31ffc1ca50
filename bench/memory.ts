/**
 * Scenario 7, in a process of its own (`--expose-gc`): memory per stored entry. An accelerator
 * on a MemoryStore large enough to hold them all is filled with `entries` responses of `size`
 * bytes through real HTTP misses (each URL once, each response stored with two tags), then the
 * heap and the buffers are measured after full GCs and divided by the entry count. Prints one
 * JSON line.
 *
 *   node --expose-gc memory.js '{"entries":100000,"size":1024}'
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { accelerate, MemoryStore } from '../src/index.js'
import { pageBody } from './common.js'

export interface MemorySpec {
  entries: number
  size: number
}

export interface MemoryResult {
  entries: number
  size: number
  /** V8 heap per entry (keys, entry objects, header records, tag index, LRU slots), bytes. */
  heapPerEntry: number
  /** Buffers outside the heap per entry (the body copies), bytes. */
  buffersPerEntry: number
  /** Resident set growth per entry, bytes (includes allocator slack and heap headroom). */
  rssPerEntry: number
  /** What MemoryStore counts per entry against maxBytes (body, headers, key, tags, 256 fixed). */
  accountedPerEntry: number
  stored: number
  fillSeconds: number
}

const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with node --expose-gc')

async function settle(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 4; i++) {
    gc!()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return process.memoryUsage()
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]!) as MemorySpec
  const body = pageBody(spec.size)
  const before = await settle()
  // Created after the first reading: the LRU's arrays, sized for maxEntries up front, count too.
  const store = new MemoryStore({ maxEntries: spec.entries, maxBytes: 8 * 1024 ** 3 })
  const acc = accelerate(
    (req, res) => {
      res.cacheFor = 3600
      res.tags = [`item:${req.url}`, 'items']
      res.setHeader('content-type', 'text/html; charset=utf-8')
      res.end(body)
    },
    { store },
  )
  const server = http.createServer(acc)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 })
  const t0 = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < spec.entries) {
        const path = `/item/${next++}`
        await new Promise<void>((resolve, reject) => {
          http
            .get({ host: '127.0.0.1', port, path, agent }, (res) => {
              res.resume()
              res.on('end', resolve)
            })
            .on('error', reject)
        })
      }
    }),
  )
  const fillSeconds = (performance.now() - t0) / 1000
  // Let the last stores land, then drop every connection so only the cache remains.
  await new Promise((resolve) => setTimeout(resolve, 200))
  agent.destroy()
  server.closeAllConnections()
  const after = await settle()
  const { entries: stored = 0, bytes = 0 } = store.size()
  const per = (delta: number) => Math.round(delta / stored)
  const result: MemoryResult = {
    entries: spec.entries,
    size: spec.size,
    heapPerEntry: per(after.heapUsed - before.heapUsed),
    buffersPerEntry: per(after.arrayBuffers - before.arrayBuffers),
    rssPerEntry: per(after.rss - before.rss),
    accountedPerEntry: per(bytes),
    stored,
    fillSeconds,
  }
  server.close()
  console.log(JSON.stringify(result))
  // Keep the store reachable until measured (and exit without tearing 100k entries down).
  void acc
  process.exit(0)
}

await main()
