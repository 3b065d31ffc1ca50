// freshness(): what opts a response in to storing, for how long, and what never is stored.
import t from 'tap'
import { freshness, type StoragePolicy } from '../src/http/policy.js'
import { DEFAULT_CACHEABLE_STATUSES } from '../src/core/options.js'

const now = Date.UTC(2026, 0, 1, 12, 0, 0)
const policy: StoragePolicy = {
  cacheableStatuses: new Set(DEFAULT_CACHEABLE_STATUSES),
  honorCacheControl: true,
  defaultCacheFor: 0,
  sharedCache: false,
}
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
  [
    'res.cacheFor = 0 opts out, even with headers',
    { cacheFor: 0, headers: { 'cache-control': 's-maxage=60' } },
    undefined,
  ],
  ['res.cacheFor < 0 opts out', { cacheFor: -5 }, undefined],
  [
    'res.cacheFor overrides the headers for the server TTL',
    { cacheFor: 5, headers: { 'cache-control': 'public, max-age=600' } },
    { ttl: 5 },
  ],
  [
    'res.cacheFor stores a no-cache response (the header is for browsers)',
    { cacheFor: 5, headers: { 'cache-control': 'no-cache' } },
    { ttl: 5 },
  ],
  ['s-maxage opts in', { headers: { 'cache-control': 's-maxage=120' } }, { ttl: 120 }],
  [
    's-maxage wins over max-age (RFC 9111 §5.2.2.10)',
    { headers: { 'cache-control': 'public, max-age=10, s-maxage=120' } },
    { ttl: 120 },
  ],
  ['public, max-age opts in', { headers: { 'cache-control': 'public, max-age=60' } }, { ttl: 60 }],
  [
    'Cache-Control as repeated header lines',
    { headers: { 'cache-control': ['public', 'max-age=60'] } },
    { ttl: 60 },
  ],
  [
    "max-age without public is the browser's only",
    { headers: { 'cache-control': 'max-age=60' } },
    undefined,
  ],
  [
    'max-age without public overrides Expires (RFC 9111 §5.3)',
    {
      headers: {
        'cache-control': 'max-age=60',
        expires: new Date(now + 600_000).toUTCString(),
        date,
      },
    },
    undefined,
  ],
  [
    'public, max-age=0: declared, so no default',
    { headers: { 'cache-control': 'public, max-age=0' } },
    undefined,
    { policy: { defaultCacheFor: 60 } },
  ],
  [
    'public, max-age=abc: no usable lifetime',
    { headers: { 'cache-control': 'public, max-age=abc' } },
    undefined,
  ],
  [
    'Expires - Date opts in',
    { headers: { expires: new Date(now + 90_000).toUTCString(), date } },
    { ttl: 90 },
  ],
  [
    'Expires against now when Date is absent',
    { headers: { expires: new Date(now + 30_000).toUTCString() } },
    { ttl: 30 },
  ],
  [
    'Expires in the past',
    { headers: { expires: new Date(now - 30_000).toUTCString(), date } },
    undefined,
  ],
  [
    'an invalid Expires means already expired (RFC 9111 §5.3)',
    { headers: { expires: '0' } },
    undefined,
    { policy: { defaultCacheFor: 60 } },
  ],
  [
    'no-cache from the handler without cacheFor',
    { headers: { 'cache-control': 'no-cache, s-maxage=60' } },
    undefined,
    { policy: { defaultCacheFor: 60 } },
  ],
  [
    'defaultCacheFor applies when nothing is said',
    {},
    { ttl: 45 },
    { policy: { defaultCacheFor: 45 } },
  ],
  [
    'defaultCacheFor applies to a browser-only max-age',
    { headers: { 'cache-control': 'max-age=5' } },
    { ttl: 45 },
    { policy: { defaultCacheFor: 45 } },
  ],
  [
    "honorCacheControl: false ignores the headers' opt-in",
    { headers: { 'cache-control': 's-maxage=60' } },
    undefined,
    { policy: { honorCacheControl: false } },
  ],
  [
    'honorCacheControl: false still honours cacheFor',
    { cacheFor: 10, headers: { 'cache-control': 's-maxage=60' } },
    { ttl: 10 },
    { policy: { honorCacheControl: false } },
  ],
  [
    'Age reduces header freshness (RFC 9111 §4.2.3)',
    { headers: { 'cache-control': 's-maxage=100', age: '30' } },
    { ttl: 70, initialAge: 30 },
  ],
  [
    'Age beyond the lifetime: stale on arrival',
    { headers: { 'cache-control': 's-maxage=100', age: '100' } },
    undefined,
  ],
  [
    'Age does not shorten an explicit cacheFor',
    { cacheFor: 60, headers: { age: '30' } },
    { ttl: 60, initialAge: 30 },
  ],
  [
    'a malformed Age is absent',
    { headers: { 'cache-control': 's-maxage=100', age: 'soon' } },
    { ttl: 100, initialAge: 0 },
  ],
  // Never stored, whatever opts in.
  ['no-store', { cacheFor: 60, headers: { 'cache-control': 'no-store' } }, undefined],
  ['private', { cacheFor: 60, headers: { 'cache-control': 'private, max-age=60' } }, undefined],
  ['Set-Cookie', { cacheFor: 60, headers: { 'set-cookie': ['a=1'] } }, undefined],
  ['status outside cacheableStatuses', { cacheFor: 60, status: 500 }, undefined],
  ['206 is not a cacheable status by default', { cacheFor: 60, status: 206 }, undefined],
  [
    'a custom cacheableStatuses list',
    { cacheFor: 60, status: 500 },
    { ttl: 60 },
    { policy: { cacheableStatuses: new Set([500]) } },
  ],
  ['404 is cacheable by default', { cacheFor: 60, status: 404 }, { ttl: 60 }],
  [
    'Authorization without public or s-maxage',
    { cacheFor: 60 },
    undefined,
    { req: { authorization: 'Bearer x' } },
  ],
  [
    'Authorization with public (RFC 9111 §3.5)',
    { headers: { 'cache-control': 'public, max-age=60' } },
    { ttl: 60 },
    { req: { authorization: 'Bearer x' } },
  ],
  [
    'Authorization with s-maxage (RFC 9111 §3.5)',
    { headers: { 'cache-control': 's-maxage=60' } },
    { ttl: 60 },
    { req: { authorization: 'Bearer x' } },
  ],
  ['Vary: stored per variant', { cacheFor: 60, headers: { vary: 'Accept-Encoding' } }, { ttl: 60 }],
  ['Vary: * (RFC 9110 §12.5.5)', { cacheFor: 60, headers: { vary: '*' } }, undefined],
  ['Vary: * among other names', { cacheFor: 60, headers: { vary: ['Accept', ' * '] } }, undefined],
  [
    'a repeated Age: the first one (RFC 9111 §4.2.1)',
    { headers: { 'cache-control': 's-maxage=100', age: ['10', '20'] } },
    { ttl: 90, initialAge: 10 },
  ],
  [
    'text/event-stream',
    { cacheFor: 60, headers: { 'content-type': 'Text/Event-Stream; charset=utf-8' } },
    undefined,
  ],
]

const shared = { policy: { sharedCache: true } }
const lastModified = (secondsAgo: number) => new Date(now - secondsAgo * 1000).toUTCString()
rows.push(
  [
    'shared: max-age alone is enough',
    { headers: { 'cache-control': 'max-age=60' } },
    { ttl: 60 },
    shared,
  ],
  [
    'shared: heuristic, against Date',
    { headers: { 'last-modified': lastModified(1000), date } },
    { ttl: 100, keep: 3600 },
    shared,
  ],
  [
    'shared: heuristic, against now without Date',
    { headers: { 'last-modified': lastModified(50) } },
    { ttl: 5, keep: 3600 },
    shared,
  ],
  [
    'shared: heuristic capped at a day',
    { headers: { 'last-modified': lastModified(100 * 86_400) } },
    { ttl: 86_400, keep: 86_400 },
    shared,
  ],
  [
    'shared: Last-Modified in the future, no heuristic',
    { headers: { 'last-modified': lastModified(-60) } },
    undefined,
    shared,
  ],
  [
    'shared: Last-Modified too recent for a whole second',
    { headers: { 'last-modified': lastModified(5) } },
    undefined,
    shared,
  ],
  ['shared: nothing said, nothing stored', {}, undefined, shared],
  [
    'shared: no-cache stored stale, kept an hour',
    { headers: { 'cache-control': 'no-cache' } },
    { ttl: 0, keep: 3600 },
    shared,
  ],
  [
    'shared: no-cache with a long max-age keeps it longer',
    { headers: { 'cache-control': 'no-cache, max-age=7200' } },
    { ttl: 0, keep: 7200 },
    shared,
  ],
  [
    'shared: must-revalidate lets an authorized response be stored',
    { headers: { 'cache-control': 'max-age=60, must-revalidate' } },
    { ttl: 60 },
    { ...shared, req: { authorization: 'Bearer x' } },
  ],
  [
    'shared: Age beyond the lifetime',
    { headers: { 'cache-control': 'max-age=60', age: '60' } },
    undefined,
    shared,
  ],
  [
    'Age list: the first member (RFC 9111 §5.1)',
    { headers: { 'cache-control': 's-maxage=100', age: '10, 20' } },
    { ttl: 90, initialAge: 10 },
  ],
  [
    'Age: 7200.0 is not an integer: ignored',
    { headers: { 'cache-control': 's-maxage=100', age: '7200.0' } },
    { ttl: 100, initialAge: 0 },
  ],
)

// RFC 9111 §3: a shared cache stores any final status with explicit freshness.
const cdn = { policy: { sharedCache: true, cdnCacheControl: true } }
const ago = (seconds: number) => new Date(now - seconds * 1000).toUTCString()
for (const status of [201, 299, 302, 303, 307, 400, 403, 499, 500, 502, 503, 504, 599]) {
  const name = `shared: ${status} with max-age (RFC 9111 §3)`
  rows.push([name, { status, headers: { 'cache-control': 'max-age=60' } }, { ttl: 60 }, shared])
}
rows.push(
  [
    'shared: 302 with Expires',
    { status: 302, headers: { expires: new Date(now + 60_000).toUTCString(), date } },
    { ttl: 60 },
    shared,
  ],
  [
    'shared: 302 without explicit freshness: no heuristic (RFC 9111 §4.2.2)',
    { status: 302, headers: { 'last-modified': lastModified(1000) } },
    undefined,
    shared,
  ],
  [
    'shared: 599 public: heuristic allowed (RFC 9111 §4.2.2)',
    {
      status: 599,
      headers: { 'cache-control': 'public', 'last-modified': lastModified(1000), date },
    },
    { ttl: 100, keep: 3600 },
    shared,
  ],
  [
    'shared: 500 no-cache without freshness: not storable',
    { status: 500, headers: { 'cache-control': 'no-cache' } },
    undefined,
    shared,
  ],
  [
    'shared: 500 no-cache with max-age: stored stale',
    { status: 500, headers: { 'cache-control': 'no-cache, max-age=60' } },
    { ttl: 0, keep: 3600 },
    shared,
  ],
  [
    'shared: 206 never',
    { status: 206, headers: { 'cache-control': 'max-age=60' } },
    undefined,
    shared,
  ],
  [
    'shared: 304 never',
    { status: 304, headers: { 'cache-control': 'max-age=60' } },
    undefined,
    shared,
  ],
  [
    'shared: 101 is not final',
    { status: 101, headers: { 'cache-control': 'max-age=60' } },
    undefined,
    shared,
  ],
  [
    'library mode keeps cacheableStatuses',
    { status: 302, headers: { 'cache-control': 's-maxage=60' } },
    undefined,
  ],
  // RFC 9111 §5.2.2.3: must-understand.
  [
    'shared: must-understand with an understood status ignores no-store',
    { headers: { 'cache-control': 'max-age=60, must-understand, no-store' } },
    { ttl: 60 },
    shared,
  ],
  [
    'shared: must-understand with 599: not stored',
    { status: 599, headers: { 'cache-control': 'max-age=60, must-understand, no-store' } },
    undefined,
    shared,
  ],
  [
    'shared: must-understand with 599 and no no-store: not stored',
    { status: 599, headers: { 'cache-control': 'max-age=60, must-understand' } },
    undefined,
    shared,
  ],
  [
    'shared: must-understand with 307',
    { status: 307, headers: { 'cache-control': 'max-age=60, must-understand' } },
    { ttl: 60 },
    shared,
  ],
  [
    'library mode: no-store wins over must-understand',
    { cacheFor: 60, headers: { 'cache-control': 'must-understand, no-store' } },
    undefined,
  ],
  // RFC 9111 §4.2.3: the corrected initial age.
  [
    'apparent age: a Date 100 s old with max-age=60 is stale on arrival',
    { headers: { 'cache-control': 'max-age=60', date: ago(100) } },
    undefined,
    shared,
  ],
  [
    'apparent age shortens the freshness',
    { headers: { 'cache-control': 'max-age=60', date: ago(21) } },
    { ttl: 40, initialAge: 20 },
    shared,
  ],
  [
    "Date's second may have begun up to 999 ms before it was made: the least age counts",
    { headers: { 'cache-control': 'max-age=60', date: ago(1) } },
    { ttl: 60 },
    shared,
  ],
  [
    'the larger of Age and the apparent age',
    { headers: { 'cache-control': 'max-age=60', date: ago(21), age: '30' } },
    { ttl: 30, initialAge: 30 },
    shared,
  ],
  [
    'the larger of the apparent age and Age',
    { headers: { 'cache-control': 'max-age=60', date: ago(21), age: '10' } },
    { ttl: 40, initialAge: 20 },
    shared,
  ],
  [
    'a Date in the future: apparent age 0',
    { headers: { 'cache-control': 'max-age=60', date: ago(-100) } },
    { ttl: 60 },
    shared,
  ],
  [
    "no apparent age in library mode: the handler's Date is its own label",
    { headers: { 'cache-control': 's-maxage=60', date: ago(100) } },
    { ttl: 60 },
  ],
  // RFC 9111 §4.3.1: a response with a validator is kept past its freshness, to be revalidated.
  [
    'shared: an ETag keeps it an hour past stale',
    { headers: { 'cache-control': 'max-age=60', etag: '"v"' } },
    { ttl: 60, keep: 3600 },
    shared,
  ],
  [
    'shared: Last-Modified keeps it as long as it was fresh, if longer',
    { headers: { 'cache-control': 'max-age=7200', 'last-modified': lastModified(10) } },
    { ttl: 7200, keep: 7200 },
    shared,
  ],
  // RFC 9213: CDN-Cache-Control in a shared cache that reads it.
  [
    'CDN-Cache-Control max-age over a short Cache-Control',
    { headers: { 'cache-control': 'max-age=1', 'cdn-cache-control': 'max-age=600' } },
    { ttl: 600 },
    cdn,
  ],
  [
    'CDN-Cache-Control max-age over Cache-Control: no-store',
    { headers: { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=600' } },
    { ttl: 600 },
    cdn,
  ],
  [
    'CDN-Cache-Control: no-store over a long Cache-Control',
    { headers: { 'cache-control': 'max-age=600', 'cdn-cache-control': 'no-store' } },
    undefined,
    cdn,
  ],
  [
    'CDN-Cache-Control: private',
    { headers: { 'cache-control': 'max-age=600', 'cdn-cache-control': 'private' } },
    undefined,
    cdn,
  ],
  [
    'CDN-Cache-Control: no-cache stores it stale',
    { headers: { 'cache-control': 'max-age=600', 'cdn-cache-control': 'no-cache' } },
    { ttl: 0, keep: 3600 },
    cdn,
  ],
  [
    'CDN-Cache-Control rules out Expires (RFC 9213 §2.1)',
    {
      headers: {
        'cdn-cache-control': 'must-revalidate',
        expires: new Date(now + 60_000).toUTCString(),
        date,
      },
    },
    undefined,
    cdn,
  ],
  [
    'CDN-Cache-Control max-age over a past Expires',
    { headers: { 'cdn-cache-control': 'max-age=60', expires: ago(60), date } },
    { ttl: 60 },
    cdn,
  ],
  [
    'an invalid CDN-Cache-Control is ignored: Cache-Control rules',
    { headers: { 'cache-control': 'max-age=5', 'cdn-cache-control': 'max-age="600"' } },
    { ttl: 5 },
    cdn,
  ],
  [
    'CDN-Cache-Control unread without cdnCacheControl',
    { headers: { 'cache-control': 'max-age=5', 'cdn-cache-control': 'max-age=600' } },
    { ttl: 5 },
    shared,
  ],
  [
    'Accelerator-Cache-Control: max-age opts in in library mode',
    { headers: { 'accelerator-cache-control': 'max-age=90', 'cache-control': 'no-store' } },
    { ttl: 90 },
  ],
  [
    'Accelerator-Cache-Control: no-cache in library mode',
    { headers: { 'accelerator-cache-control': 'no-cache', 'cache-control': 's-maxage=60' } },
    undefined,
    { policy: { defaultCacheFor: 60 } },
  ],
  [
    'Accelerator-Cache-Control over CDN-Cache-Control',
    { headers: { 'accelerator-cache-control': 'max-age=9', 'cdn-cache-control': 'max-age=600' } },
    { ttl: 9 },
    cdn,
  ],
)

for (const [name, response, expected, overrides = {}] of rows) {
  t.test(name, async (t) => {
    const got = freshness(
      overrides.req ?? {},
      {
        status: response.status ?? 200,
        headers: response.headers ?? {},
        cacheFor: response.cacheFor,
      },
      { ...policy, ...overrides.policy },
      now,
    )
    t.same(got, expected === undefined ? undefined : { initialAge: 0, ...expected })
  })
}
