// What the client's request directives make of a stored entry (RFC 9111 §5.2.1).
import t from 'tap'
import {
  clientDemand,
  hasOriginOnlyPrecondition,
  isUnsafe,
  wantsRegeneration,
} from '../src/http/request.js'
import { parseCacheControl } from '../src/http/cache-control.js'
import { makeEntry } from './fixtures/store-conformance.js'

const at = 1_000_000
// Stored at `at` with 100 s of freshness; asked about at `at + elapsed` seconds.
function demand(
  elapsed: number,
  requestCacheControl: string,
  entryCacheControl = 'max-age=100',
  pragma?: string,
) {
  const entry = makeEntry({
    storedAt: at,
    staleAt: at + 100_000,
    expiresAt: at + 1_000_000,
    headers: { 'cache-control': entryCacheControl },
  })
  const headers = { 'cache-control': requestCacheControl || undefined, pragma }
  return clientDemand(
    entry,
    at + elapsed * 1000,
    headers,
    parseCacheControl(headers['cache-control']),
  )
}

t.test('clientDemand', async (t) => {
  const rows: Array<
    [number, string, string | undefined, ReturnType<typeof clientDemand>, string?]
  > = [
    [10, '', undefined, 'as-usual'],
    [10, 'no-cache', undefined, 'revalidate'],
    [10, '', undefined, 'revalidate', 'no-cache'],
    [10, 'max-age=0', undefined, 'revalidate'],
    [10, 'max-age=20', undefined, 'as-usual'],
    [30, 'max-age=20', undefined, 'revalidate'],
    [10, 'min-fresh=50', undefined, 'as-usual'],
    [60, 'min-fresh=50', undefined, 'revalidate'],
    [110, 'max-stale', undefined, 'accept-stale'],
    [110, 'max-stale=20', undefined, 'accept-stale'],
    [110, 'max-stale=5', undefined, 'as-usual'],
    [110, 'max-stale=soon', undefined, 'as-usual'],
    [110, '', undefined, 'as-usual'],
    [110, 'max-stale', 'max-age=100, must-revalidate', 'as-usual'],
    [110, 'max-stale', 'max-age=100, proxy-revalidate', 'as-usual'],
    [110, 'max-stale', 'no-cache', 'as-usual'],
  ]
  for (const [elapsed, cc, entryCc, expected, pragma] of rows) {
    t.equal(
      demand(elapsed, cc, entryCc, pragma),
      expected,
      `${elapsed} s, ${cc || '(none)'}${entryCc ? `, stored ${entryCc}` : ''}${pragma ? `, Pragma: ${pragma}` : ''}`,
    )
  }
})

t.test(
  'RFC 9213 §2.1: a targeted must-revalidate outranks max-stale; an untargeted one does not then',
  async (t) => {
    const headers = {
      'cache-control': 'max-age=100',
      'cdn-cache-control': 'max-age=100, must-revalidate',
    }
    const entry = makeEntry({
      storedAt: at,
      staleAt: at + 100_000,
      expiresAt: at + 1_000_000,
      headers,
    })
    const cc = parseCacheControl('max-stale')
    t.equal(clientDemand(entry, at + 110_000, {}, cc, { cdnCacheControl: true }), 'as-usual')
    t.equal(clientDemand(entry, at + 110_000, {}, cc), 'accept-stale', 'CDN-Cache-Control unread')
  },
)

t.test('the small predicates', async (t) => {
  t.ok(wantsRegeneration({ pragma: 'no-cache' }, parseCacheControl(undefined)))
  t.notOk(
    wantsRegeneration(
      { pragma: 'no-cache', 'cache-control': 'max-age=5' },
      parseCacheControl('max-age=5'),
    ),
    'Pragma only without Cache-Control (RFC 9111 §5.4)',
  )
  t.ok(hasOriginOnlyPrecondition({ 'if-match': '"a"' }))
  t.notOk(hasOriginOnlyPrecondition({ range: 'bytes=0-1' }))
  t.same(
    ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'POST', 'PUT', 'DELETE', 'PATCH', 'PROPFIND'].map(isUnsafe),
    [false, false, false, false, true, true, true, true, true],
  )
})
