// freshness(): what opts a response in to storing, for how long, and what never is stored.
import t from 'tap'
import { freshness, type StoragePolicy } from '../src/policy.js'
import { DEFAULT_CACHEABLE_STATUSES } from '../src/options.js'

const now = Date.UTC(2026, 0, 1, 12, 0, 0)
const policy: StoragePolicy = { cacheableStatuses: new Set(DEFAULT_CACHEABLE_STATUSES), honorCacheControl: true, defaultCacheFor: 0, sharedCache: false }
const date = new Date(now).toUTCString()

type Row = [
  name: string,
  response: { status?: number; headers?: Record<string, string | string[]>; cacheFor?: number },
  expected: { ttl: number; initialAge?: number; keep?: number } | undefined,
  overrides?: { req?: Record<string, string>; policy?: Partial<StoragePolicy> },
]

const rows: Row[] = [
  ['nothing said: not stored', {}, undefined],
  ['res.cacheFor opts in', { cacheFor: 30 }, { ttl: 30 }],
  ['res.cacheFor = 0 opts out, even with headers', { cacheFor: 0, headers: { 'cache-control': 's-maxage=60' } }, undefined],
  ['res.cacheFor < 0 opts out', { cacheFor: -5 }, undefined],
  ['res.cacheFor overrides the headers for the server TTL', { cacheFor: 5, headers: { 'cache-control': 'public, max-age=600' } }, { ttl: 5 }],
  ['res.cacheFor stores a no-cache response (the header is for browsers)', { cacheFor: 5, headers: { 'cache-control': 'no-cache' } }, { ttl: 5 }],
  ['s-maxage opts in', { headers: { 'cache-control': 's-maxage=120' } }, { ttl: 120 }],
  ['s-maxage wins over max-age (RFC 9111 §5.2.2.10)', { headers: { 'cache-control': 'public, max-age=10, s-maxage=120' } }, { ttl: 120 }],
  ['public, max-age opts in', { headers: { 'cache-control': 'public, max-age=60' } }, { ttl: 60 }],
  ['Cache-Control as repeated header lines', { headers: { 'cache-control': ['public', 'max-age=60'] } }, { ttl: 60 }],
  ['max-age without public is the browser\'s only', { headers: { 'cache-control': 'max-age=60' } }, undefined],
  ['max-age without public overrides Expires (RFC 9111 §5.3)', { headers: { 'cache-control': 'max-age=60', expires: new Date(now + 600_000).toUTCString(), date } }, undefined],
  ['public, max-age=0: declared, so no default', { headers: { 'cache-control': 'public, max-age=0' } }, undefined, { policy: { defaultCacheFor: 60 } }],
  ['public, max-age=abc: no usable lifetime', { headers: { 'cache-control': 'public, max-age=abc' } }, undefined],
  ['Expires - Date opts in', { headers: { expires: new Date(now + 90_000).toUTCString(), date } }, { ttl: 90 }],
  ['Expires against now when Date is absent', { headers: { expires: new Date(now + 30_000).toUTCString() } }, { ttl: 30 }],
  ['Expires in the past', { headers: { expires: new Date(now - 30_000).toUTCString(), date } }, undefined],
  ['an invalid Expires means already expired (RFC 9111 §5.3)', { headers: { expires: '0' } }, undefined, { policy: { defaultCacheFor: 60 } }],
  ['no-cache from the handler without cacheFor', { headers: { 'cache-control': 'no-cache, s-maxage=60' } }, undefined, { policy: { defaultCacheFor: 60 } }],
  ['defaultCacheFor applies when nothing is said', {}, { ttl: 45 }, { policy: { defaultCacheFor: 45 } }],
  ['defaultCacheFor applies to a browser-only max-age', { headers: { 'cache-control': 'max-age=5' } }, { ttl: 45 }, { policy: { defaultCacheFor: 45 } }],
  ['honorCacheControl: false ignores the headers\' opt-in', { headers: { 'cache-control': 's-maxage=60' } }, undefined, { policy: { honorCacheControl: false } }],
  ['honorCacheControl: false still honours cacheFor', { cacheFor: 10, headers: { 'cache-control': 's-maxage=60' } }, { ttl: 10 }, { policy: { honorCacheControl: false } }],
  ['Age reduces header freshness (RFC 9111 §4.2.3)', { headers: { 'cache-control': 's-maxage=100', age: '30' } }, { ttl: 70, initialAge: 30 }],
  ['Age beyond the lifetime: stale on arrival', { headers: { 'cache-control': 's-maxage=100', age: '100' } }, undefined],
  ['Age does not shorten an explicit cacheFor', { cacheFor: 60, headers: { age: '30' } }, { ttl: 60, initialAge: 30 }],
  ['a malformed Age is absent', { headers: { 'cache-control': 's-maxage=100', age: 'soon' } }, { ttl: 100, initialAge: 0 }],
  // Never stored, whatever opts in.
  ['no-store', { cacheFor: 60, headers: { 'cache-control': 'no-store' } }, undefined],
  ['private', { cacheFor: 60, headers: { 'cache-control': 'private, max-age=60' } }, undefined],
  ['Set-Cookie', { cacheFor: 60, headers: { 'set-cookie': ['a=1'] } }, undefined],
  ['status outside cacheableStatuses', { cacheFor: 60, status: 500 }, undefined],
  ['206 is not a cacheable status by default', { cacheFor: 60, status: 206 }, undefined],
  ['a custom cacheableStatuses list', { cacheFor: 60, status: 500 }, { ttl: 60 }, { policy: { cacheableStatuses: new Set([500]) } }],
  ['404 is cacheable by default', { cacheFor: 60, status: 404 }, { ttl: 60 }],
  ['Authorization without public or s-maxage', { cacheFor: 60 }, undefined, { req: { authorization: 'Bearer x' } }],
  ['Authorization with public (RFC 9111 §3.5)', { headers: { 'cache-control': 'public, max-age=60' } }, { ttl: 60 }, { req: { authorization: 'Bearer x' } }],
  ['Authorization with s-maxage (RFC 9111 §3.5)', { headers: { 'cache-control': 's-maxage=60' } }, { ttl: 60 }, { req: { authorization: 'Bearer x' } }],
  ['Vary: stored per variant', { cacheFor: 60, headers: { vary: 'Accept-Encoding' } }, { ttl: 60 }],
  ['Vary: * (RFC 9110 §12.5.5)', { cacheFor: 60, headers: { vary: '*' } }, undefined],
  ['Vary: * among other names', { cacheFor: 60, headers: { vary: ['Accept', ' * '] } }, undefined],
  ['a repeated Age: the first one (RFC 9111 §4.2.1)', { headers: { 'cache-control': 's-maxage=100', age: ['10', '20'] } }, { ttl: 90, initialAge: 10 }],
  ['text/event-stream', { cacheFor: 60, headers: { 'content-type': 'Text/Event-Stream; charset=utf-8' } }, undefined],
]

const shared = { policy: { sharedCache: true } }
const lastModified = (secondsAgo: number) => new Date(now - secondsAgo * 1000).toUTCString()
rows.push(
  ['shared: max-age alone is enough', { headers: { 'cache-control': 'max-age=60' } }, { ttl: 60 }, shared],
  ['shared: heuristic, against Date', { headers: { 'last-modified': lastModified(1000), date } }, { ttl: 100 }, shared],
  ['shared: heuristic, against now without Date', { headers: { 'last-modified': lastModified(50) } }, { ttl: 5 }, shared],
  ['shared: heuristic capped at a day', { headers: { 'last-modified': lastModified(100 * 86_400) } }, { ttl: 86_400 }, shared],
  ['shared: Last-Modified in the future, no heuristic', { headers: { 'last-modified': lastModified(-60) } }, undefined, shared],
  ['shared: Last-Modified too recent for a whole second', { headers: { 'last-modified': lastModified(5) } }, undefined, shared],
  ['shared: nothing said, nothing stored', {}, undefined, shared],
  ['shared: no-cache stored stale, kept an hour', { headers: { 'cache-control': 'no-cache' } }, { ttl: 0, keep: 3600 }, shared],
  ['shared: no-cache with a long max-age keeps it longer', { headers: { 'cache-control': 'no-cache, max-age=7200' } }, { ttl: 0, keep: 7200 }, shared],
  ['shared: must-revalidate lets an authorized response be stored', { headers: { 'cache-control': 'max-age=60, must-revalidate' } }, { ttl: 60 }, { ...shared, req: { authorization: 'Bearer x' } }],
  ['shared: Age beyond the lifetime', { headers: { 'cache-control': 'max-age=60', age: '60' } }, undefined, shared],
  ['Age list: the first member (RFC 9111 §5.1)', { headers: { 'cache-control': 's-maxage=100', age: '10, 20' } }, { ttl: 90, initialAge: 10 }],
  ['Age: 7200.0 is not an integer: ignored', { headers: { 'cache-control': 's-maxage=100', age: '7200.0' } }, { ttl: 100, initialAge: 0 }],
)

for (const [name, response, expected, overrides = {}] of rows) {
  t.test(name, async (t) => {
    const got = freshness(
      overrides.req ?? {},
      { status: response.status ?? 200, headers: response.headers ?? {}, cacheFor: response.cacheFor },
      { ...policy, ...overrides.policy },
      now,
    )
    t.same(got, expected === undefined ? undefined : { initialAge: 0, ...expected })
  })
}
