// A model-based property test (fast-check, seeded and bounded in time): random sequences of
// requests (paths, methods, Vary and cookie headers, conditionals, aborts, concurrent bursts),
// origin behaviours (status, Cache-Control, tags, Set-Cookie, private, Vary, failures, bodies in
// random chunks), tag and URL invalidations (hard and soft) and clock advances, against both
// stores. Every response is checked against a reference model of what the origin produced:
//  1. bytes served equal the complete bytes of one generation, for that path and variant;
//  2. nothing is served from the cache after an invalidation of its tag or URL returned, unless
//     its generation began after the invalidation began (or it is the stale serve a soft purge
//     allows);
//  3. no Set-Cookie or private response ever reaches another request;
//  4. no partial body is ever served as complete, and a failed generation is never a hit;
//  5. a hit is fresh by its own TTL, or says it is stale.
// A second model (below) drives concurrent bursts over HTTP/1.1 and HTTP/2 with every generation
// held until the test lets it go: byte-exact bodies, handler runs per key, and waits in
// generations.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import http, { type IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { accelerate, MemoryStore, type AcceleratedResponse, type CacheStore } from '../src/index.js'
import { RedisStore } from '../stores/redis.js'
import { BACKGROUND } from '../src/core/background.js'
import { sharedRedis, PATIENT_MS } from './fixtures/redis-server.js'
import { eventually, steady } from './fixtures/http.js'
import { open, type Exchange, type Transport } from './fixtures/transports.js'

const PATHS = ['/a', '/b', '/c'] as const
const TAGS = ['t1', 't2', 't3'] as const
type Path = (typeof PATHS)[number]

interface Behaviour {
  status: 200 | 404 | 500
  cache: 'cacheFor' | 's-maxage' | 'public-max-age' | 'none' | 'private' | 'no-store'
  ttl: number
  tags: string[]
  setCookie: boolean
  vary: boolean
  chunks: number[]
  fail: 'none' | 'before' | 'mid'
}
interface RequestCommand {
  kind: 'request'
  path: Path
  method: 'GET' | 'HEAD' | 'POST'
  lang: 'fr' | 'de' | undefined
  user: 'u1' | 'u2' | undefined
  conditional: boolean
  abort: boolean
  behaviour: Behaviour
}
type InvalidateCommand =
  { kind: 'invalidateTags'; tags: string[]; soft: boolean } | { kind: 'invalidate'; path: Path }
type Command =
  | RequestCommand
  | InvalidateCommand
  | { kind: 'burst'; actions: Array<RequestCommand | InvalidateCommand> }
  | { kind: 'advance'; ms: number }

const behaviourArb: fc.Arbitrary<Behaviour> = fc.record({
  status: fc.constantFrom(200, 200, 200, 404, 500),
  cache: fc.constantFrom(
    'cacheFor',
    'cacheFor',
    's-maxage',
    'public-max-age',
    'none',
    'private',
    'no-store',
  ),
  ttl: fc.integer({ min: 1, max: 20 }),
  tags: fc.subarray([...TAGS]),
  setCookie: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  vary: fc.boolean(),
  chunks: fc.array(fc.integer({ min: 1, max: 6000 }), { minLength: 1, maxLength: 4 }),
  fail: fc.constantFrom('none', 'none', 'none', 'none', 'before', 'mid'),
}) as fc.Arbitrary<Behaviour>
const requestArb: fc.Arbitrary<RequestCommand> = fc.record({
  kind: fc.constant('request' as const),
  path: fc.constantFrom(...PATHS),
  method: fc.constantFrom('GET', 'GET', 'GET', 'GET', 'HEAD', 'POST'),
  lang: fc.constantFrom('fr', 'de', undefined),
  user: fc.constantFrom('u1', 'u2', undefined),
  conditional: fc.boolean(),
  abort: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  behaviour: behaviourArb,
}) as fc.Arbitrary<RequestCommand>
const invalidateArb: fc.Arbitrary<InvalidateCommand> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('invalidateTags' as const),
      tags: fc.subarray([...TAGS], { minLength: 1 }),
      soft: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('invalidate' as const),
      path: fc.constantFrom(...PATHS),
    }),
  },
)
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: requestArb },
  // Concurrent actions: invalidations land in the middle of generations (which span several
  // turns of the event loop), and requests for one key coalesce.
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('burst' as const),
      actions: fc.array(
        fc.oneof({ weight: 3, arbitrary: requestArb }, { weight: 1, arbitrary: invalidateArb }),
        { minLength: 2, maxLength: 6 },
      ),
    }),
  },
  { weight: 3, arbitrary: invalidateArb },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.integer({ min: 100, max: 15_000 }),
    }),
  },
)

/** One origin response, as the model knows it. */
interface Generation {
  id: number
  path: string
  lang: string | undefined
  requestId: number
  background: boolean
  startSeq: number
  headAt: number
  behaviour: Behaviour
  full: Buffer
}
interface Invalidation {
  startSeq: number
  endSeq: number
  tags?: readonly string[]
  path?: string
  soft: boolean
}

/** Deterministic bytes for a generation: its id first, so a body names its generation. */
function bodyOf(id: number, path: string, size: number): Buffer {
  const head = Buffer.from(`gen=${id};path=${path};`)
  const body = Buffer.alloc(Math.max(size, head.length))
  head.copy(body)
  let x = id * 2654435761
  for (let i = head.length; i < body.length; i++)
    body[i] = 97 + (((x = (x * 1103515245 + 12345) >>> 0) >>> 24) % 26)
  return body
}

const STORABLE_STATUSES = new Set([200, 404])
function storable(b: Behaviour): boolean {
  return (
    STORABLE_STATUSES.has(b.status) &&
    (b.cache === 'cacheFor' || b.cache === 's-maxage' || b.cache === 'public-max-age') &&
    !b.setCookie &&
    b.fail === 'none'
  )
}

/** Runs one sequence of commands against a fresh accelerator; throws on the first violation. */
async function runSequence(
  makeStore: (now: () => number) => Promise<CacheStore>,
  commands: Command[],
): Promise<void> {
  let seq = 0
  let now = Date.UTC(2026, 0, 1)
  let requestIds = 0
  const behaviours = new Map<string, Behaviour>()
  const generations = new Map<number, Generation>()
  const invalidations: Invalidation[] = []
  const etags = new Map<string, number>()
  const violations: string[] = []
  const store = await makeStore(() => now)
  const app = accelerate(
    async (req: IncomingMessage, res: AcceleratedResponse) => {
      const path = new URL(req.url!, 'http://x').pathname
      const b = behaviours.get(path)!
      const id = generations.size + 1
      const lang = b.vary ? (req.headers['accept-language'] as string | undefined) : undefined
      const g: Generation = {
        id,
        path,
        lang,
        requestId: Number(req.headers['x-request-id']),
        background: (req as unknown as Record<symbol, boolean>)[BACKGROUND] === true,
        startSeq: ++seq,
        headAt: now,
        behaviour: b,
        full: bodyOf(
          id,
          path,
          b.chunks.reduce((a, c) => a + c, 0),
        ),
      }
      generations.set(id, g)
      if (b.fail === 'before') throw new Error('origin failed before its response')
      res.statusCode = b.status
      if (b.cache === 'cacheFor') res.cacheFor = b.ttl
      else if (b.cache === 's-maxage') res.setHeader('cache-control', `s-maxage=${b.ttl}`)
      else if (b.cache === 'public-max-age')
        res.setHeader('cache-control', `public, max-age=${b.ttl}`)
      else if (b.cache === 'private')
        ((res.cacheFor = b.ttl), res.setHeader('cache-control', 'private'))
      else if (b.cache === 'no-store')
        ((res.cacheFor = b.ttl), res.setHeader('cache-control', 'no-store'))
      res.tags = b.tags
      if (b.setCookie) res.setHeader('set-cookie', `sid=${g.requestId}.${id}`)
      if (b.vary) res.setHeader('vary', 'Accept-Language')
      res.setHeader('content-type', 'text/plain')
      let offset = 0
      for (const [i, size] of b.chunks.entries()) {
        const chunk = g.full.subarray(
          offset,
          i === b.chunks.length - 1 ? g.full.length : offset + size,
        )
        offset += chunk.length
        if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve))
        if (b.fail === 'mid') throw new Error('origin failed mid-stream')
        await new Promise((resolve) => setImmediate(resolve))
      }
      res.end()
    },
    {
      store,
      now: () => now,
      staleWhileRevalidate: 5,
      staleIfError: 5,
      coalesceTimeoutMs: 2000,
      onError: () => {},
    },
  )
  const server = http.createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const send = async (cmd: RequestCommand) => {
    behaviours.set(cmd.path, cmd.behaviour)
    const requestId = ++requestIds
    const startSeq = ++seq
    const headers: Record<string, string> = { 'x-request-id': String(requestId) }
    if (cmd.lang) headers['accept-language'] = cmd.lang
    if (cmd.user) headers.cookie = `user=${cmd.user}`
    const known = [...etags.keys()]
    if (cmd.conditional && known.length > 0)
      headers['if-none-match'] = known[requestId % known.length]!
    const reply = await exchange(base + cmd.path, cmd.method, headers, cmd.abort)
    check(cmd, requestId, startSeq, reply, headers)
  }

  const check = (
    cmd: RequestCommand,
    requestId: number,
    startSeq: number,
    reply: Exchanged,
    sent: Record<string, string>,
  ) => {
    const where = `request ${requestId} (${cmd.method} ${cmd.path} lang=${cmd.lang} user=${cmd.user})`
    if (reply.kind === 'cut' || reply.kind === 'aborted') {
      // A cut is a failing generation's (a handler failure mid-stream: its own, or one it read as
      // the body streamed, coalescing) or its abort.
      const own = [...generations.values()].some(
        (g) => g.path === cmd.path && g.behaviour.fail === 'mid',
      )
      if (reply.kind === 'cut' && !own)
        violations.push(`${where}: connection cut without a failing generation of its own`)
      return
    }
    const { status, headers, body } = reply
    const cacheStatus = String(headers['cache-status'] ?? '')
    if (cmd.method === 'POST' && cacheStatus !== '')
      violations.push(`${where}: a POST went through the cache (${cacheStatus})`)
    if (typeof headers.etag === 'string' && body.length > 0) {
      const g = /^gen=(\d+);/.exec(body.toString('latin1'))
      if (g) etags.set(headers.etag, Number(g[1]))
    }
    if (status === 304) {
      // Only for a client that asked with this very validator.
      if (headers.etag === undefined || headers.etag !== sent['if-none-match'])
        violations.push(
          `${where}: a 304 with ETag ${headers.etag} for If-None-Match ${sent['if-none-match']}`,
        )
      const g = generations.get(etags.get(String(headers.etag)) ?? -1)
      if (g) checkServe(g, where, startSeq, cacheStatus, g.requestId !== requestId || g.background)
      return
    }
    if (status === 504) return
    if (status === 500 && body.toString() === 'Internal Server Error\n') {
      const own = [...generations.values()].some(
        (g) => g.requestId === requestId && !g.background && g.behaviour.fail === 'before',
      )
      if (!own)
        violations.push(`${where}: a 500 from the cache without a failing generation of its own`)
      return
    }
    const text = cmd.method === 'HEAD' ? undefined : body.toString('latin1')
    const gid =
      text === undefined ? etags.get(String(headers.etag)) : Number(/^gen=(\d+);/.exec(text)?.[1])
    if (cmd.method === 'HEAD' && gid === undefined) return
    const g = gid === undefined ? undefined : generations.get(gid)
    if (!g)
      return void violations.push(
        `${where}: a body naming no generation: ${JSON.stringify(text?.slice(0, 40))}`,
      )
    // 1 and 4: the complete bytes of one generation, for this path and variant.
    if (cmd.method !== 'HEAD' && !body.equals(g.full))
      violations.push(
        `${where}: served ${body.length} bytes, not generation ${g.id}'s ${g.full.length}`,
      )
    if (g.path !== cmd.path) violations.push(`${where}: served generation ${g.id} of ${g.path}`)
    if (g.behaviour.vary && g.lang !== cmd.lang)
      violations.push(`${where}: served generation ${g.id}, the ${g.lang} variant`)
    // 3: a Set-Cookie or private response only to the request that caused it.
    if (
      (g.behaviour.setCookie || g.behaviour.cache === 'private') &&
      (g.requestId !== requestId || g.background)
    )
      violations.push(`${where}: got generation ${g.id}, private to request ${g.requestId}`)
    if (
      headers['set-cookie'] !== undefined &&
      !String(headers['set-cookie']).startsWith(`sid=${requestId}.`)
    )
      violations.push(`${where}: got another request's cookie ${headers['set-cookie']}`)
    // Whatever was not generated for this very request came from the cache.
    checkServe(g, where, startSeq, cacheStatus, g.requestId !== requestId || g.background)
  }

  /** 2, 4 and 5 for a response the cache served. */
  const checkServe = (
    g: Generation,
    where: string,
    startSeq: number,
    cacheStatus: string,
    fromCache: boolean,
  ) => {
    if (!fromCache) return
    if (!storable(g.behaviour))
      violations.push(
        `${where}: served generation ${g.id} from the cache, which was never storable (${JSON.stringify(g.behaviour)})`,
      )
    const staleServe = /detail=(stale-while-revalidate|stale-if-error)/.test(cacheStatus)
    for (const inv of invalidations) {
      const reaches =
        inv.path !== undefined
          ? inv.path === g.path
          : inv.tags!.some((tag) => g.behaviour.tags.includes(tag))
      if (
        reaches &&
        inv.endSeq < startSeq &&
        g.startSeq < inv.startSeq &&
        !(inv.soft && staleServe)
      ) {
        violations.push(
          `${where}: served generation ${g.id} (began at ${g.startSeq}) after ${inv.soft ? 'a soft' : 'an'} invalidation (${inv.startSeq}..${inv.endSeq}) of ${inv.path ?? inv.tags!.join(',')}: ${cacheStatus}`,
        )
      }
    }
    if (!staleServe && !/detail=/.test(cacheStatus) && now >= g.headAt + g.behaviour.ttl * 1000)
      violations.push(`${where}: served generation ${g.id} stale as if fresh: ${cacheStatus}`)
  }

  const invalidate = async (cmd: InvalidateCommand) => {
    const inv: Invalidation = {
      startSeq: ++seq,
      endSeq: Infinity,
      soft: cmd.kind === 'invalidateTags' && cmd.soft,
      ...(cmd.kind === 'invalidate' ? { path: cmd.path } : { tags: cmd.tags }),
    }
    invalidations.push(inv)
    if (cmd.kind === 'invalidate') await app.invalidate(base + cmd.path)
    else await app.invalidateTags(cmd.tags, { soft: cmd.soft })
    inv.endSeq = ++seq
  }
  const act = (cmd: RequestCommand | InvalidateCommand) =>
    cmd.kind === 'request' ? send(cmd) : invalidate(cmd)

  try {
    for (const cmd of commands) {
      if (cmd.kind === 'burst') await Promise.all(cmd.actions.map(act))
      else if (cmd.kind === 'advance') now += cmd.ms
      else await act(cmd)
      if (violations.length > 0) break
    }
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await app.close()
    await store.clear()
    await store.close()
  }
  if (violations.length > 0) throw new Error(violations.join('\n'))
}

type Exchanged =
  | { kind: 'response'; status: number; headers: http.IncomingHttpHeaders; body: Buffer }
  | { kind: 'cut' }
  | { kind: 'aborted' }

/** One request on its own connection: the whole response, a cut, or (abort) our own hang-up. */
function exchange(
  url: string,
  method: string,
  headers: Record<string, string>,
  abort: boolean,
): Promise<Exchanged> {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        if (abort) {
          req.destroy()
          resolve({ kind: 'aborted' })
        }
      })
      res.on('end', () =>
        resolve(
          res.complete
            ? {
                kind: 'response',
                status: res.statusCode!,
                headers: res.headers,
                body: Buffer.concat(chunks),
              }
            : { kind: 'cut' },
        ),
      )
      res.on('aborted', () => resolve({ kind: 'cut' }))
      res.on('error', () => resolve({ kind: 'cut' }))
    })
    req.on('error', () => resolve(abort ? { kind: 'aborted' } : { kind: 'cut' }))
    req.end(method === 'POST' ? 'posted' : undefined)
  })
}

function property(
  t: Test,
  name: string,
  makeStore: (now: () => number) => Promise<CacheStore>,
  numRuns: number,
) {
  t.test(name, async (t) => {
    const stats = { runs: 0, commands: 0 }
    await fc.assert(
      fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 25 }), async (commands) => {
        stats.runs++
        stats.commands += commands.length
        await runSequence(makeStore, commands)
      }),
      { seed: 20261121, numRuns, interruptAfterTimeLimit: 40_000, markInterruptAsFailure: false },
    )
    t.ok(stats.runs > 0, `${stats.runs} sequences, ${stats.commands} commands, no violation`)
  })
}

property(t, 'the invariants hold on MemoryStore', async (now) => new MemoryStore({ now }), 150)

const redis = sharedRedis(t)
let prefix = 0
property(
  t,
  'the invariants hold on RedisStore',
  async (now) => {
    const store = new RedisStore({
      timeoutMs: PATIENT_MS,
      url: redis.url,
      prefix: `prop:${process.pid}:${prefix++}:`,
      now,
    })
    await store.ready()
    return store
  },
  60,
)

// Concurrent traffic (issue 13), over HTTP/1.1 and HTTP/2 (h2c). Each sequence is a few bursts;
// in a burst a wave of requests (GET, HEAD, conditional, two Vary variants, an unshareable path;
// normal, aborting and slow clients) arrives, invalidations and soft purges land while the
// generations it started are held, a second wave arrives, and the held generations are let go
// one step at a time in a generated order (every generation the handler starts is held before its
// headers and after its first bytes, so the interleaving is the generated one, not the machine's).
// Slow clients read nothing until the burst is over. Invariants:
//  A. every body is byte-exact to one generation of its path and variant that was valid when its
//     request arrived (not begun before an invalidation that returned before it arrived, unless
//     served as the stale copy a soft purge allows); a 304 names such a generation's validator;
//  B. per key and burst, handler runs <= invalidations reaching the key + 1 hedge + 1 (the
//     unshareable path is exempt: each of its requests may run the handler);
//  C. no request waits longer than one more generation than the one under way when it arrived,
//     plus one per invalidation reaching its key meanwhile (counted in generations of its key
//     completed while it waited: no wall clock), and none is held by a slow client.
type Client = 'normal' | 'abort' | 'slow'
interface BurstRequest {
  path: '/a' | '/v' | '/p'
  method: 'GET' | 'HEAD'
  lang: 'fr' | 'de'
  conditional: boolean
  client: Client
}
type BurstEvent =
  | { kind: 'tags'; tags: Array<'t1' | 't2'>; soft: boolean }
  | { kind: 'url'; path: '/a' | '/v' | '/p' }
type Style = 'end' | 'write+end' | 'string' | 'async-iterable' | 'pipe'
interface BurstBehaviour {
  style: Style
  etag: boolean
  large: boolean
  /** /p: Set-Cookie (else Cache-Control: private). */
  cookie: boolean
}
interface Burst {
  first: BurstRequest[]
  events: BurstEvent[]
  second: BurstRequest[]
  releases: number[]
  behaviour: BurstBehaviour
}

const burstRequestArb: fc.Arbitrary<BurstRequest> = fc.record({
  path: fc.constantFrom('/a', '/a', '/v', '/v', '/p'),
  method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD'),
  lang: fc.constantFrom('fr', 'de'),
  conditional: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
  client: fc.constantFrom('normal', 'normal', 'normal', 'normal', 'normal', 'abort', 'slow'),
}) as fc.Arbitrary<BurstRequest>
const burstEventArb: fc.Arbitrary<BurstEvent> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('tags' as const),
      tags: fc.subarray(['t1', 't2'] as Array<'t1' | 't2'>, { minLength: 1 }),
      soft: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('url' as const),
      path: fc.constantFrom('/a' as const, '/v' as const, '/p' as const),
    }),
  },
)
const burstArb: fc.Arbitrary<Burst> = fc.record({
  first: fc.array(burstRequestArb, { minLength: 1, maxLength: 10 }),
  events: fc.array(burstEventArb, { maxLength: 2 }),
  second: fc.array(burstRequestArb, { maxLength: 6 }),
  releases: fc.array(fc.nat({ max: 7 }), { minLength: 1, maxLength: 8 }),
  behaviour: fc.record({
    style: fc.constantFrom<Style>('end', 'write+end', 'string', 'async-iterable', 'pipe'),
    etag: fc.boolean(),
    large: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
    cookie: fc.boolean(),
  }),
})

const PATH_TAGS: Record<BurstRequest['path'], string[]> = {
  '/a': ['t1'],
  '/v': ['t2'],
  '/p': ['t1'],
}

/** One generation of the concurrent model. */
interface Run {
  id: number
  key: string
  path: BurstRequest['path']
  requestId: number
  startSeq: number
  /** The version of its path (invalidations begun so far) it was made at: its handler ETag's. */
  version: number
  full: Buffer
  done: boolean
}

async function runBursts(transport: Transport, bursts: Burst[]): Promise<void> {
  let seq = 0
  let requestIds = 0
  const violations: string[] = []
  const runs: Run[] = []
  const invalidations: Array<Invalidation & { paths: string[] }> = []
  const etags = new Map<string, Run>()
  const completions = new Map<string, number>()
  const held: Array<{ run: Run; open: () => void }> = []
  let behaviour: BurstBehaviour = bursts[0]!.behaviour
  let progress = 0
  const keyOf = (path: string, lang: string | undefined) => (path === '/v' ? `/v|${lang}` : path)
  const reaches = (inv: { paths: string[] }, path: string) => inv.paths.includes(path)
  // Generations of a key completed that could serve a request arriving at `startSeq`: not those
  // begun before an invalidation that ended before it arrived (no stale resurrection: it cannot
  // take them, whatever path the invalidation named, so waiting while they finish is no herd).
  const servable = (key: string, startSeq: number) =>
    runs.filter(
      (r) =>
        r.key === key &&
        r.done &&
        !invalidations.some((inv) => r.startSeq < inv.startSeq && inv.endSeq < startSeq),
    ).length
  const versionOf = (path: string) => invalidations.filter((inv) => reaches(inv, path)).length

  const app = accelerate(
    async (req: IncomingMessage, res: AcceleratedResponse) => {
      const path = new URL(req.url!, 'http://x').pathname as BurstRequest['path']
      const key = keyOf(path, req.headers['accept-language'] as string | undefined)
      const b = behaviour
      const id = runs.length + 1
      const run: Run = {
        id,
        key,
        path,
        requestId: Number(req.headers['x-request-id']),
        startSeq: ++seq,
        version: versionOf(path),
        full: bodyOf(id, key, b.large ? 200_000 : 3000),
        done: false,
      }
      runs.push(run)
      // Held until the test lets it go, before its headers and again after its first bytes:
      // the interleaving is the generated one, and clients can hang up mid-body.
      const pause = () => new Promise<void>((open) => held.push({ run, open }))
      await pause()
      res.cacheFor = 60
      res.tags = PATH_TAGS[path]
      if (path === '/v') res.setHeader('vary', 'Accept-Language')
      if (path === '/p' && b.cookie) res.setHeader('set-cookie', `sid=${run.requestId}.${id}`)
      if (path === '/p' && !b.cookie) res.setHeader('cache-control', 'private')
      if (b.etag) res.setHeader('etag', `"${path.slice(1)}-v${run.version}"`)
      res.setHeader('content-type', 'application/octet-stream')
      const finish = () => {
        run.done = true
        completions.set(key, (completions.get(key) ?? 0) + 1)
        progress++
      }
      const full = run.full
      if (b.style === 'end') return void (res.end(full), finish())
      if (b.style === 'string') return (finish(), full.toString('latin1')) // bodyOf is ASCII: the same bytes
      if (b.style === 'write+end') {
        res.write(full.subarray(0, 1000))
        await pause()
        return void (res.end(full.subarray(1000)), finish())
      }
      const chunks = async function* () {
        yield full.subarray(0, 1000)
        await pause()
        for (let at = 1000; at < full.length; at += 16_384) yield full.subarray(at, at + 16_384)
        finish()
      }
      if (b.style === 'pipe') return void Readable.from(chunks()).pipe(res)
      return chunks()
    },
    {
      now: () => Date.UTC(2026, 0, 1),
      staleWhileRevalidate: 5,
      coalesceTimeoutMs: 600_000,
      onError: () => {},
    },
  )
  const server = await open(transport, app)
  const counters = () => Object.values(app.stats()).reduce((a, n) => a + (n ?? 0), 0)

  interface Sent {
    req: BurstRequest
    id: number
    startSeq: number
    completedAtArrival: number
    invalidatedMeanwhile: number
    answered?: Exchange
    /** Generations of its key completed when its response ended. */
    completedAtAnswer?: number
    sentEtags: string[]
    resume?: () => void
    reply: Promise<Exchange>
  }
  let received = 0
  let ended = false
  const send = (req: BurstRequest): Sent => {
    const id = ++requestIds
    const key = keyOf(req.path, req.lang)
    const headers: Record<string, string> = {
      'x-request-id': String(id),
      'accept-language': req.lang,
    }
    const sentEtags = [
      `"${req.path.slice(1)}-v${versionOf(req.path)}"`,
      ...[...etags]
        .filter(([, r]) => r.key === key)
        .slice(-1)
        .map(([etag]) => etag),
    ]
    if (req.conditional) headers['if-none-match'] = sentEtags.join(', ')
    const startSeq = ++seq
    const sent: Sent = {
      req,
      id,
      startSeq,
      completedAtArrival: servable(key, startSeq),
      invalidatedMeanwhile: 0,
      sentEtags,
      reply: undefined as never,
    }
    sent.reply = server
      .request(req.path, {
        method: req.method,
        headers,
        ...(req.client === 'abort' ? { abortAfterBytes: 1 } : {}),
        ...(req.client === 'slow'
          ? {
              ownConnection: true,
              onResponse: (stream: NodeJS.ReadableStream) => (
                stream.pause(),
                (sent.resume = () => stream.resume())
              ),
            }
          : {
              onResponse: (stream: NodeJS.ReadableStream) =>
                void stream.on('data', (c: Buffer) => (received += c.length)),
            }),
      })
      .then((reply) => {
        sent.answered = reply
        sent.completedAtAnswer = servable(key, sent.startSeq)
        progress++
        // Connections cut when a sequence ends (after a violation) prove nothing.
        if (!ended) check(sent, reply)
        return reply
      })
    return sent
  }

  const check = (sent: Sent, reply: Exchange) => {
    const { req, id } = sent
    const where = `request ${id} (${req.method} ${req.path} ${req.lang}${req.conditional ? ' conditional' : ''} ${req.client}) over ${transport}`
    const key = keyOf(req.path, req.lang)
    if (req.client === 'abort' && !reply.complete) return
    if (!reply.complete)
      return void violations.push(
        `${where}: the response did not complete (${reply.status}, ${reply.body.length} bytes)`,
      )
    const cacheStatus = String(reply.headers['cache-status'] ?? '')
    const staleServe = /detail=stale/.test(cacheStatus)
    const valid = (run: { path: string; startSeq: number }) =>
      !invalidations.some(
        (inv) =>
          reaches(inv, run.path) &&
          run.startSeq < inv.startSeq &&
          inv.endSeq < sent.startSeq &&
          !(inv.soft && staleServe),
      )
    if (reply.status === 304) {
      const etag = String(reply.headers.etag)
      if (!req.conditional || !sent.sentEtags.includes(etag))
        violations.push(
          `${where}: a 304 with ETag ${etag} for If-None-Match ${req.conditional ? sent.sentEtags.join(', ') : '(none)'}`,
        )
      const version = /-v(\d+)"$/.exec(etag)
      // A handler ETag names a version of the path: the generation that began at that version.
      const at = version
        ? {
            path: req.path,
            startSeq:
              runs.find((r) => r.path === req.path && r.version === Number(version[1]))?.startSeq ??
              Infinity,
          }
        : etags.get(etag)
      if (at && !valid(at))
        violations.push(`${where}: a 304 for ${etag}, invalidated before the request arrived`)
      return
    }
    if (reply.status !== 200) return void violations.push(`${where}: status ${reply.status}`)
    const named =
      req.method === 'HEAD'
        ? etags.get(String(reply.headers.etag))
        : runs[Number(/^gen=(\d+);/.exec(reply.body.toString('latin1'))?.[1]) - 1]
    if (req.method === 'HEAD') {
      if (reply.body.length > 0)
        violations.push(`${where}: a HEAD with ${reply.body.length} body bytes`)
      if (named && !valid(named))
        violations.push(
          `${where}: HEAD headers of generation ${named.id}, invalidated before the request arrived`,
        )
      return
    }
    if (!named)
      return void violations.push(
        `${where}: a body naming no generation: ${JSON.stringify(reply.body.subarray(0, 30).toString('latin1'))} (${reply.body.length} bytes)`,
      )
    if (typeof reply.headers.etag === 'string') etags.set(reply.headers.etag, named)
    if (!reply.body.equals(named.full))
      violations.push(
        `${where}: ${reply.body.length} bytes, not generation ${named.id}'s ${named.full.length}`,
      )
    if (named.key !== key)
      violations.push(`${where}: served generation ${named.id} of ${named.key}`)
    if (req.path === '/p' && named.requestId !== id)
      violations.push(`${where}: got generation ${named.id}, private to request ${named.requestId}`)
    if (
      reply.headers['set-cookie'] !== undefined &&
      !String(reply.headers['set-cookie']).startsWith(`sid=${id}.`)
    )
      violations.push(`${where}: got another request's cookie ${reply.headers['set-cookie']}`)
    if (!valid(named))
      violations.push(
        `${where}: served generation ${named.id} (began at ${named.startSeq}), invalidated before the request arrived (${sent.startSeq}): ${cacheStatus}`,
      )
  }

  /** Waits until nothing moves: every request answered, waiting, or held with its generation. */
  const quiet = () => steady(() => progress + received + runs.length + counters(), 30)

  try {
    for (const [b, burst] of bursts.entries()) {
      behaviour = burst.behaviour
      const runsBefore = runs.length
      const all: Sent[] = burst.first.map(send)
      await quiet()
      const landed: typeof invalidations = []
      for (const event of burst.events) {
        const paths =
          event.kind === 'url'
            ? [event.path]
            : (['/a', '/v', '/p'] as const).filter((p) =>
                PATH_TAGS[p].some((tag) => (event.tags as string[]).includes(tag)),
              )
        const inv = {
          startSeq: ++seq,
          endSeq: Infinity,
          soft: event.kind === 'tags' && event.soft,
          paths,
          ...(event.kind === 'url' ? { path: event.path } : { tags: event.tags }),
        }
        invalidations.push(inv)
        landed.push(inv)
        for (const s of all)
          if (!s.answered && inv.paths.includes(s.req.path)) s.invalidatedMeanwhile++
        if (event.kind === 'url') await app.invalidate(event.path)
        else await app.invalidateTags(event.tags, { soft: event.soft })
        inv.endSeq = ++seq
      }
      all.push(...burst.second.map(send))
      await quiet()
      for (let step = 0; ; step++) {
        const pending = all.filter((s) => !s.answered && s.req.client !== 'slow')
        if (pending.length === 0 && held.length === 0) break
        if (held.length === 0) {
          // Nothing left to let go with requests unanswered: give them time to arrive, then say so.
          await steady(() => progress + received + runs.length + counters(), 400)
          if (held.length > 0 || all.every((s) => s.answered || s.req.client === 'slow')) continue
          violations.push(
            `burst ${b}: ${pending.map((s) => `request ${s.id}`).join(', ')} still waiting with no generation left to run (held by a slow client?)`,
          )
          break
        }
        if (step > 200) {
          violations.push(`burst ${b}: no end after 200 generations`)
          break
        }
        // Let one held generation go, the generated pick among those held.
        const [next] = held.splice(burst.releases[step % burst.releases.length]! % held.length, 1)
        next!.open()
        await quiet()
      }
      for (const s of all) s.resume?.()
      if (violations.length === 0)
        await eventually(() => all.every((s) => s.answered), 'every response ended', 10_000).catch(
          (err: Error) => violations.push(`burst ${b}: ${err.message} (slow clients resumed)`),
        )
      // B: handler runs per key in this burst.
      const burstRuns = new Map<string, number>()
      for (const run of runs.slice(runsBefore))
        burstRuns.set(run.key, (burstRuns.get(run.key) ?? 0) + 1)
      for (const [key, count] of burstRuns) {
        if (key === '/p') continue
        const bound = landed.filter((inv) => reaches(inv, key.split('|')[0]!)).length + 2
        if (count > bound)
          violations.push(
            `burst ${b}: ${count} handler runs for ${key}, more than ${bound} (invalidations + 1 hedge + 1)`,
          )
      }
      // C: generations of its key completed while a request waited.
      for (const s of all) {
        if (s.req.path === '/p' || s.req.client === 'slow' || s.completedAtAnswer === undefined)
          continue
        const waited = s.completedAtAnswer - s.completedAtArrival
        if (waited > 2 + s.invalidatedMeanwhile)
          violations.push(
            `burst ${b}: request ${s.id} (${s.req.method} ${s.req.path} ${s.req.lang}) waited through ${waited} generations of its key (${s.invalidatedMeanwhile} invalidations meanwhile)`,
          )
      }
      if (violations.length > 0) break
    }
  } finally {
    ended = true
    for (const h of held.splice(0)) h.open()
    await server.close()
    await app.close()
  }
  if (violations.length > 0) throw new Error(violations.join('\n'))
}

function concurrentProperty(t: Test, transport: Transport, numRuns: number) {
  t.test(
    `concurrent bursts over ${transport}: byte-exact, never herded, never held`,
    { timeout: 60_000 },
    async (t) => {
      const stats = { runs: 0, bursts: 0 }
      await fc.assert(
        fc.asyncProperty(fc.array(burstArb, { minLength: 1, maxLength: 4 }), async (bursts) => {
          stats.runs++
          stats.bursts += bursts.length
          await runBursts(transport, bursts)
        }),
        { seed: 20261129, numRuns, interruptAfterTimeLimit: 8_000 },
      )
      t.ok(stats.runs > 0, `${stats.runs} sequences, ${stats.bursts} bursts, no violation`)
    },
  )
}

concurrentProperty(t, 'http', 15)
concurrentProperty(t, 'h2c', 15)
