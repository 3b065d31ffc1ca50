import { createHash } from 'node:crypto'
import t from 'tap'
import { strongEtag } from '../src/http/etag.js'

t.test('strongEtag', async (t) => {
  const cases: Array<[string, Uint8Array, string]> = [
    ['when the body is empty', new Uint8Array(0), '"0-2jmj7l5rSw0yVb/vlWAYkK/YBwk"'],
    ['when the body is a string', Buffer.from('beep boop'), '"9-fINXV39R1PCo05OqGqr7KIY9lCE"'],
    ['when the body is UTF-8', Buffer.from('béèp'), '"6-sUsk5bNi7K5B/KEno256OMkA4/o"'],
    [
      'when the body is a plain Uint8Array',
      new Uint8Array([1, 2, 3]),
      '"3-cDeAcZjCKn0rCAc3HXY3eahP388"',
    ],
  ]
  for (const [name, body, expected] of cases) {
    t.equal(strongEtag(body), expected, name)
  }

  t.test('when the body is a view into a larger buffer, only the view is hashed', async (t) => {
    const whole = Buffer.from('xxbeep boopyy')
    t.equal(strongEtag(whole.subarray(2, 11)), strongEtag(Buffer.from('beep boop')))
  })

  t.test('when the body is large, the length is in hexadecimal', async (t) => {
    const body = Buffer.alloc(1024 * 1024, 'a')
    const digest = createHash('sha1').update(body).digest('base64').slice(0, 27)
    t.equal(strongEtag(body), `"100000-${digest}"`)
  })

  t.test('when bodies differ by one byte, the tags differ', async (t) => {
    t.not(strongEtag(Buffer.from('a')), strongEtag(Buffer.from('b')))
  })

  t.test('the tag is a strong entity-tag (RFC 9110 §8.8.3)', async (t) => {
    t.match(strongEtag(Buffer.from('hello')), /^"[\x21\x23-\x7e]*"$/)
  })
})
