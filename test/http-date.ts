import t from 'tap'
import { formatHttpDate, parseHttpDate } from '../src/http/http-date.js'

const NOV_6_1994 = Date.UTC(1994, 10, 6, 8, 49, 37)

/** Epoch milliseconds of a UTC time, without Date.UTC's shift of years 0–99 to 1900–1999. */
function utc(year: number, month: number, day: number, h = 0, m = 0, s = 0): number {
  const d = new Date(0)
  d.setUTCFullYear(year, month - 1, day)
  d.setUTCHours(h, m, s, 0)
  return d.getTime()
}

t.test('parseHttpDate', async (t) => {
  const cases: Array<[string, Parameters<typeof parseHttpDate>[0], number | undefined]> = [
    // The three formats of RFC 9110 §5.6.7.
    ['when the date is an IMF-fixdate', 'Sun, 06 Nov 1994 08:49:37 GMT', NOV_6_1994],
    ['when the date is an RFC 850 date', 'Sunday, 06-Nov-94 08:49:37 GMT', NOV_6_1994],
    ['when the date is an asctime date, space-padded', 'Sun Nov  6 08:49:37 1994', NOV_6_1994],
    ['when the date is an asctime date, not padded', 'Sun Nov 6 08:49:37 1994', NOV_6_1994],
    ['when the date is an asctime date, zero-padded', 'Sun Nov 06 08:49:37 1994', NOV_6_1994],
    [
      'when the date is an asctime date with a two-digit day',
      'Wed Nov 16 08:49:37 1994',
      Date.UTC(1994, 10, 16, 8, 49, 37),
    ],
    ['when names are lower-case', 'sun, 06 nov 1994 08:49:37 gmt', NOV_6_1994],
    ['when names are upper-case', 'SUNDAY, 06-NOV-94 08:49:37 GMT', NOV_6_1994],
    ['when names are mixed-case in asctime', 'sUn nOv  6 08:49:37 1994', NOV_6_1994],
    ['when the weekday disagrees with the date', 'Mon, 06 Nov 1994 08:49:37 GMT', NOV_6_1994],
    [
      'when the RFC 850 weekday disagrees with the date',
      'Wednesday, 06-Nov-94 08:49:37 GMT',
      NOV_6_1994,
    ],
    ['when surrounded by whitespace', ' \t Sun, 06 Nov 1994 08:49:37 GMT \t ', NOV_6_1994],
    ['when at the epoch', 'Thu, 01 Jan 1970 00:00:00 GMT', 0],
    ['when before the epoch', 'Wed, 31 Dec 1969 23:59:59 GMT', -1000],
    ['when in year 0000', 'Sat, 01 Jan 0000 00:00:00 GMT', utc(0, 1, 1)],
    ['when in year 0099 (not 1999)', 'Thu, 01 Jan 0099 00:00:00 GMT', utc(99, 1, 1)],
    ['when in year 9999', 'Fri, 31 Dec 9999 23:59:59 GMT', utc(9999, 12, 31, 23, 59, 59)],
    ['when the time is midnight', 'Mon, 01 Jan 2024 00:00:00 GMT', Date.UTC(2024, 0, 1)],
    [
      'when the time is the last second of a day',
      'Mon, 01 Jan 2024 23:59:59 GMT',
      Date.UTC(2024, 0, 1, 23, 59, 59),
    ],
    // Every month name.
    ...['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'].map(
      (name, i): [string, string, number] => [
        `when the month is ${name}`,
        `Mon, 01 ${name} 2024 12:00:00 GMT`,
        Date.UTC(2024, i, 1, 12),
      ],
    ),
    // Every weekday name, short and long.
    ...['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].map((name): [string, string, number] => [
      `when the weekday is ${name}`,
      `${name}, 06 Nov 1994 08:49:37 GMT`,
      NOV_6_1994,
    ]),
    ...['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'].map(
      (name): [string, string, number] => [
        `when the weekday is ${name}`,
        `${name}, 06-Nov-94 08:49:37 GMT`,
        NOV_6_1994,
      ],
    ),
    // Leap years and month lengths.
    ['when Feb 29 of a leap year', 'Thu, 29 Feb 2024 00:00:00 GMT', Date.UTC(2024, 1, 29)],
    ['when Feb 29 of a leap century', 'Tue, 29 Feb 2000 00:00:00 GMT', Date.UTC(2000, 1, 29)],
    ['when Feb 29 of a non-leap year', 'Wed, 29 Feb 2023 00:00:00 GMT', undefined],
    ['when Feb 29 of a non-leap century', 'Thu, 29 Feb 1900 00:00:00 GMT', undefined],
    ['when Feb 28 of a non-leap year', 'Tue, 28 Feb 2023 00:00:00 GMT', Date.UTC(2023, 1, 28)],
    ['when Feb 30', 'Fri, 30 Feb 2024 00:00:00 GMT', undefined],
    ['when Apr 31', 'Wed, 31 Apr 2024 00:00:00 GMT', undefined],
    ['when Jan 31', 'Wed, 31 Jan 2024 00:00:00 GMT', Date.UTC(2024, 0, 31)],
    ['when Dec 31', 'Tue, 31 Dec 2024 00:00:00 GMT', Date.UTC(2024, 11, 31)],
    // Out-of-range fields.
    ['when the month is not a month', 'Sun, 06 Foo 1994 08:49:37 GMT', undefined],
    ['when the month is spelled out', 'Sun, 06 November 1994 08:49:37 GMT', undefined],
    ['when the month is a number', 'Sun, 06 11 1994 08:49:37 GMT', undefined],
    ['when the day is 32', 'Sun, 32 Jan 1994 08:49:37 GMT', undefined],
    ['when the day is 00', 'Sun, 00 Jan 1994 08:49:37 GMT', undefined],
    ['when the hour is 24', 'Sun, 06 Nov 1994 24:00:00 GMT', undefined],
    ['when the minute is 60', 'Sun, 06 Nov 1994 08:60:00 GMT', undefined],
    [
      'when the second is 60 (a leap second, read as 59)',
      'Sat, 31 Dec 2016 23:59:60 GMT',
      Date.UTC(2016, 11, 31, 23, 59, 59),
    ],
    ['when the second is 61', 'Sun, 06 Nov 1994 08:49:61 GMT', undefined],
    ['when an RFC 850 hour is 24', 'Sunday, 06-Nov-94 24:49:37 GMT', undefined],
    ['when an RFC 850 month is not a month', 'Sunday, 06-Foo-94 08:49:37 GMT', undefined],
    ['when an asctime day is 0', 'Sun Nov  0 08:49:37 1994', undefined],
    ['when an asctime month is not a month', 'Sun Foo  6 08:49:37 1994', undefined],
    // Wrong shapes.
    ['when the weekday is not a weekday', 'Foo, 06 Nov 1994 08:49:37 GMT', undefined],
    ['when the weekday is missing', '06 Nov 1994 08:49:37 GMT', undefined],
    ['when an IMF-fixdate has a long weekday', 'Sunday, 06 Nov 1994 08:49:37 GMT', undefined],
    ['when an RFC 850 date has a short weekday', 'Sun, 06-Nov-94 08:49:37 GMT', undefined],
    ['when an asctime date has a long weekday', 'Sunday Nov  6 08:49:37 1994', undefined],
    ['when an IMF-fixdate has a one-digit day', 'Sun, 6 Nov 1994 08:49:37 GMT', undefined],
    ['when an IMF-fixdate has a two-digit year', 'Sun, 06 Nov 94 08:49:37 GMT', undefined],
    ['when an IMF-fixdate has a five-digit year', 'Sun, 06 Nov 19940 08:49:37 GMT', undefined],
    ['when an RFC 850 date has a four-digit year', 'Sunday, 06-Nov-1994 08:49:37 GMT', undefined],
    ['when an asctime date has a two-digit year', 'Sun Nov  6 08:49:37 94', undefined],
    ['when an asctime day has two spaces and two digits', 'Sun Nov  16 08:49:37 1994', undefined],
    ['when an asctime day has three spaces', 'Sun Nov   6 08:49:37 1994', undefined],
    ['when the zone is UTC', 'Sun, 06 Nov 1994 08:49:37 UTC', undefined],
    ['when the zone is an offset', 'Sun, 06 Nov 1994 08:49:37 +0000', undefined],
    ['when the zone is missing', 'Sun, 06 Nov 1994 08:49:37', undefined],
    ['when an asctime date has a zone', 'Sun Nov  6 08:49:37 1994 GMT', undefined],
    ['when the time has one-digit fields', 'Sun, 06 Nov 1994 8:49:37 GMT', undefined],
    ['when the time has fractional seconds', 'Sun, 06 Nov 1994 08:49:37.5 GMT', undefined],
    ['when spaces are doubled', 'Sun,  06 Nov 1994 08:49:37 GMT', undefined],
    ['when the comma is missing', 'Sun 06 Nov 1994 08:49:37 GMT', undefined],
    ['when there is a control character inside', 'Sun, 06 Nov 1994\u000008:49:37 GMT', undefined],
    ['when there is a control character after', 'Sun, 06 Nov 1994 08:49:37 GMT\u0000', undefined],
    ['when there is a newline around', '\nSun, 06 Nov 1994 08:49:37 GMT\n', undefined],
    ['when digits are not ASCII', 'Sun, ٠٦ Nov 1994 08:49:37 GMT', undefined],
    [
      'when two dates are listed',
      'Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT',
      undefined,
    ],
    // What Date.parse would wrongly accept.
    ['when the value is "1"', '1', undefined],
    ['when the value is an ISO date', '2024-01-01', undefined],
    ['when the value is an ISO date-time', '2024-01-01T00:00:00Z', undefined],
    ['when the value is "tomorrow"', 'tomorrow', undefined],
    [
      'when the value is a JS date string',
      'Sun Nov 06 1994 08:49:37 GMT+0000 (Coordinated Universal Time)',
      undefined,
    ],
    ['when the value is "0"', '0', undefined],
    // Not strings.
    ['when the value is absent', undefined, undefined],
    ['when the value is empty', '', undefined],
    ['when the value is whitespace', ' \t ', undefined],
    ['when the value is a number', NOV_6_1994, undefined],
    ['when the value is zero', 0, undefined],
    ['when the value is an empty array', [], undefined],
    [
      'when the value is an array, its first element is used',
      ['Sun, 06 Nov 1994 08:49:37 GMT', 'Mon, 07 Nov 1994 08:49:37 GMT'],
      NOV_6_1994,
    ],
    [
      'when the first element of an array is invalid',
      ['nope', 'Sun, 06 Nov 1994 08:49:37 GMT'],
      undefined,
    ],
    // Huge input.
    ['when the value is 100 KiB of letters', 'a'.repeat(100 * 1024), undefined],
    [
      'when a date is padded with 100 KiB of spaces',
      `${' '.repeat(50 * 1024)}Sun, 06 Nov 1994 08:49:37 GMT${' '.repeat(50 * 1024)}`,
      NOV_6_1994,
    ],
    ['when spaces are followed by garbage', `${' '.repeat(100 * 1024)}x`, undefined],
    [
      'when a date is followed by 100 KiB of garbage',
      `Sun, 06 Nov 1994 08:49:37 GMT${'x'.repeat(100 * 1024)}`,
      undefined,
    ],
  ]
  for (const [name, value, expected] of cases) {
    t.equal(parseHttpDate(value), expected, name)
  }
})

t.test('parseHttpDate of RFC 850 two-digit years (RFC 9110 §5.6.7, 50-year rule)', async (t) => {
  const june2024 = Date.UTC(2024, 5, 15)
  const cases: Array<[string, string, number, number | undefined]> = [
    [
      'when the year is in the past century',
      'Sunday, 06-Nov-94 08:49:37 GMT',
      june2024,
      NOV_6_1994,
    ],
    [
      'when the year is this year',
      'Saturday, 01-Jun-24 00:00:00 GMT',
      june2024,
      Date.UTC(2024, 5, 1),
    ],
    [
      'when the year is a little in the future',
      'Monday, 01-Jan-30 00:00:00 GMT',
      june2024,
      Date.UTC(2030, 0, 1),
    ],
    ['when the year is 00', 'Saturday, 01-Jan-00 00:00:00 GMT', june2024, Date.UTC(2000, 0, 1)],
    ['when the year is 99', 'Friday, 01-Jan-99 00:00:00 GMT', june2024, Date.UTC(1999, 0, 1)],
    [
      'when exactly 50 years ahead, it stays in the future',
      'Friday, 15-Jun-74 00:00:00 GMT',
      june2024,
      Date.UTC(2074, 5, 15),
    ],
    [
      'when one second more than 50 years ahead, it is in the past',
      'Friday, 15-Jun-74 00:00:01 GMT',
      june2024,
      Date.UTC(1974, 5, 15, 0, 0, 1),
    ],
    [
      'when earlier in the 50th year ahead',
      'Monday, 01-Jan-74 00:00:00 GMT',
      june2024,
      Date.UTC(2074, 0, 1),
    ],
    [
      'when later in the 50th year ahead',
      'Sunday, 01-Dec-74 00:00:00 GMT',
      june2024,
      Date.UTC(1974, 11, 1),
    ],
    [
      'when near the end of a century, the next century is nearer',
      'Sunday, 01-Jan-01 00:00:00 GMT',
      Date.UTC(2099, 0, 1),
      Date.UTC(2101, 0, 1),
    ],
    [
      'when near the end of a century, a past year stays past',
      'Sunday, 01-Jan-60 00:00:00 GMT',
      Date.UTC(2099, 0, 1),
      Date.UTC(2060, 0, 1),
    ],
    [
      'when Feb 29 resolves to a leap year',
      'Tuesday, 29-Feb-00 00:00:00 GMT',
      june2024,
      Date.UTC(2000, 1, 29),
    ],
    [
      'when Feb 29 resolves to a non-leap century',
      'Monday, 29-Feb-00 00:00:00 GMT',
      Date.UTC(2080, 0, 1),
      undefined,
    ],
    ['when now is before 1970', 'Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(1950, 0, 1), NOV_6_1994],
    ['when now is not a time', 'Sunday, 06-Nov-94 08:49:37 GMT', Number.NaN, undefined],
    ['when now is the end of time', 'Sunday, 06-Nov-94 08:49:37 GMT', 8.64e15, undefined],
  ]
  for (const [name, value, now, expected] of cases) {
    t.equal(parseHttpDate(value, now), expected, name)
  }
  t.equal(
    parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'),
    NOV_6_1994,
    'when now defaults to Date.now()',
  )
  t.equal(
    parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', Number.NaN),
    NOV_6_1994,
    'now does not affect IMF-fixdate',
  )
})

t.test('formatHttpDate', async (t) => {
  t.equal(formatHttpDate(NOV_6_1994), 'Sun, 06 Nov 1994 08:49:37 GMT', 'formats an IMF-fixdate')
  t.equal(formatHttpDate(0), 'Thu, 01 Jan 1970 00:00:00 GMT', 'formats the epoch')
  t.equal(formatHttpDate(NOV_6_1994 + 999), 'Sun, 06 Nov 1994 08:49:37 GMT', 'drops milliseconds')
  t.equal(
    formatHttpDate(utc(99, 1, 1)),
    'Thu, 01 Jan 0099 00:00:00 GMT',
    'pads years to four digits',
  )
  for (const ms of [0, NOV_6_1994, Date.UTC(2024, 1, 29, 23, 59, 59), utc(5, 3, 1), -1000]) {
    t.equal(parseHttpDate(formatHttpDate(ms)), ms, `round-trips ${ms}`)
  }
  t.equal(parseHttpDate(formatHttpDate(1234)), 1000, 'round-trips to second resolution')
})
