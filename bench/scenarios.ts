/**
 * What the bench measures: each HTTP scenario is a list of comparisons, a baseline and the
 * contenders measured against it in the same rounds, with the responses every run must produce
 * and the target (a ratio to the baseline) where the issue sets one. Sizes depend on the mode.
 */
import { strongEtag } from '../src/http/index.js'
import { KiB, MiB, pageBody, type ServerSpec } from './common.js'

/** What every response of a run must be, checked per run (a run that fails it is invalid). */
export interface Expectation {
  status: 200 | 304
  /** Counter of the accelerator's stats() that must grow by (nearly) one per request. */
  counter?: 'hits' | 'misses' | 'stores' | 'notModified'
  /** The accelerator's `misses` must not grow (every request answered from the cache). */
  noMisses?: boolean
  /** Pre-flight: the Cache-Status header must contain this (after up to a few tries). */
  cacheStatus?: string
  /** Redis command (INFO commandstats name) that must run once per request: proves a Redis hit. */
  redisCommand?: string
}

export interface Contender {
  label: string
  spec: ServerSpec
  /** Request headers of every request (conditional requests). */
  headers?: Record<string, string>
  /** Fill spec.headers with the headers this server answers `request` with (ceilings). */
  headersFrom?: { spec: ServerSpec; request?: Record<string, string>; status: 200 | 304 }
  expect: Expectation
  /** Whether the comparison's target applies to this contender's ratio. */
  targeted?: boolean
}

export interface Comparison {
  /** The scenario's heading, shared by its comparisons. */
  scenario: string
  /** This comparison's row label (a size). */
  name: string
  baseline: Contender
  candidates: Contender[]
  /** What the ratio means, for the table heading: candidate / baseline. */
  ratio: string
  /** Ratio the targeted contenders must reach (>= min). */
  target?: { min: number; text: string }
  redis?: boolean
  /** The request path (the key; apicache keys by URL). */
  path: string
  /** Concurrency of the load generator. */
  connections: number
  /** Printed under the scenario's table. */
  note?: string
}

export interface Plan {
  hitSizes: number[]
  redisSizes: number[]
  missSizes: number[]
  storingSizes: number[]
  /** Also measure the non-storable miss with a key per request (no coalescing). */
  missDistinct: boolean
  peerSizes: number[]
  expressMiddleware: boolean
  underLoadStores: Array<'memory' | 'redis'>
  cold: number
}

export const sizeLabel = (bytes: number) =>
  bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / KiB} KiB`

export function comparisons(
  plan: Plan,
  redisUrl: string | undefined,
  runId: string,
  redisTimeoutMs?: number,
): Comparison[] {
  const out: Comparison[] = []
  const hit: Expectation = { status: 200, counter: 'hits', noMisses: true, cacheStatus: 'hit' }
  const redisPrefix = (what: string) => `b${runId}:${what}:`
  const timeout = redisTimeoutMs ? { timeoutMs: redisTimeoutMs } : {}

  /** A hit from memory against the raw ceiling writing the same bytes and headers. */
  const memoryHit = (
    scenario: string,
    size: number,
    acc: ServerSpec,
    label: string,
    min: number,
  ): Comparison => ({
    scenario,
    name: sizeLabel(size),
    baseline: {
      label: 'ceiling: raw http, same bytes and headers',
      spec: { app: 'ceiling', size },
      headersFrom: { spec: acc, status: 200 },
      expect: { status: 200 },
    },
    candidates: [{ label, spec: acc, expect: hit, targeted: true }],
    ratio: 'hit / ceiling',
    target: size <= 16 * KiB ? { min, text: `>= ${min.toFixed(2)}` } : undefined,
    path: `/page/${size}`,
    connections: 50,
  })

  for (const size of plan.hitSizes) {
    // Issue 13: no regression on hits from the one-owner-per-generation redesign.
    out.push(
      memoryHit(
        '1. Memory hit vs ceiling',
        size,
        { app: 'acc-memory', size },
        'accelerator hit (MemoryStore)',
        0.92,
      ),
    )
  }

  if (redisUrl) {
    for (const size of plan.redisSizes) {
      const acc: ServerSpec = {
        app: 'acc-redis',
        size,
        redisUrl,
        prefix: redisPrefix(`hit${size}`),
        ...timeout,
      }
      out.push({
        scenario: '2. Redis hit vs Redis ceiling',
        name: sizeLabel(size),
        baseline: {
          label: 'ceiling: raw http, one ioredis getBuffer + end',
          spec: { app: 'redis-ceiling', size, redisUrl, prefix: redisPrefix(`ceil${size}`) },
          headersFrom: { spec: acc, status: 200 },
          expect: { status: 200, redisCommand: 'get' },
        },
        candidates: [
          // Not targeted: the ceiling plus RedisStore.get alone, which splits what a hit adds into
          // the store's share and the accelerator's (issue 14's profile of where the rest goes).
          {
            label: 'RedisStore.get + end, no accelerator',
            spec: {
              app: 'redis-store-get',
              size,
              redisUrl,
              prefix: redisPrefix(`get${size}`),
              ...timeout,
            },
            headersFrom: { spec: acc, status: 200 },
            expect: { status: 200, redisCommand: 'get' },
          },
          {
            label: 'accelerator hit (RedisStore)',
            spec: acc,
            expect: { ...hit, redisCommand: 'get' },
            targeted: true,
          },
        ],
        ratio: 'hit / Redis ceiling',
        // Issue 14: at the Redis ceiling for the sizes pages are; larger bodies are copied more.
        target: size <= 16 * KiB ? { min: 0.95, text: '>= 0.95' } : { min: 0.9, text: '>= 0.90' },
        redis: true,
        path: `/page/${size}`,
        connections: 50,
      })
    }
    for (const size of plan.redisSizes) {
      // Issue 19: a RedisStore with a local cache answers hits from memory, as MemoryStore does.
      const acc: ServerSpec = {
        app: 'acc-redis',
        size,
        redisUrl,
        prefix: redisPrefix(`local${size}`),
        localCacheBytes: 64 * MiB,
        ...timeout,
      }
      const label = 'accelerator hit (RedisStore, localCache)'
      out.push({
        ...memoryHit(
          '2b. Local-cache hit (RedisStore localCache) vs ceiling',
          size,
          acc,
          label,
          0.9,
        ),
        redis: true,
      })
    }
  }

  for (const size of plan.missSizes) {
    const candidates: Contender[] = [
      {
        label: 'accelerator miss, nothing storable (one URL)',
        spec: { app: 'acc-stream', size, chunk: 16 * KiB },
        expect: { status: 200, counter: 'misses' },
        targeted: true,
      },
    ]
    if (plan.missDistinct) {
      candidates.push({
        label: 'accelerator miss, nothing storable (a key per request)',
        spec: { app: 'acc-stream', size, chunk: 16 * KiB, distinct: true },
        expect: { status: 200, counter: 'misses' },
        targeted: true,
      })
    }
    if (plan.storingSizes.includes(size)) {
      candidates.push({
        label: 'accelerator miss, stored (a new key each request)',
        spec: { app: 'acc-stream', size, chunk: 16 * KiB, storing: true },
        expect: { status: 200, counter: 'stores' },
        targeted: true,
      })
    }
    out.push({
      scenario: '3. Miss overhead: a handler streaming 16 KiB writes',
      name: sizeLabel(size),
      baseline: {
        label: 'the same handler, bare',
        spec: { app: 'bare-stream', size, chunk: 16 * KiB },
        expect: { status: 200 },
      },
      candidates,
      ratio: 'accelerated / bare',
      // Issue 13 asks 0.85 of 16 KiB (from 0.74); issue 6 had asked 0.95.
      target:
        size <= 16 * KiB
          ? { min: 0.85, text: '>= 0.85' }
          : { min: 0.95, text: '>= 0.95 (overhead <= 5 %)' },
      path: `/stream/${size}`,
      connections: size >= MiB ? 16 : 50,
      note:
        'Nothing storable (no opt-in), one URL: after the first response, which could not be shared, requests for the URL no ' +
        'longer wait on each other (hit-for-miss), as for any hot uncacheable page; with a key per request, only the miss ' +
        'itself remains. Stored: `key` gives each request a key of its own, so each is a miss that copies the body, computes its ' +
        'ETag (SHA-1) and stores it; once the 64 MiB MemoryStore is full, each store evicts.',
    })
  }

  {
    const acc: ServerSpec = { app: 'acc-memory', size: KiB }
    // The ETag the accelerator computes for the stored page (a strong one, from its bytes).
    const conditional = { 'if-none-match': strongEtag(pageBody(KiB)) }
    out.push({
      scenario: '4. 304 paths',
      name: 'cached 304',
      baseline: {
        label: 'ceiling: raw http, the same 304 headers',
        spec: { app: 'ceiling-304', size: KiB },
        headersFrom: { spec: acc, request: conditional, status: 304 },
        headers: conditional,
        expect: { status: 304 },
      },
      candidates: [
        {
          label: 'accelerator: If-None-Match answered from the cache',
          spec: acc,
          headers: conditional,
          expect: { status: 304, counter: 'notModified', noMisses: true, cacheStatus: 'hit' },
        },
      ],
      ratio: '304 / ceiling',
      path: `/page/${KiB}`,
      connections: 50,
    })
    out.push({
      scenario: '4. 304 paths',
      name: 'lazy 304 on a miss',
      baseline: {
        label: 'bare handler: full generation of the expensive body (200, 84 KiB)',
        spec: { app: 'bare-expensive', size: 0 },
        headers: { 'if-none-match': '"report-42"' },
        expect: { status: 200 },
      },
      candidates: [
        {
          label: 'accelerator: ETag set, body returned lazily, 304 before it starts',
          spec: { app: 'acc-lazy', size: 0 },
          headers: { 'if-none-match': '"report-42"' },
          expect: { status: 304, counter: 'notModified', cacheStatus: 'fwd=miss' },
        },
      ],
      ratio: 'lazy 304 / full generation',
      path: '/report',
      connections: 50,
      note: 'Every request carries a matching If-None-Match. Bare Node ignores it and renders the body (84 KiB, about 1 ms of CPU); the accelerator answers 304 without calling the generator.',
    })
  }

  for (const size of plan.peerSizes) {
    const candidates: Contender[] = [
      {
        label: 'accelerator hit (http, MemoryStore)',
        spec: { app: 'acc-memory', size },
        expect: hit,
        targeted: true,
      },
    ]
    if (plan.expressMiddleware)
      candidates.push({
        label: 'accelerator hit (Express middleware)',
        spec: { app: 'acc-express', size },
        expect: hit,
      })
    out.push({
      scenario: '5. Peers: apicache 1.6 (memory) on Express 5',
      name: sizeLabel(size),
      baseline: {
        label: 'apicache hit (memory-cache)',
        spec: { app: 'apicache-memory', size },
        expect: { status: 200 },
      },
      candidates,
      ratio: 'accelerator / apicache',
      target: { min: 4, text: '>= 4' },
      path: `/page/${size}`,
      connections: 50,
    })
  }
  if (redisUrl) {
    for (const size of plan.peerSizes) {
      out.push({
        scenario: '5. Peers: apicache 1.6 (Redis) on Express 5',
        name: sizeLabel(size),
        baseline: {
          label: 'apicache hit (Redis, ioredis client)',
          spec: { app: 'apicache-redis', size, redisUrl },
          expect: { status: 200, redisCommand: 'hgetall' },
        },
        candidates: [
          {
            label: 'accelerator hit (http, RedisStore)',
            spec: {
              app: 'acc-redis',
              size,
              redisUrl,
              prefix: redisPrefix(`hit${size}`),
              ...timeout,
            },
            expect: { ...hit, redisCommand: 'get' },
            targeted: true,
          },
        ],
        ratio: 'accelerator / apicache',
        target: { min: 4, text: '>= 4' },
        redis: true,
        path: `/page/${size}`,
        connections: 50,
        note:
          'apicache 1.6 expects a node_redis 2/3 client and reads `client.connected`, which ioredis does not have: without a ' +
          '`connected` getter (added in bench/servers.ts) it silently serves from memory. Every apicache Redis hit is an HGETALL ' +
          'plus JSON.parse of the whole response, whose Buffer body was stored as a JSON array of byte values.',
      })
    }
  }

  for (const store of plan.underLoadStores) {
    if (store === 'redis' && !redisUrl) continue
    const base: ServerSpec = {
      app: store === 'memory' ? 'acc-memory' : 'acc-redis',
      size: KiB,
      cold: plan.cold,
    }
    if (store === 'redis')
      Object.assign(base, { redisUrl, prefix: redisPrefix('calm'), ...timeout })
    const busy: ServerSpec = { ...base, invalidateRate: 100 }
    if (store === 'redis') busy.prefix = redisPrefix('busy')
    out.push({
      scenario: '6b. Hits while invalidateTags runs at 100/s',
      name: store === 'memory' ? 'MemoryStore' : 'RedisStore',
      baseline: {
        label: `hits, ${plan.cold / 1000}k other entries, no invalidations`,
        spec: base,
        expect: hit,
      },
      candidates: [
        { label: 'hits while 100 invalidateTags/s drop 10 entries each', spec: busy, expect: hit },
      ],
      ratio: 'with / without invalidations',
      redis: store === 'redis',
      path: `/page/${KiB}`,
      connections: 50,
      note: `Both servers hold the hot 1 KiB page and ${plan.cold} other entries tagged in groups of 10; the busy one calls invalidateTags on one group every 10 ms of a run (in the serving process) and stores the dropped groups again between runs.`,
    })
  }
  return out
}
