/**
 * `npm run bench:frameworks [-- --seconds=2]`: each framework adapter beside its own framework,
 * in the same run. One server process per framework (pinned to CPU 0 when `taskset` exists),
 * autocannon here (10 connections). Three routes each: `/own`, the framework's own route sending
 * the same precomputed 1 KiB body; `/hit`, that body stored by the adapter (a hit); `/work`, the
 * route doing about 2 ms of work uncached. Routes run in alternating order, and the report is
 * requests per second with the hit's ratio to each. `npm run bench` runs the same servers as its
 * scenario 8 (issue 20's targets), through its pinned load generator: {@link startFramework}.
 */
import { fork, execFileSync } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

/** The frameworks measured, each with the adapter it has (Hono: the fetch adapter). */
export const FRAMEWORK_NAMES = ['fastify', 'koa', 'hono', 'express'] as const
export type Framework = (typeof FRAMEWORK_NAMES)[number]
/** The framework's own precomputed route, the adapter's hit, the 2 ms route. */
export const FRAMEWORK_PATHS = ['/own', '/hit', '/work'] as const
export type FrameworkPath = (typeof FRAMEWORK_PATHS)[number]
/** Issue 20: a hit >= 0.9 x the framework's own precomputed route, >= 4 x the 2 ms route. */
export const FRAMEWORK_TARGETS = { own: 0.9, work: 4 } as const

const FRAMEWORKS = (process.env.FRAMEWORKS?.split(',') ?? FRAMEWORK_NAMES) as Framework[]
const BODY = Buffer.alloc(1024, 'x')

/** About 2 ms of CPU, as a route rendering a page would spend. */
function work(): void {
  const end = performance.now() + 2
  while (performance.now() < end);
}

async function server(name: Framework): Promise<number> {
  if (name === 'fastify') {
    const { default: Fastify } = await import('fastify')
    const { default: accelerator } = await import('../src/frameworks/fastify.js')
    const app = Fastify()
    // Only /hit behind the cache, as in the other frameworks (the plugin is app-wide).
    await app.register(accelerator, { unless: (req) => req.url !== '/hit' })
    app.get('/own', (_req, reply) => void reply.type('text/plain').send(BODY))
    app.get(
      '/hit',
      { config: { cacheFor: 3600 } },
      (_req, reply) => void reply.type('text/plain').send(BODY),
    )
    app.get('/work', (_req, reply) => {
      work()
      reply.type('text/plain').send(BODY)
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    return (app.server.address() as AddressInfo).port
  }
  if (name === 'koa') {
    const { default: Koa } = await import('koa')
    const { default: accelerator } = await import('../src/frameworks/koa.js')
    const app = new Koa()
    const cache = accelerator()
    app.use(async (ctx, next) => (ctx.path === '/hit' ? cache(ctx, next) : next()))
    app.use((ctx) => {
      if (ctx.path === '/work') work()
      if (ctx.path === '/hit') ctx.state.cacheFor = 3600
      ctx.type = 'text/plain'
      ctx.body = BODY
    })
    return listen(app.callback())
  }
  if (name === 'hono') {
    const { Hono } = await import('hono')
    const { getRequestListener } = await import('@hono/node-server')
    const { accelerateFetch } = await import('../src/frameworks/fetch.js')
    const app = new Hono()
    const cached = accelerateFetch(app.fetch)
    app.get('/own', (c) => c.body(BODY, 200, { 'content-type': 'text/plain' }))
    app.get('/hit', (c) =>
      c.body(BODY, 200, { 'content-type': 'text/plain', 'cache-control': 's-maxage=3600' }),
    )
    app.get('/work', (c) => {
      work()
      return c.body(BODY, 200, { 'content-type': 'text/plain' })
    })
    return listen(
      getRequestListener((request: Request, env: object) =>
        new URL(request.url).pathname === '/hit' ? cached(request, env) : app.fetch(request, env),
      ),
    )
  }
  const { default: express } = await import('express')
  const { accelerate } = await import('../src/index.js')
  const app = express()
  app.use('/hit', accelerate.middleware())
  app.get('/own', (_req, res) => void res.type('text/plain').send(BODY))
  app.get('/hit', (_req, res) => {
    res.locals.cacheFor = 3600
    res.type('text/plain').send(BODY)
  })
  app.get('/work', (_req, res) => {
    work()
    res.type('text/plain').send(BODY)
  })
  return listen(app)
}

function listen(listener: http.RequestListener): Promise<number> {
  const server = http.createServer(listener)
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  )
}

function load(url: string, seconds: number): Promise<number> {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections: 10, duration: seconds }, (err, result) =>
      err ? reject(err) : resolve(result.requests.average),
    )
  })
}

/**
 * Starts `name`'s server in a process of its own, on CPU `cpu` when given (taskset): its base URL,
 * and `stop`.
 */
export async function startFramework(
  name: Framework,
  cpu?: string,
): Promise<{ base: string; stop: () => void }> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', name], { stdio: 'inherit' })
  if (cpu !== undefined)
    execFileSync('taskset', ['-p', '-c', cpu, String(child.pid)], { stdio: 'ignore' })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve(m as number))
    child.once('exit', (code) =>
      reject(new Error(`${name}'s bench server exited (code ${code}) before it listened`)),
    )
  })
  return { base: `http://127.0.0.1:${port}`, stop: () => void child.kill() }
}

/** Throws unless `/hit` is answered from the cache: a row measuring misses would mean nothing. */
export async function checkHit(name: Framework, base: string): Promise<void> {
  const status = await new Promise<string>((resolve, reject) =>
    http
      .get(base + '/hit', (res) => {
        res.resume()
        resolve(String(res.headers['cache-status']))
      })
      .once('error', reject),
  )
  if (!status.includes('; hit'))
    throw new Error(
      `${name}: /hit is not a hit (Cache-Status: ${status}); warm it up first, and check the adapter stores it`,
    )
}

async function main(): Promise<void> {
  const arg = process.argv.find((a) => a.startsWith('--seconds='))
  const seconds = arg ? Number(arg.slice('--seconds='.length)) : 2
  let pinned = false
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' })
    pinned = true
  } catch {}
  const rows: string[] = [
    '| framework | own route req/s | hit req/s | 2 ms route req/s | hit / own | hit / 2 ms |',
    '|---|---:|---:|---:|---:|---:|',
  ]
  for (const name of FRAMEWORKS) {
    const { base, stop } = await startFramework(name, pinned ? '0' : undefined)
    for (const path of FRAMEWORK_PATHS) await load(base + path, 1) // warm up (and store)
    await checkHit(name, base)
    const rps: Record<string, number[]> = { '/own': [], '/hit': [], '/work': [] }
    for (const order of [FRAMEWORK_PATHS, [...FRAMEWORK_PATHS].reverse()]) {
      for (const path of order) rps[path]!.push(await load(base + path, seconds))
    }
    stop()
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
    const [own, hit, slow] = [mean(rps['/own']!), mean(rps['/hit']!), mean(rps['/work']!)]
    rows.push(
      `| ${name} | ${own.toFixed(0)} | ${hit.toFixed(0)} | ${slow.toFixed(0)} | ${(hit / own).toFixed(2)} | ${(hit / slow).toFixed(1)} |`,
    )
  }
  console.log(rows.join('\n'))
}

// Run as a script (or as a server it forks); imported by bench/index.ts, it only exports.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const serveAt = process.argv.indexOf('--serve')
  if (serveAt >= 0) {
    const port = await server(process.argv[serveAt + 1] as Framework)
    process.send!(port)
  } else {
    await main()
  }
}
