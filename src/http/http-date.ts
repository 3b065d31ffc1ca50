/**
 * HTTP-date parsing and formatting (RFC 9110 §5.6.7).
 *
 * Pure functions. Parsing accepts exactly the three formats of the RFC, never what `Date.parse`
 * would guess at, and never throws.
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

// Anchored, no nested or overlapping quantifiers: each runs in time linear in its (capped) input.
/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE =
  /^(?:mon|tue|wed|thu|fri|sat|sun), (\d\d) ([a-z]{3}) (\d{4}) (\d\d):(\d\d):(\d\d) gmt$/i
/** Obsolete RFC 850 date: `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = new RegExp(
  '^(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), ' +
    '(\\d\\d)-([a-z]{3})-(\\d\\d) (\\d\\d):(\\d\\d):(\\d\\d) gmt$',
  'i',
)
/** ANSI C asctime(): `Sun Nov  6 08:49:37 1994` (day space-padded, zero-padded, or neither). */
const ASCTIME_DATE =
  /^(?:mon|tue|wed|thu|fri|sat|sun) ([a-z]{3}) (\d\d| ?\d) (\d\d):(\d\d):(\d\d) (\d{4})$/i

/** Longer than any HTTP-date (the longest RFC 850 date is 33 characters) once trimmed. */
const MAX_DATE_LENGTH = 40

/** Whether `year` is a leap year of the proleptic Gregorian calendar. */
function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
}

/** Epoch milliseconds of a UTC calendar time (years 0–99 are not shifted to 1900–1999). */
function utc(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
): number {
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  date.setUTCHours(hour, minute, second, 0)
  return date.getTime()
}

/** The month number (1–12) of an English three-letter month name, any case; 0 when none. */
function monthNumber(name: string): number {
  return MONTHS.indexOf(name.toLowerCase()) + 1
}

/**
 * Validates the fields (month 1–12, day within the month, hour 0–23, minute 0–59, second 0–60)
 * and returns their epoch milliseconds, or `undefined` when one is out of range.
 */
function toTime(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
): number | undefined {
  if (month === 0) return undefined
  const daysInMonth = month === 2 && isLeapYear(year) ? 29 : (DAYS_IN_MONTH[month - 1] as number)
  if (day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 60) return undefined
  // RFC 9110 §5.6.7 allows second 60 (a leap second); epoch time has none, so it is read as 59,
  // which keeps the time inside the minute (and day) the sender wrote.
  return utc(year, month, day, hour, minute, Math.min(second, 59))
}

/** Drops leading and trailing OWS (SP, HTAB) without a regex (`/[ \t]+$/` can be quadratic). */
function trimOws(s: string): string {
  let start = 0
  let end = s.length
  while (start < end && (s.charCodeAt(start) === 0x20 || s.charCodeAt(start) === 0x09)) start++
  while (end > start && (s.charCodeAt(end - 1) === 0x20 || s.charCodeAt(end - 1) === 0x09)) end--
  return s.slice(start, end)
}

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, RFC 850 or asctime) into epoch milliseconds,
 * or `undefined` when the value is not exactly one of those formats with in-range fields.
 *
 * - Day and month names (and `GMT`) are matched case-insensitively; the weekday must be a valid
 *   name but need not agree with the date. Surrounding SP/HTAB is ignored.
 * - A second of 60 (leap second) is read as 59.
 * - An array (a repeated header, which is malformed) is read by its first element
 *   (RFC 9111 §4.2.1 first occurrence); a number is not a date and gives `undefined`.
 * - `now` (epoch milliseconds) only anchors the two-digit years of RFC 850 dates.
 */
export function parseHttpDate(
  value: string | string[] | number | undefined,
  now: number = Date.now(),
): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value
  if (typeof raw !== 'string') return undefined
  const s = trimOws(raw)
  if (s.length > MAX_DATE_LENGTH) return undefined

  let m = IMF_FIXDATE.exec(s)
  if (m !== null) {
    const [, day, month, year, hour, minute, second] = m
    return toTime(+year!, monthNumber(month!), +day!, +hour!, +minute!, +second!)
  }

  m = ASCTIME_DATE.exec(s)
  if (m !== null) {
    const [, month, day, hour, minute, second, year] = m
    return toTime(+year!, monthNumber(month!), +day!, +hour!, +minute!, +second!)
  }

  m = RFC850_DATE.exec(s)
  if (m === null) return undefined
  const month = monthNumber(m[2]!)
  if (month === 0) return undefined
  const day = +m[1]!
  const yy = +m[3]!
  const hour = +m[4]!
  const minute = +m[5]!
  const second = +m[6]!
  // RFC 9110 §5.6.7: a two-digit year that appears to be more than 50 years in the future is
  // the most recent past year with the same last two digits. So take the latest year ending in
  // those digits whose timestamp is at most 50 years after `now`.
  const limitDate = new Date(now)
  const nowYear = limitDate.getUTCFullYear()
  limitDate.setUTCFullYear(nowYear + 50)
  const limit = limitDate.getTime()
  // A `now` that is not a time (NaN) or too close to the end of time has no such year.
  if (Number.isNaN(limit)) return undefined
  let year = nowYear - (nowYear % 100) + yy + 100
  while (utc(year, month, day, hour, minute, second) > limit) year -= 100
  return toTime(year, month, day, hour, minute, second)
}

/**
 * Formats epoch milliseconds as an IMF-fixdate (RFC 9110 §5.6.7), e.g.
 * `Sun, 06 Nov 1994 08:49:37 GMT`; `ms` must be a valid time in the years 0–9999.
 */
export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString()
}
