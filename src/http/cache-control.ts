/**
 * Cache-Control parsing (RFC 9111 §5.2) and delta-seconds (RFC 9111 §1.2.2).
 *
 * Pure functions: header values in, values out. Never throws on any input of the declared types,
 * runs in time and memory linear in the input.
 */

/**
 * Parsed Cache-Control directives: lower-cased directive name → unquoted value, or `true` for a
 * directive without `=value`. Only the first occurrence of each directive is kept.
 */
export type CacheControl = ReadonlyMap<string, string | true>

const NONE: CacheControl = new Map()

/** `tchar` of RFC 9110 §5.6.2, indexed by char code (0–127); non-ASCII is never a tchar. */
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1
}

/** Whether `s[start, end)` is a non-empty RFC 9110 §5.6.2 token. */
function isToken(s: string, start: number, end: number): boolean {
  if (start >= end) return false
  for (let i = start; i < end; i++) {
    if (TCHAR[s.charCodeAt(i)] !== 1) return false
  }
  return true
}

/** Whether the char code is OWS (RFC 9110 §5.6.3: SP or HTAB). */
function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09
}

/** Joins a list header as Node would (RFC 9110 §5.3): arrays with ', ', numbers as decimal. */
function listHeader(value: string | string[] | number): string {
  if (typeof value === 'string') return value
  return Array.isArray(value) ? value.join(', ') : String(value)
}

/**
 * Parses a Cache-Control header value into its directives, in time linear in the value's length.
 *
 * Lenient on purpose (malformed input is treated as absent, never thrown on):
 * - a member whose name is not a token (empty, spaces inside, quotes, control characters) is
 *   skipped; empty members (`a,,b`) are skipped;
 * - SP/HTAB around names, `=` and values is ignored;
 * - an unquoted value is taken verbatim up to the next comma (trailing OWS trimmed) and is not
 *   validated, so `max-age=abc` and `max-age=` are present with values `"abc"` and `""` (a
 *   caller reading `no-store=` or `private=x y` still sees the directive);
 * - a quoted-string value is unquoted with backslash escapes resolved; commas inside it do not
 *   split; anything between its closing quote and the next comma is ignored; an unbalanced quote
 *   takes the rest of the header (a trailing lone backslash is dropped).
 */
export function parseCacheControl(value: string | string[] | number | undefined): CacheControl {
  // Most requests carry none: answer them without allocating (the result is read-only).
  if (value === undefined) return NONE
  const s = listHeader(value)
  const directives = new Map<string, string | true>()
  const len = s.length
  let i = 0
  while (i < len) {
    // Name: up to '=' or ',' (or the end), OWS around it trimmed.
    let nameStart = i
    while (nameStart < len && isOws(s.charCodeAt(nameStart))) nameStart++
    let j = nameStart
    while (j < len) {
      const c = s.charCodeAt(j)
      if (c === 0x3d /* = */ || c === 0x2c /* , */) break
      j++
    }
    let nameEnd = j
    while (nameEnd > nameStart && isOws(s.charCodeAt(nameEnd - 1))) nameEnd--

    let directive: string | true = true
    if (j < len && s.charCodeAt(j) === 0x3d /* = */) {
      j++
      while (j < len && isOws(s.charCodeAt(j))) j++
      if (j < len && s.charCodeAt(j) === 0x22 /* " */) {
        // RFC 9110 §5.6.4 quoted-string: quoted-pair is a backslash and the character it escapes.
        j++
        let out = ''
        let segment = j
        while (j < len) {
          const c = s.charCodeAt(j)
          if (c === 0x22 /* " */) break
          if (c === 0x5c /* \ */) {
            out += s.slice(segment, j)
            segment = j + 1
            j += 2
          } else {
            j++
          }
        }
        // An unbalanced quote (or a trailing lone backslash) takes the rest of the value; slice
        // clamps j, which a trailing lone backslash leaves one past the end.
        out += s.slice(segment, j)
        directive = out
        // Skip whatever follows the closing quote up to the next member.
        const comma = j < len ? s.indexOf(',', j) : -1
        j = comma === -1 ? len : comma
      } else {
        const valueStart = j
        const comma = s.indexOf(',', j)
        j = comma === -1 ? len : comma
        let valueEnd = j
        while (valueEnd > valueStart && isOws(s.charCodeAt(valueEnd - 1))) valueEnd--
        directive = s.slice(valueStart, valueEnd)
      }
    }

    if (isToken(s, nameStart, nameEnd)) {
      const name = s.slice(nameStart, nameEnd).toLowerCase()
      // RFC 9111 §4.2.1: with duplicate directives a cache may use the first occurrence.
      if (!directives.has(name)) directives.set(name, directive)
    }
    // j is at a ',' or at the end: step over it.
    i = j + 1
  }
  return directives
}

/** RFC 9111 §1.2.2: the value a too-large delta-seconds is taken as (2^31). */
const DELTA_SECONDS_MAX = 2147483648

/**
 * Reads a directive value as RFC 9111 §1.2.2 delta-seconds (a non-negative integer number of
 * seconds), or `undefined` when it is absent, `true` (no value), empty, or not all ASCII digits.
 */
export function deltaSeconds(value: string | true | undefined): number | undefined {
  if (typeof value !== 'string' || value.length === 0) return undefined
  let firstSignificant = -1
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 0x30 || c > 0x39) return undefined
    if (firstSignificant === -1 && c !== 0x30) firstSignificant = i
  }
  if (firstSignificant === -1) return 0
  // RFC 9111 §1.2.2: a value greater than the largest representable integer is taken as 2^31;
  // more than 10 significant digits is always above it, so skip converting huge strings.
  if (value.length - firstSignificant > 10) return DELTA_SECONDS_MAX
  return Math.min(Number(value.slice(firstSignificant)), DELTA_SECONDS_MAX)
}
