// Targeted cache control (RFC 9213): CDN-Cache-Control and Accelerator-Cache-Control are RFC 8941
// Structured Field dictionaries; an invalid one is ignored entirely, and the first valid field of
// the target list rules over Cache-Control.
import t from 'tap'
import {
  Decimal,
  parseDictionary,
  responseDirectives,
  targetedDirectives,
} from '../src/http/targeted.js'

const entries = (text: string) => {
  const dictionary = parseDictionary(text)
  return (
    dictionary &&
    [...dictionary].map(([key, item]) => [key, item instanceof Decimal ? `decimal ${item}` : item])
  )
}

t.test('RFC 8941 §4.2.2: dictionaries', async (t) => {
  const rows: Array<[string, unknown]> = [
    ['max-age=60', [['max-age', 60]]],
    [
      '  no-store,max-age=60  ',
      [
        ['no-store', true],
        ['max-age', 60],
      ],
    ],
    [
      'a=1,\tb=2',
      [
        ['a', 1],
        ['b', 2],
      ],
    ],
    ['a=1, a=2', [['a', 2]]],
    [
      'a=1, b, a=3',
      [
        ['b', true],
        ['a', 3],
      ],
    ],
    ['', []],
    ['a=-42', [['a', -42]]],
    ['a=1.5', [['a', 'decimal 1.5']]],
    ['a=123456789012.123', [['a', 'decimal 123456789012.123']]],
    ['a=999999999999999', [['a', 999999999999999]]],
    ['a="x\\"y\\\\z"', [['a', 'x"y\\z']]],
    ['a=tok/en:1', [['a', 'tok/en:1']]],
    ['a=*star', [['a', '*star']]],
    ['a=:aGk=:', [['a', 'aGk=']]],
    [
      'a=?1, b=?0',
      [
        ['a', true],
        ['b', false],
      ],
    ],
    [
      'a=("x" "y");p=1, b=()',
      [
        ['a', ['x', 'y']],
        ['b', []],
      ],
    ],
    ['a=( 1;q=?1  2 )', [['a', [1, 2]]]],
    [
      'a;p=1;q, b=2;r="s"',
      [
        ['a', true],
        ['b', 2],
      ],
    ],
    ['*k.0_-*=1', [['*k.0_-*', 1]]],
    // Invalid: the whole field is.
    ['Max-Age=60', undefined],
    ['max-age =60', undefined],
    ['max-age= 60', undefined],
    ['a=1,', undefined],
    ['a=1 b=2', undefined],
    ['a=1,,b=2', undefined],
    ['1a=1', undefined],
    ['a=&', undefined],
    ['a=', undefined],
    ['a=-', undefined],
    ['a=1.', undefined],
    ['a=1.2345', undefined],
    ['a=1234567890123.5', undefined],
    ['a=1234567890123456', undefined],
    ['a="open', undefined],
    ['a="bad\\escape"', undefined],
    ['a="tab\there"', undefined],
    ['a="é"', undefined],
    ['a=:not base64!:', undefined],
    ['a=:open', undefined],
    ['a=?2', undefined],
    ['a=(1 2', undefined],
    ['a=(', undefined],
    ['a=(1,2)', undefined],
    ['a=(&)', undefined],
    ['a=(1;=2)', undefined],
    ['a;P=1', undefined],
    ['a;p=&', undefined],
  ]
  for (const [text, expected] of rows) t.same(entries(text), expected, JSON.stringify(text))
})

t.test('RFC 9213 §2.1: directives of a targeted field, typed', async (t) => {
  const rows: Array<
    [string | string[] | undefined, Record<string, string | true> | undefined, string]
  > = [
    ['max-age=60', { 'max-age': '60' }, 'an Integer, as delta-seconds text'],
    [
      ['max-age=60', 'no-store'],
      { 'max-age': '60', 'no-store': true },
      'several lines are one dictionary',
    ],
    [
      's-maxage=0, stale-while-revalidate=5, stale-if-error=9',
      { 's-maxage': '0', 'stale-while-revalidate': '5', 'stale-if-error': '9' },
      'every delta directive',
    ],
    ['max-age=99999999999', { 'max-age': '99999999999' }, 'large: delta-seconds caps it later'],
    [
      'no-store, must-revalidate, proxy-revalidate, must-understand, public, immutable',
      {
        'no-store': true,
        'must-revalidate': true,
        'proxy-revalidate': true,
        'must-understand': true,
        public: true,
        immutable: true,
      },
      'booleans',
    ],
    ['no-store=?0, max-age=5', { 'max-age': '5' }, 'a false Boolean is absent'],
    [
      'private=("set-cookie"), no-cache=("x")',
      { private: true, 'no-cache': true },
      'field names: taken as the whole response',
    ],
    ['private=?0', {}, 'private false'],
    [
      'foobar, max-age=60, ext="x", dec=1.5, list=(a), off=?0',
      { foobar: true, 'max-age': '60', ext: 'x', dec: '1.5', list: true },
      'extensions of any type are kept',
    ],
    ['max-age="60"', undefined, 'a String max-age: the field is invalid'],
    ['max-age=60.0', undefined, 'a Decimal max-age: invalid'],
    ['max-age=-1', undefined, 'a negative max-age: invalid'],
    ['max-age=(1)', undefined, 'an Inner List max-age: invalid'],
    ['no-store=1', undefined, 'an Integer no-store: invalid'],
    ['private=1', undefined, 'an Integer private: invalid'],
    ['MaX-aGe=60', undefined, 'keys are case-sensitive: an upper-case key is invalid'],
    ['max-age=60, &&&&&', undefined, 'an unknown type'],
    ['', undefined, 'empty'],
    [undefined, undefined, 'absent'],
  ]
  for (const [value, expected, name] of rows) {
    const got = targetedDirectives(value)
    t.same(got && Object.fromEntries(got), expected, name)
  }
  t.equal(targetedDirectives(60), undefined, 'a number value is read as its text: not a key')
})

t.test(
  'RFC 9213 §2.1: the first valid field of the target list rules; else Cache-Control',
  async (t) => {
    const all = {
      'accelerator-cache-control': 'max-age=10',
      'cdn-cache-control': 'max-age=20',
      'cache-control': 'max-age=30',
    }
    const ruled = (headers: Record<string, string>, cdnCacheControl: boolean) => {
      const { cc, targeted } = responseDirectives(headers, { cdnCacheControl })
      return [cc.get('max-age'), targeted]
    }
    t.same(ruled(all, true), ['10', true], 'Accelerator-Cache-Control first')
    t.same(
      ruled({ ...all, 'accelerator-cache-control': 'Max-Age=1' }, true),
      ['20', true],
      'an invalid own field: CDN-Cache-Control',
    )
    t.same(
      ruled({ ...all, 'accelerator-cache-control': '' }, true),
      ['20', true],
      'an empty own field: CDN-Cache-Control',
    )
    t.same(
      ruled({ ...all, 'accelerator-cache-control': 'x=1,' }, false),
      ['30', false],
      'without cdnCacheControl: Cache-Control',
    )
    t.same(
      ruled({ 'cdn-cache-control': 'max-age="1"', 'cache-control': 'max-age=30' }, true),
      ['30', false],
      'an invalid CDN field: Cache-Control',
    )
    t.same(
      ruled({ 'accelerator-cache-control': 'max-age=10' }, false),
      ['10', true],
      'the own field in any mode',
    )
    t.same(ruled({}, true), [undefined, false], 'nothing at all')
  },
)
