import type { IncomingHttpHeaders } from 'node:http'
import t from 'tap'
import type { Test } from 'tap'
import { isNotModified, notModifiedHeaders, quoteEntityTags } from '../src/http/conditional.js'

type ResHeaders = Record<string, string | string[] | number | undefined>
/** [name, request headers, response headers, expected isNotModified]. */
type Case = [string, Record<string, unknown>, ResHeaders, boolean]

const LM = 'Sun, 06 Nov 1994 08:49:37 GMT'
const BEFORE = 'Sat, 05 Nov 1994 08:49:37 GMT'
const AFTER = 'Mon, 07 Nov 1994 08:49:37 GMT'

/** Runs table cases; request headers are cast since tests send what Node's types forbid. */
function run(t: Test, cases: Case[]): void {
  for (const [name, req, res, expected] of cases) {
    t.equal(isNotModified(req as IncomingHttpHeaders, res), expected, name)
  }
}

t.test('isNotModified', async (t) => {
  t.test('when a non-conditional GET is performed', async (t) => {
    run(t, [
      ['should be modified', {}, { etag: '"foo"', 'last-modified': LM }, false],
      ['should be modified without validators', {}, {}, false],
    ])
  })

  t.test('when requested with If-None-Match', async (t) => {
    run(t, [
      [
        'when ETags match → should be not modified',
        { 'if-none-match': '"foo"' },
        { etag: '"foo"' },
        true,
      ],
      [
        'when ETags mismatch → should be modified',
        { 'if-none-match': '"foo"' },
        { etag: '"bar"' },
        false,
      ],
      [
        'when at least one matches → should be not modified',
        { 'if-none-match': ' "bar" , "foo"' },
        { etag: '"foo"' },
        true,
      ],
      [
        'when the first matches → should be not modified',
        { 'if-none-match': '"foo","bar"' },
        { etag: '"foo"' },
        true,
      ],
      [
        'when none of several match → should be modified',
        { 'if-none-match': '"a", "b", W/"c"' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when the response has no ETag → should be modified',
        { 'if-none-match': '"foo"' },
        {},
        false,
      ],
      [
        'when the ETag differs only in case → should be modified',
        { 'if-none-match': '"FOO"' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when the ETag is a prefix → should be modified',
        { 'if-none-match': '"fo"' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when the ETag is longer → should be modified',
        { 'if-none-match': '"fooo"' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when the opaque-tags are empty → should be not modified',
        { 'if-none-match': '""' },
        { etag: '""' },
        true,
      ],
      [
        'when the ETag contains a comma → should be not modified',
        { 'if-none-match': '"a,b"' },
        { etag: '"a,b"' },
        true,
      ],
      [
        'when a comma-containing tag is listed with others',
        { 'if-none-match': '"x", "a,b", "y"' },
        { etag: '"a,b"' },
        true,
      ],
      [
        'when a comma-tag is only a piece of the list → should be modified',
        { 'if-none-match': '"a", "b"' },
        { etag: '"a,b"' },
        false,
      ],
      [
        'when the ETag has obs-text → should be not modified',
        { 'if-none-match': '"caf\u00e9"' },
        { etag: '"caf\u00e9"' },
        true,
      ],
      [
        'when the ETag has "!" and "~" → should be not modified',
        { 'if-none-match': '"!~"' },
        { etag: '"!~"' },
        true,
      ],
      [
        'when the ETag has a backslash, it is literal',
        { 'if-none-match': '"a\\b"' },
        { etag: '"a\\b"' },
        true,
      ],
    ])
  })

  t.test('when requested with If-None-Match and weak ETags (weak comparison)', async (t) => {
    run(t, [
      [
        'when weak matches weak → should be not modified',
        { 'if-none-match': 'W/"foo"' },
        { etag: 'W/"foo"' },
        true,
      ],
      [
        'when weak matches strong → should be not modified',
        { 'if-none-match': 'W/"foo"' },
        { etag: '"foo"' },
        true,
      ],
      [
        'when strong matches weak → should be not modified',
        { 'if-none-match': '"foo"' },
        { etag: 'W/"foo"' },
        true,
      ],
      [
        'when weak mismatches → should be modified',
        { 'if-none-match': 'W/"foo"' },
        { etag: 'W/"bar"' },
        false,
      ],
      [
        'when lower-case w/ is sent → it is malformed',
        { 'if-none-match': 'w/"foo"' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when the response has lower-case w/ → it has no ETag',
        { 'if-none-match': '"foo"' },
        { etag: 'w/"foo"' },
        false,
      ],
      [
        'when W/ is doubled → it is malformed',
        { 'if-none-match': 'W/W/"foo"' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when W has no slash → it is malformed',
        { 'if-none-match': 'W"foo"' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when W/ has no tag → it is malformed',
        { 'if-none-match': 'W/foo, W/' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when W/ is in the middle of the list',
        { 'if-none-match': '"a", W/"foo", "b"' },
        { etag: '"foo"' },
        true,
      ],
    ])
  })

  t.test('when requested with If-None-Match: *', async (t) => {
    run(t, [
      [
        'when * is given → should be not modified',
        { 'if-none-match': '*' },
        { etag: '"foo"' },
        true,
      ],
      [
        'when * is given and there is no ETag → should be not modified',
        { 'if-none-match': '*' },
        {},
        true,
      ],
      ['when * has whitespace → should be not modified', { 'if-none-match': ' * ' }, {}, true],
      [
        'when * comes after tags → a member * anywhere matches',
        { 'if-none-match': '"a", *' },
        { etag: '"foo"' },
        true,
      ],
      [
        'when * comes before tags → a member * anywhere matches',
        { 'if-none-match': '*, "a"' },
        {},
        true,
      ],
      ['when * has trailing garbage → it is malformed', { 'if-none-match': '*x' }, {}, false],
      ['when ** is given → it is malformed', { 'if-none-match': '**' }, {}, false],
      [
        'when * is quoted → it is a tag, not a wildcard',
        { 'if-none-match': '"*"' },
        { etag: '"foo"' },
        false,
      ],
    ])
  })

  t.test('when If-None-Match has malformed members, they are ignored', async (t) => {
    run(t, [
      ['when a member is unquoted', { 'if-none-match': 'foo' }, { etag: '"foo"' }, false],
      [
        'when an unquoted member sits beside a match',
        { 'if-none-match': 'abc, "foo"' },
        { etag: '"foo"' },
        true,
      ],
      [
        'when an unbalanced member precedes a match',
        { 'if-none-match': '"unbalanced, "foo"' },
        { etag: '"foo"' },
        true,
      ],
      [
        'when an unbalanced member ends the header',
        { 'if-none-match': '"bar", "unbalanced' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when an unbalanced member is the whole header',
        { 'if-none-match': '"foo' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when a member has trailing garbage',
        { 'if-none-match': '"foo"x' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when a member has garbage after a space',
        { 'if-none-match': '"foo" x, "bar"' },
        { etag: '"foo"' },
        false,
      ],
      [
        'when garbage is followed by a match',
        { 'if-none-match': '"bar"x, "foo"' },
        { etag: '"foo"' },
        true,
      ],
      [
        'when two tags are not separated by a comma',
        { 'if-none-match': '"foo" "foo"' },
        { etag: '"foo"' },
        false,
      ],
      ['when a tag has a space inside', { 'if-none-match': '"fo o"' }, { etag: '"fo o"' }, false],
      [
        'when a tag has a control character',
        { 'if-none-match': '"fo\u0000o", "foo"' },
        { etag: '"foo"' },
        true,
      ],
      ['when a tag has DEL', { 'if-none-match': '"fo\u007fo"' }, { etag: '"fo\u007fo"' }, false],
      [
        'when a tag has a character beyond latin-1',
        { 'if-none-match': '"\u20ac"' },
        { etag: '"\u20ac"' },
        false,
      ],
      [
        'when a tag has an escaped quote, it does not unescape',
        { 'if-none-match': '"a\\"b"' },
        { etag: '"a\\"b"' },
        false,
      ],
      [
        'when the header is only commas and spaces',
        { 'if-none-match': ' , ,, ' },
        { etag: '"foo"' },
        false,
      ],
      ['when the header is empty', { 'if-none-match': '' }, { etag: '"foo"' }, false],
    ])
  })

  t.test('when the response ETag is unusual', async (t) => {
    run(t, [
      [
        'when it has surrounding whitespace',
        { 'if-none-match': '"foo"' },
        { etag: ' \t"foo" ' },
        true,
      ],
      [
        'when it is unquoted → only * matches',
        { 'if-none-match': '"foo", foo' },
        { etag: 'foo' },
        false,
      ],
      ['when it is unquoted and * is sent', { 'if-none-match': '*' }, { etag: 'foo' }, true],
      ['when it is unbalanced', { 'if-none-match': '"foo"' }, { etag: '"foo' }, false],
      ['when it is a lone quote', { 'if-none-match': '""' }, { etag: '"' }, false],
      ['when it has trailing garbage', { 'if-none-match': '"foo"' }, { etag: '"foo"x' }, false],
      ['when it is two tags', { 'if-none-match': '"foo"' }, { etag: '"foo", "bar"' }, false],
      ['when it is empty', { 'if-none-match': '""' }, { etag: '' }, false],
      ['when it is a number', { 'if-none-match': '"5", 5' }, { etag: 5 }, false],
      [
        'when it is an array, the first is used',
        { 'if-none-match': '"foo"' },
        { etag: ['"foo"', '"bar"'] },
        true,
      ],
      [
        'when it is an array, the rest is ignored',
        { 'if-none-match': '"bar"' },
        { etag: ['"foo"', '"bar"'] },
        false,
      ],
      ['when it is an empty array', { 'if-none-match': '"foo"' }, { etag: [] }, false],
    ])
  })

  t.test('when If-None-Match arrives as an array or a number', async (t) => {
    run(t, [
      [
        'when an array member matches',
        { 'if-none-match': ['"bar"', '"foo"'] },
        { etag: '"foo"' },
        true,
      ],
      [
        'when no array member matches',
        { 'if-none-match': ['"bar"', '"baz"'] },
        { etag: '"foo"' },
        false,
      ],
      [
        'when the array is empty → treated as absent',
        { 'if-none-match': [], 'if-modified-since': LM },
        { etag: '"foo"', 'last-modified': LM },
        true,
      ],
      ['when it is a number → malformed', { 'if-none-match': 5 }, { etag: '"5"' }, false],
    ])
  })

  t.test('when requested with If-Modified-Since', async (t) => {
    run(t, [
      [
        'when modified since the date → should be modified',
        { 'if-modified-since': BEFORE },
        { 'last-modified': LM },
        false,
      ],
      [
        'when unmodified since the date → should be not modified',
        { 'if-modified-since': AFTER },
        { 'last-modified': LM },
        true,
      ],
      [
        'when modified at the date → should be not modified',
        { 'if-modified-since': LM },
        { 'last-modified': LM },
        true,
      ],
      [
        'when Last-Modified is missing → should be modified',
        { 'if-modified-since': AFTER },
        {},
        false,
      ],
      [
        'when Last-Modified is invalid → should be modified',
        { 'if-modified-since': AFTER },
        { 'last-modified': 'foo' },
        false,
      ],
      [
        'when Last-Modified is a number → should be modified',
        { 'if-modified-since': AFTER },
        { 'last-modified': 0 },
        false,
      ],
      [
        'when If-Modified-Since is invalid → should be modified',
        { 'if-modified-since': 'foo' },
        { 'last-modified': LM },
        false,
      ],
      [
        'when If-Modified-Since is ISO → should be modified',
        { 'if-modified-since': '2030-01-01' },
        { 'last-modified': LM },
        false,
      ],
      [
        'when If-Modified-Since is empty → should be modified',
        { 'if-modified-since': '' },
        { 'last-modified': LM },
        false,
      ],
      [
        'when If-Modified-Since lists two dates → should be modified',
        { 'if-modified-since': `${AFTER}, ${AFTER}` },
        { 'last-modified': LM },
        false,
      ],
      [
        'when If-Modified-Since is RFC 850 → compared',
        { 'if-modified-since': 'Sunday, 06-Nov-94 08:49:37 GMT' },
        { 'last-modified': LM },
        true,
      ],
      [
        'when If-Modified-Since is asctime → compared',
        { 'if-modified-since': 'Sun Nov  6 08:49:36 1994' },
        { 'last-modified': LM },
        false,
      ],
      [
        'when Last-Modified is an array, the first is used',
        { 'if-modified-since': LM },
        { 'last-modified': [LM, AFTER] },
        true,
      ],
      [
        'when If-Modified-Since is an array, the first is used',
        { 'if-modified-since': [AFTER, BEFORE] },
        { 'last-modified': LM },
        true,
      ],
      [
        'when a second earlier → should be modified',
        { 'if-modified-since': 'Sun, 06 Nov 1994 08:49:36 GMT' },
        { 'last-modified': LM },
        false,
      ],
    ])
  })

  t.test(
    'when requested with If-None-Match and If-Modified-Since (RFC 9110 §13.2.2)',
    async (t) => {
      run(t, [
        [
          'when both match → should be not modified',
          { 'if-none-match': '"foo"', 'if-modified-since': AFTER },
          { etag: '"foo"', 'last-modified': LM },
          true,
        ],
        [
          'when only ETag matches → should be not modified',
          { 'if-none-match': '"foo"', 'if-modified-since': BEFORE },
          { etag: '"foo"', 'last-modified': LM },
          true,
        ],
        [
          'when only Last-Modified matches → should be modified',
          { 'if-none-match': '"bar"', 'if-modified-since': AFTER },
          { etag: '"foo"', 'last-modified': LM },
          false,
        ],
        [
          'when neither matches → should be modified',
          { 'if-none-match': '"bar"', 'if-modified-since': BEFORE },
          { etag: '"foo"', 'last-modified': LM },
          false,
        ],
        [
          'when If-None-Match is all malformed → If-Modified-Since decides',
          { 'if-none-match': 'foo, "bar', 'if-modified-since': AFTER },
          { etag: '"foo"', 'last-modified': LM },
          true,
        ],
        [
          'when If-None-Match is empty → If-Modified-Since decides',
          { 'if-none-match': '', 'if-modified-since': AFTER },
          { etag: '"foo"', 'last-modified': LM },
          true,
        ],
        [
          'when If-None-Match is well-formed but the response has no ETag → modified',
          { 'if-none-match': '"foo"', 'if-modified-since': AFTER },
          { 'last-modified': LM },
          false,
        ],
        [
          'when If-None-Match is * → If-Modified-Since is ignored',
          { 'if-none-match': '*', 'if-modified-since': BEFORE },
          { 'last-modified': LM },
          true,
        ],
      ])
    },
  )
})

t.test('isNotModified on hostile If-None-Match', async (t) => {
  const members = Array.from({ length: 10_000 }, (_, i) => `"etag-${i}"`)
  const weakMembers = Array.from({ length: 10_000 }, (_, i) => `W/"etag-${i}"`)
  const kib100 = 100 * 1024
  run(t, [
    [
      'when 10,000 members and the match is the last',
      { 'if-none-match': members.join(', ') },
      { etag: '"etag-9999"' },
      true,
    ],
    [
      'when 10,000 weak members and the match is the last',
      { 'if-none-match': weakMembers.join(',') },
      { etag: '"etag-9999"' },
      true,
    ],
    [
      'when 10,000 members and the match is the first',
      { 'if-none-match': members.join(', ') },
      { etag: 'W/"etag-0"' },
      true,
    ],
    [
      'when 10,000 members and the match is never there',
      { 'if-none-match': members.join(', ') },
      { etag: '"etag-10000"' },
      false,
    ],
    [
      'when 10,000 members and no response ETag',
      { 'if-none-match': members.join(', ') },
      {},
      false,
    ],
    [
      'when 10,000 members arrive as an array',
      { 'if-none-match': members },
      { etag: '"etag-9999"' },
      true,
    ],
    ['when 10,000 members end with *', { 'if-none-match': `${members.join(', ')}, *` }, {}, true],
    [
      'when 10,000 malformed members precede a match',
      { 'if-none-match': `${'x, '.repeat(10_000)}"foo"` },
      { etag: '"foo"' },
      true,
    ],
    [
      'when 10,000 unbalanced members precede a match',
      { 'if-none-match': `${'"x, '.repeat(10_000)}"foo"` },
      { etag: '"foo"' },
      true,
    ],
    ['when 100 KiB of quotes', { 'if-none-match': '"'.repeat(kib100) }, { etag: '""' }, false],
    [
      'when 100 KiB of quotes then a match',
      { 'if-none-match': `${'"'.repeat(kib100)}, "foo"` },
      { etag: '"foo"' },
      true,
    ],
    ['when 100 KiB of W/', { 'if-none-match': 'W/'.repeat(kib100 / 2) }, { etag: '"foo"' }, false],
    [
      'when 100 KiB of W/ then a quoted tag',
      { 'if-none-match': `${'W/'.repeat(kib100 / 2)}"foo"` },
      { etag: '"foo"' },
      false,
    ],
    ['when 100 KiB of commas', { 'if-none-match': ','.repeat(kib100) }, { etag: '"foo"' }, false],
    ['when 100 KiB of spaces', { 'if-none-match': ' '.repeat(kib100) }, { etag: '"foo"' }, false],
    ['when 100 KiB of stars', { 'if-none-match': '*'.repeat(kib100) }, {}, false],
    [
      'when 100 KiB of `",` (that is, `","` tags)',
      { 'if-none-match': '",'.repeat(kib100 / 2) },
      { etag: '","' },
      true,
    ],
    [
      'when 100 KiB of `",` and no match',
      { 'if-none-match': '",'.repeat(kib100 / 2) },
      { etag: '"x"' },
      false,
    ],
    [
      'when 100 KiB of `"a,` (long unbalanced tag with commas)',
      { 'if-none-match': '"a,'.repeat(kib100 / 3) },
      { etag: '"a,"' },
      false,
    ],
    [
      'when 100 KiB of `"a,` then a match',
      { 'if-none-match': `${'"a,'.repeat(kib100 / 3)} "foo"` },
      { etag: '"foo"' },
      true,
    ],
    [
      'when an unbalanced quote opens 100 KiB of etagc',
      { 'if-none-match': `"${'a,'.repeat(kib100 / 2)}` },
      { etag: '"a"' },
      false,
    ],
    [
      'when a 100 KiB tag matches',
      { 'if-none-match': `"${'a'.repeat(kib100)}"` },
      { etag: `"${'a'.repeat(kib100)}"` },
      true,
    ],
    [
      'when control characters fill the header',
      { 'if-none-match': '\u0000\u0001\r\n'.repeat(1000) },
      { etag: '"foo"' },
      false,
    ],
  ])
})

t.test('notModifiedHeaders', async (t) => {
  const full = {
    etag: '"foo"',
    'cache-control': 'max-age=60',
    expires: 'Thu, 01 Dec 2044 16:00:00 GMT',
    vary: 'accept-encoding',
    date: LM,
    'content-location': '/foo',
    'last-modified': LM,
    'access-control-allow-origin': '*',
    'access-control-expose-headers': 'etag',
    link: '</style.css>; rel=preload',
    'x-custom': ['a', 'b'],
    'content-length': '42',
    'content-type': 'text/html',
    'content-encoding': 'gzip',
    'content-language': 'en',
    'content-range': 'bytes 0-41/42',
    'content-md5': 'Q2hlY2sgSW50ZWdyaXR5IQ==',
    'transfer-encoding': 'chunked',
    trailer: 'x-checksum',
  }
  const snapshot = structuredClone(full)

  t.test('when headers describe a body → they are dropped', async (t) => {
    const out = notModifiedHeaders(full)
    for (const name of [
      'content-length',
      'content-type',
      'content-encoding',
      'content-language',
      'content-range',
      'content-md5',
      'transfer-encoding',
      'trailer',
    ]) {
      t.notOk(Object.hasOwn(out, name), `drops ${name}`)
    }
  })

  t.test('when headers describe the representation → they are kept', async (t) => {
    t.strictSame(notModifiedHeaders(full), {
      etag: '"foo"',
      'cache-control': 'max-age=60',
      expires: 'Thu, 01 Dec 2044 16:00:00 GMT',
      vary: 'accept-encoding',
      date: LM,
      'content-location': '/foo',
      'last-modified': LM,
      'access-control-allow-origin': '*',
      'access-control-expose-headers': 'etag',
      link: '</style.css>; rel=preload',
      'x-custom': ['a', 'b'],
    })
  })

  t.test('the input is not modified and the result is a copy', async (t) => {
    const out = notModifiedHeaders(full)
    t.not(out, full)
    t.strictSame(full, snapshot)
    out.etag = '"changed"'
    t.equal(full.etag, '"foo"')
  })

  t.test('when the headers are empty', async (t) => {
    t.strictSame(notModifiedHeaders({}), {})
  })

  t.test('when the headers have a null prototype (res.getHeaders())', async (t) => {
    const headers: Record<string, unknown> = Object.create(null)
    headers.etag = '"foo"'
    headers['content-length'] = 3
    t.strictSame({ ...notModifiedHeaders(headers) }, { etag: '"foo"' })
  })

  t.test('when a header is named __proto__ → it is copied as data', async (t) => {
    const headers = JSON.parse('{"__proto__": "x", "etag": "\\"foo\\""}') as Record<string, unknown>
    const out = notModifiedHeaders(headers)
    t.ok(Object.hasOwn(out, '__proto__'))
    t.equal(Object.getPrototypeOf(out), Object.prototype)
    t.equal(out.etag, '"foo"')
  })
})

t.test('quoteEntityTags: bare entity-tags quoted (RFC 9110 §8.8.3), the rest kept', async (t) => {
  t.equal(quoteEntityTags('abcdef'), '"abcdef"')
  t.equal(quoteEntityTags('"a", b ,W/"c", *'), '"a", "b", W/"c", *')
  t.equal(quoteEntityTags('a b, ,c'), 'a b, "c"', 'a member with a space is no entity-tag: kept')
  t.equal(quoteEntityTags('caf\u00e9'), '"caf\u00e9"', 'obs-text is etagc')
})
