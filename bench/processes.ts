/**
 * The processes a bench run starts: servers (one per spec, pinned to the server CPU), the driver
 * (pinned to the load generator's CPU), a private redis-server, and one-shot measurement processes.
 * Every child gets an IPC channel and exits when the runner goes away.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { freePort, waitForPing } from '../test/fixtures/redis-server.js'
import {
  ask,
  procCpuUs,
  sleep,
  type FromDriver,
  type FromServer,
  type RunResult,
  type RunSpec,
  type ServerSample,
  type ServerSpec,
  type WarmSpec,
} from './common.js'

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))

/** Which CPUs each kind of process runs on, and how that was decided (printed with the results). */
export interface Pinning {
  server?: string
  driver?: string
  redis?: string
  note: string
}

export function choosePinning(redisCpu: 'server' | 'driver'): Pinning {
  const cores = availableParallelism()
  let taskset = false
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
    taskset = true
  } catch {}
  if (cores < 2 || !taskset) {
    return {
      note: `not pinned: ${cores < 2 ? `only ${cores} CPU` : 'taskset (util-linux) not found'}; servers, load generator and Redis share the CPUs`,
    }
  }
  const redis = redisCpu === 'server' ? '0' : '1'
  return {
    server: '0',
    driver: '1',
    redis,
    note:
      `taskset: servers on CPU 0, the load generator (and this runner, idle while it runs) on CPU 1; ` +
      `redis-server on CPU ${redis} (${redisCpu === 'driver' ? "sharing the load generator's core: its CPU is added to the generator's when judging load-bound" : "sharing the server's core: every Redis row pays Redis's CPU on the server core"})`,
  }
}

function pinned(cpu: string | undefined, command: string, args: string[]): [string, string[]] {
  return cpu === undefined ? [command, args] : ['taskset', ['-c', cpu, command, ...args]]
}

/** A running server process. */
export class ServerHandle {
  readonly url: string
  private constructor(
    readonly spec: ServerSpec,
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.url = `http://127.0.0.1:${port}`
  }

  static async start(
    spec: ServerSpec,
    pinning: Pinning,
    nodeArgs: string[] = [],
  ): Promise<ServerHandle> {
    const [command, args] = pinned(pinning.server, process.execPath, [
      ...nodeArgs,
      here('./servers.js'),
      JSON.stringify(spec),
    ])
    // NODE_ENV=production: Express's production mode, and apicache without its debug headers.
    const child = spawn(command, args, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, NODE_ENV: 'production' },
    })
    const port = await new Promise<number>((resolve, reject) => {
      child.on('message', (message: FromServer) => {
        if (message.type === 'ready') resolve(message.port)
        if (message.type === 'error')
          reject(new Error(`server ${spec.app} failed: ${message.message}`))
      })
      child.once('exit', (code) =>
        reject(new Error(`server ${spec.app} exited (${code}) before listening`)),
      )
    })
    return new ServerHandle(spec, child, port)
  }

  async sample(): Promise<ServerSample> {
    return (await ask<{ id: number; sample: ServerSample }>(this.child, { type: 'sample' })).sample
  }

  async phase(phase: 'measure' | 'idle'): Promise<void> {
    await ask(this.child, { type: 'phase', phase }, 120_000)
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.send({ type: 'exit' })
    await Promise.race([exited, sleep(10_000)])
    if (this.child.exitCode === null) this.child.kill('SIGKILL')
  }
}

/** Servers by spec, started on first use, so scenarios that share a server share its warm-up. */
export class ServerPool {
  readonly #servers = new Map<string, Promise<ServerHandle>>()
  constructor(private readonly pinning: Pinning) {}

  get(spec: ServerSpec): Promise<ServerHandle> {
    const key = JSON.stringify(spec)
    let server = this.#servers.get(key)
    if (!server) this.#servers.set(key, (server = ServerHandle.start(spec, this.pinning)))
    return server
  }

  /** Stops every server whose spec is not in `keep`. */
  async retain(keep: readonly ServerSpec[]): Promise<void> {
    const wanted = new Set(keep.map((spec) => JSON.stringify(spec)))
    const stopping: Promise<void>[] = []
    for (const [key, server] of this.#servers) {
      if (wanted.has(key)) continue
      this.#servers.delete(key)
      stopping.push(
        server.then(
          (s) => s.stop(),
          () => {},
        ),
      )
    }
    await Promise.all(stopping)
  }
}

/** The driver process: autocannon and wrk runs, one at a time, on the load generator's CPU. */
export class Driver {
  private constructor(private readonly child: ChildProcess) {}

  static async start(pinning: Pinning): Promise<Driver> {
    const [command, args] = pinned(pinning.driver, process.execPath, [
      here('./drivers.js'),
      '--driver',
    ])
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    await new Promise<void>((resolve, reject) => {
      child.once('message', (message: FromDriver) => message.type === 'ready' && resolve())
      child.once('exit', (code) => reject(new Error(`driver exited (${code})`)))
    })
    return new Driver(child)
  }

  async run(spec: RunSpec): Promise<RunResult> {
    const reply = await ask<{ id: number; result?: RunResult; error?: string }>(
      this.child,
      { type: 'run', spec },
      (spec.duration + spec.warmup) * 1000 + 60_000,
    )
    if (!reply.result) throw new Error(`load run failed: ${reply.error}`)
    return reply.result
  }

  async warm(spec: WarmSpec): Promise<Record<string, number>> {
    const reply = await ask<{ id: number; statuses?: Record<string, number>; error?: string }>(
      this.child,
      { type: 'warm', spec },
      120_000,
    )
    if (!reply.statuses) throw new Error(`warm-up failed: ${reply.error}`)
    return reply.statuses
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.send({ type: 'exit' })
  }
}

/** A private redis-server: nothing persisted, on a free port, pinned as `pinning.redis` says. */
export class RedisProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly version: string,
  ) {}

  static async start(pinning: Pinning): Promise<RedisProcess | undefined> {
    let version: string
    try {
      version =
        /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ??
        '?'
    } catch {
      return undefined
    }
    const port = await freePort()
    const [command, args] = pinned(pinning.redis, 'redis-server', [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
    ])
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] })
    await waitForPing(port, 10_000)
    return new RedisProcess(child, `redis://127.0.0.1:${port}`, version)
  }

  /** CPU time of redis-server so far, µs. */
  cpuUs(): number {
    return procCpuUs(this.child.pid!)
  }

  async command(...args: string[]): Promise<string> {
    const port = new URL(this.url).port
    return execFileSync('redis-cli', ['-p', port, ...args], { encoding: 'utf8' })
  }

  stop(): void {
    this.child.kill('SIGKILL')
  }
}

/** One request: status, headers and body length (for pre-flight checks). */
export function fetchOnce(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; length: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      let length = 0
      res.on('data', (chunk: Buffer) => (length += chunk.length))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, length }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('pre-flight request timed out')))
  })
}

/**
 * Runs `node <file> <arg JSON>` pinned to the server CPU (with `nodeArgs`) and resolves the JSON of
 * its last stdout line: for the measurements that are not HTTP load (invalidation, memory).
 */
export function runJsonProcess<T>(
  file: string,
  arg: unknown,
  pinning: Pinning,
  nodeArgs: string[] = [],
): Promise<T> {
  const [command, args] = pinned(pinning.server, process.execPath, [
    ...nodeArgs,
    here(file),
    JSON.stringify(arg),
  ])
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout!.on('data', (data: Buffer) => (out += data))
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? ''
      if (code !== 0) return reject(new Error(`${file} exited ${code}: ${out}`))
      try {
        resolve(JSON.parse(last) as T)
      } catch {
        reject(new Error(`${file} printed no JSON: ${out}`))
      }
    })
  })
}
