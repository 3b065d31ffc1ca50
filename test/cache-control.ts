import t from 'tap'
import { deltaSeconds, parseCacheControl } from '../src/http/cache-control.js'

/** The parsed directives as plain entries, for deep equality. */
const entries = (value: Parameters<typeof parseCacheControl>[0]) => [...parseCacheControl(value)]

t.test('parseCacheControl', async (t) => {
  const cases: Array<
    [string, Parameters<typeof parseCacheControl>[0], Array<[string, string | true]>]
  > = [
    ['when the header is absent', undefined, []],
    ['when the header is empty', '', []],
    ['when the header is only commas and whitespace', ' ,, \t, ,', []],
    ['when a directive has no value', 'no-store', [['no-store', true]]],
    ['when a directive has a token value', 'max-age=60', [['max-age', '60']]],
    [
      'when there are several directives',
      'public, max-age=60, s-maxage=120',
      [
        ['public', true],
        ['max-age', '60'],
        ['s-maxage', '120'],
      ],
    ],
    [
      'when names are upper-case',
      'Max-Age=5, NO-CACHE, S-MaxAge=7',
      [
        ['max-age', '5'],
        ['no-cache', true],
        ['s-maxage', '7'],
      ],
    ],
    ['when values keep their case', 'private=X-Foo', [['private', 'X-Foo']]],
    [
      'when whitespace surrounds names, = and values',
      ' \tmax-age \t= \t5 \t, \tpublic\t ',
      [
        ['max-age', '5'],
        ['public', true],
      ],
    ],
    [
      'when empty members are present',
      ',,public,,,max-age=1,,',
      [
        ['public', true],
        ['max-age', '1'],
      ],
    ],
    [
      'when a directive is duplicated, the first occurrence wins',
      'max-age=10, max-age=20, MAX-AGE=30',
      [['max-age', '10']],
    ],
    [
      'when a duplicate changes form, the first still wins',
      'no-cache, no-cache="a"',
      [['no-cache', true]],
    ],
    [
      'when a quoted value contains commas, they do not split',
      'no-cache="set-cookie, x-foo", max-age=5',
      [
        ['no-cache', 'set-cookie, x-foo'],
        ['max-age', '5'],
      ],
    ],
    [
      'when a quoted value has escaped quotes and backslashes',
      String.raw`private="a\"b\\c\d", max-age=1`,
      [
        ['private', 'a"b\\cd'],
        ['max-age', '1'],
      ],
    ],
    ['when a quoted value is empty', 'no-cache=""', [['no-cache', '']]],
    ['when a quoted max-age is unquoted', 'max-age="60"', [['max-age', '60']]],
    [
      'when a quote is unbalanced, it takes the rest of the header',
      'no-cache="set-cookie, max-age=5',
      [['no-cache', 'set-cookie, max-age=5']],
    ],
    ['when an unbalanced quote ends in a lone backslash', 'no-cache="abc\\', [['no-cache', 'abc']]],
    ['when an unbalanced quote ends right after it opens', 'no-cache="', [['no-cache', '']]],
    [
      'when text follows a closing quote, it is ignored up to the next comma',
      'no-cache="a" junk, public',
      [
        ['no-cache', 'a'],
        ['public', true],
      ],
    ],
    ['when a closing quote ends the header', 'private="x"', [['private', 'x']]],
    ['when a value is not a number', 'max-age=abc', [['max-age', 'abc']]],
    [
      'when a value is empty, the directive is present',
      'no-store=, max-age= ',
      [
        ['no-store', ''],
        ['max-age', ''],
      ],
    ],
    ['when a value has inner spaces, it is kept verbatim', 'private=a b', [['private', 'a b']]],
    ['when a value contains "=", it is kept', 'ext=a=b', [['ext', 'a=b']]],
    ['when a name is empty', '=5, public', [['public', true]]],
    ['when a name contains a space', 'max age=5, public', [['public', true]]],
    ['when a name is quoted', '"max-age"=5, public', [['public', true]]],
    [
      'when a bad name has a quoted value with commas, the whole member is skipped',
      'bad name="a, max-age=1", public',
      [['public', true]],
    ],
    [
      'when a name has a control character',
      'max\u0000age=5, no\u007fstore, public',
      [['public', true]],
    ],
    ['when a name is not ASCII', 'mäx-age=5, public', [['public', true]]],
    ['when a value has control characters', 'ext=a\u0001b', [['ext', 'a\u0001b']]],
    ['when whitespace is not OWS, the name is malformed', '\nmax-age=5', []],
    [
      'when the header is an array, its values are one list',
      ['public', 'max-age=5, public=x', 'no-store'],
      [
        ['public', true],
        ['max-age', '5'],
        ['no-store', true],
      ],
    ],
    ['when the header is an empty array', [], []],
    ['when the header is a number', 42, [['42', true]]],
    [
      'when extension directives are present',
      'stale-while-revalidate=30, stale-if-error=600, immutable',
      [
        ['stale-while-revalidate', '30'],
        ['stale-if-error', '600'],
        ['immutable', true],
      ],
    ],
  ]
  for (const [name, value, expected] of cases) {
    t.strictSame(entries(value), expected, name)
  }
})

t.test('parseCacheControl on hostile input', async (t) => {
  t.test('when the header is 16 KiB of directives, it parses them all', async (t) => {
    const members = Array.from({ length: 2000 }, (_, i) => `x${i}=${i}`)
    const header = `max-age=1, ${members.join(', ')}`
    t.ok(header.length > 16 * 1024)
    const cc = parseCacheControl(header)
    t.equal(cc.size, 2001)
    t.equal(cc.get('max-age'), '1')
    t.equal(cc.get('x1999'), '1999')
  })
  t.test('when the header is 16 KiB of one repeated directive, the first wins', async (t) => {
    const cc = parseCacheControl(Array.from({ length: 2000 }, (_, i) => `max-age=${i}`).join(','))
    t.strictSame([...cc], [['max-age', '0']])
  })
  t.test('when the header is 100 KiB of quotes', async (t) => {
    t.strictSame([...parseCacheControl('"'.repeat(100 * 1024))], [])
    t.strictSame([...parseCacheControl(`a=${'"'.repeat(100 * 1024)}`)], [['a', '']])
  })
  t.test('when the header is 100 KiB of backslashes in a quoted string', async (t) => {
    const cc = parseCacheControl(`a="${'\\'.repeat(100 * 1024)}`)
    t.equal(cc.get('a'), '\\'.repeat(50 * 1024))
  })
  t.test('when the header is 100 KiB of "=" or "," or spaces', async (t) => {
    t.equal(parseCacheControl('='.repeat(100 * 1024)).size, 0)
    t.equal(parseCacheControl(','.repeat(100 * 1024)).size, 0)
    t.equal(parseCacheControl(' '.repeat(100 * 1024)).size, 0)
    t.strictSame([...parseCacheControl(`a${' '.repeat(100 * 1024)}b=1`)], [])
    t.strictSame(
      [...parseCacheControl(`a=1${' '.repeat(100 * 1024)}x`)],
      [['a', `1${' '.repeat(100 * 1024)}x`]],
    )
  })
})

t.test('deltaSeconds', async (t) => {
  const cases: Array<[string, string | true | undefined, number | undefined]> = [
    ['when the value is digits', '60', 60],
    ['when the value is zero', '0', 0],
    ['when the value is all zeros', '0000', 0],
    ['when the value has leading zeros', '007', 7],
    ['when the value is 2^31 - 1', '2147483647', 2147483647],
    ['when the value is 2^31', '2147483648', 2147483648],
    ['when the value is just above 2^31, it is capped', '2147483649', 2147483648],
    ['when the value has 10 digits above 2^31, it is capped', '9999999999', 2147483648],
    ['when the value has 11 digits, it is capped', '10000000000', 2147483648],
    ['when the value is huge, it is capped', '9'.repeat(16 * 1024), 2147483648],
    ['when the value is huge behind leading zeros', `${'0'.repeat(1000)}12`, 12],
    ['when the value is absent', undefined, undefined],
    ['when the directive has no value', true, undefined],
    ['when the value is empty', '', undefined],
    ['when the value is negative', '-1', undefined],
    ['when the value has a plus sign', '+1', undefined],
    ['when the value is a decimal', '1.5', undefined],
    ['when the value is an exponent', '1e3', undefined],
    ['when the value is hexadecimal', '0x10', undefined],
    ['when the value is not a number', 'abc', undefined],
    ['when the value has spaces', ' 5', undefined],
    ['when the value has trailing garbage', '5s', undefined],
    ['when the value has non-ASCII digits', '٣', undefined],
    ['when the value has a control character', '5\u0000', undefined],
  ]
  for (const [name, value, expected] of cases) {
    t.equal(deltaSeconds(value), expected, name)
  }
})

t.test('deltaSeconds of parsed directives', async (t) => {
  const cc = parseCacheControl('max-age=abc, s-maxage=30, no-cache, stale-if-error=-1')
  t.ok(cc.has('max-age'), 'max-age=abc is present')
  t.equal(deltaSeconds(cc.get('max-age')), undefined, 'but has no delta-seconds')
  t.equal(deltaSeconds(cc.get('s-maxage')), 30)
  t.equal(deltaSeconds(cc.get('no-cache')), undefined)
  t.equal(deltaSeconds(cc.get('stale-if-error')), undefined)
  t.equal(deltaSeconds(cc.get('absent')), undefined)
})
