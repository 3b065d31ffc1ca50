// Stale windows and entry states.
import t from 'tap'
import { entryState, retention, staleWindows } from '../src/core/stale.js'
import { makeEntry } from './fixtures/store-conformance.js'

const options = { staleWhileRevalidate: 10, staleIfError: 60 }

t.test(
  "staleWindows: the response's own directives win; must-revalidate turns the options off",
  async (t) => {
    t.same(staleWindows({}, options), { whileRevalidate: 10, ifError: 60 })
    t.same(
      staleWindows({ 'cache-control': 'stale-while-revalidate=5, stale-if-error=7' }, options),
      { whileRevalidate: 5, ifError: 7 },
    )
    t.same(staleWindows({ 'cache-control': 'must-revalidate' }, options), {
      whileRevalidate: 0,
      ifError: 0,
    })
    t.same(staleWindows({ 'cache-control': 'proxy-revalidate, stale-if-error=30' }, options), {
      whileRevalidate: 0,
      ifError: 30,
    })
  },
)

t.test(
  'RFC 9111 §5.2.2.10: in a shared cache s-maxage forbids serving stale, as proxy-revalidate',
  async (t) => {
    t.same(staleWindows({ 'cache-control': 's-maxage=5' }, { ...options, sharedCache: true }), {
      whileRevalidate: 0,
      ifError: 0,
    })
    t.same(
      staleWindows(
        { 'cache-control': 's-maxage=5, stale-if-error=9' },
        { ...options, sharedCache: true },
      ),
      { whileRevalidate: 0, ifError: 9 },
      'its own stale-if-error still applies',
    )
    t.same(
      staleWindows({ 'cache-control': 's-maxage=5' }, options),
      { whileRevalidate: 10, ifError: 60 },
      "not in the app's own cache",
    )
  },
)

t.test('RFC 9213 §2.1: a targeted field says what may be served stale', async (t) => {
  const headers = {
    'cache-control': 'max-age=5',
    'cdn-cache-control': 'max-age=60, must-revalidate',
  }
  t.same(staleWindows(headers, { ...options, cdnCacheControl: true }), {
    whileRevalidate: 0,
    ifError: 0,
  })
  t.same(
    staleWindows(headers, options),
    { whileRevalidate: 10, ifError: 60 },
    'CDN-Cache-Control unread',
  )
  t.same(
    staleWindows(
      { 'accelerator-cache-control': 'stale-if-error=3', 'cache-control': 'must-revalidate' },
      options,
    ),
    { whileRevalidate: 10, ifError: 3 },
  )
})

t.test('retention: the windows, or as long as it was fresh (a day at most)', async (t) => {
  t.equal(retention(60, { whileRevalidate: 10, ifError: 0 }), 60)
  t.equal(retention(5, { whileRevalidate: 10, ifError: 30 }), 30)
  t.equal(retention(7 * 86_400, { whileRevalidate: 0, ifError: 0 }), 86_400)
})

t.test("entryState through an entry's life", async (t) => {
  const entry = makeEntry({ staleAt: 1000, expiresAt: 100_000 })
  t.same(entryState(entry, 999, options), { state: 'fresh', ifErrorUntil: 0 })
  t.same(entryState(entry, 1000, options), {
    state: 'stale-while-revalidate',
    ifErrorUntil: 61_000,
  })
  t.same(entryState(entry, 11_000, options), { state: 'stale', ifErrorUntil: 61_000 })
  t.same(
    entryState({ ...entry, softInvalidated: true }, 50_000, options).state,
    'stale-while-revalidate',
    'a soft purge: until it expires',
  )
})
