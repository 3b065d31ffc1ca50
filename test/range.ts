// Range parsing (RFC 9110 §14.1.2) and If-Range (RFC 9110 §13.1.5).
import t from 'tap'
import { ifRangeMatches, isMultiRange, parseRange } from '../src/http/range.js'
import { makeEntry } from './fixtures/store-conformance.js'

t.test('parseRange against a 10-byte body', async (t) => {
  const rows: Array<[string | undefined, ReturnType<typeof parseRange>]> = [
    ['bytes=0-0', { start: 0, end: 0 }],
    ['bytes=2-4', { start: 2, end: 4 }],
    [' Bytes = 2 - 4 ', { start: 2, end: 4 }],
    ['bytes=7-', { start: 7, end: 9 }],
    ['bytes=5-100', { start: 5, end: 9 }],
    ['bytes=-3', { start: 7, end: 9 }],
    ['bytes=-20', { start: 0, end: 9 }],
    ['bytes=-0', 'unsatisfiable'],
    ['bytes=10-', 'unsatisfiable'],
    ['bytes=10-12', 'unsatisfiable'],
    ['bytes=5-2', undefined],
    ['bytes=-', undefined],
    ['bytes=0-1,3-4', undefined],
    ['items=0-1', undefined],
    ['bytes=a-b', undefined],
    ['', undefined],
    [undefined, undefined],
  ]
  for (const [value, expected] of rows)
    t.same(parseRange(value, 10), expected, JSON.stringify(value))
})

t.test(
  'ifRangeMatches: a strong ETag compared strongly, or exactly the Last-Modified',
  async (t) => {
    const entry = makeEntry({
      headers: { etag: '"v1"', 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT' },
    })
    t.ok(ifRangeMatches({}, entry.headers), 'no If-Range: the Range applies')
    t.ok(ifRangeMatches({ 'if-range': '"v1"' }, entry.headers))
    t.notOk(ifRangeMatches({ 'if-range': '"v2"' }, entry.headers))
    t.notOk(
      ifRangeMatches({ 'if-range': 'W/"v1"' }, entry.headers),
      'a weak validator never matches (RFC 9110 §13.1.5)',
    )
    t.ok(ifRangeMatches({ 'if-range': 'Sun, 06 Nov 1994 08:49:37 GMT' }, entry.headers))
    t.notOk(ifRangeMatches({ 'if-range': 'Sun, 06 Nov 1994 08:49:38 GMT' }, entry.headers))
    t.notOk(ifRangeMatches({ 'if-range': 'garbage' }, entry.headers))
  },
)

t.test('isMultiRange: several byte ranges (RFC 9110 §14.1.2)', async (t) => {
  t.ok(isMultiRange('bytes=0-1,4-5'))
  t.ok(isMultiRange('Bytes = 0-1 , -5, 7-'))
  t.notOk(isMultiRange('bytes=0-1'), 'one range')
  t.notOk(isMultiRange('bytes=0-1,'), 'one range and an empty member')
  t.notOk(isMultiRange('bytes=0-1,x'), 'not a range-set: ignored, not sent on')
  t.notOk(isMultiRange('items=0-1,4-5'), 'another unit')
  t.notOk(isMultiRange(undefined))
  t.ok(isMultiRange(`bytes=${'0-0,'.repeat(15)}0-0`), '16 ranges go on')
  t.notOk(
    isMultiRange(`bytes=${'0-0,'.repeat(16)}0-0`),
    '17 are ignored: the whole stored response answers',
  )
})
