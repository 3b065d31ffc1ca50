/**
 * Targeted cache control (RFC 9213): `CDN-Cache-Control`, and this cache's own
 * `Accelerator-Cache-Control`, are Cache-Control for one class of caches. Their values are RFC 8941
 * Structured Field dictionaries: a field that does not parse, or whose known directives have the
 * wrong type, is ignored entirely (RFC 9213 §2.1), and keys are case-sensitive (RFC 8941 §3.2:
 * a key is lower-case, so `Max-Age` makes the field invalid).
 *
 * Pure functions: header values in, values out; never throws; linear in the input.
 */
import { parseCacheControl, type CacheControl } from './cache-control.js'

/** The accelerator's own targeted field (RFC 9213 §2.1), honoured in every mode. */
export const ACCELERATOR_CACHE_CONTROL = 'accelerator-cache-control'
/** The field targeted at CDNs and reverse proxies (RFC 9213 §3). */
export const CDN_CACHE_CONTROL = 'cdn-cache-control'

/** Which targeted fields a cache reads, in its target list's order. */
export interface TargetOptions {
  /** Read `CDN-Cache-Control` too (after `Accelerator-Cache-Control`). */
  cdnCacheControl?: boolean
}

/** The directives that rule a response for this cache, and whether a targeted field gave them. */
export interface Directives {
  cc: CacheControl
  /** A targeted field ruled: `Cache-Control` and `Expires` are then ignored (RFC 9213 §2.1). */
  targeted: boolean
}

type Headers = Readonly<Record<string, string | string[] | number | undefined>>

/**
 * RFC 9213 §2.1: the first field of the target list with a valid, non-empty value rules, and
 * Cache-Control and Expires are ignored; with none, Cache-Control rules.
 */
export function responseDirectives(headers: Headers, options: TargetOptions): Directives {
  const own = targetedDirectives(headers[ACCELERATOR_CACHE_CONTROL])
  if (own) return { cc: own, targeted: true }
  const cdn = options.cdnCacheControl ? targetedDirectives(headers[CDN_CACHE_CONTROL]) : undefined
  if (cdn) return { cc: cdn, targeted: true }
  return { cc: parseCacheControl(headers['cache-control']), targeted: false }
}

/**
 * The directives of a targeted field, in the shape {@link parseCacheControl} gives (an Integer
 * as its decimal text, a Boolean `true` as `true`); `undefined` when the field is absent, empty,
 * not a valid dictionary, or a known directive has the wrong type.
 */
export function targetedDirectives(
  value: string | string[] | number | undefined,
): CacheControl | undefined {
  if (value === undefined) return undefined
  // RFC 8941 §4.2: several field lines are one value, joined with commas.
  const dictionary = parseDictionary(Array.isArray(value) ? value.join(', ') : String(value))
  if (dictionary === undefined || dictionary.size === 0) return undefined
  const directives = new Map<string, string | true>()
  for (const [key, item] of dictionary) {
    const kind = DIRECTIVE_TYPES[key]
    if (kind === 'integer') {
      // RFC 9111 §1.2.2: delta-seconds are non-negative.
      if (typeof item !== 'number' || !Number.isInteger(item) || item < 0) return undefined
      directives.set(key, String(item))
    } else if (kind === 'boolean') {
      if (item !== true && item !== false) return undefined
      if (item) directives.set(key, true)
    } else if (kind === 'field-names') {
      // `private` / `no-cache` with field names (an Inner List of Strings) is taken as the whole
      // response: stricter, never looser.
      if (item === false) continue
      if (item !== true && !Array.isArray(item)) return undefined
      directives.set(key, true)
    } else if (item !== false) {
      directives.set(key, typeof item === 'boolean' || Array.isArray(item) ? true : String(item))
    }
  }
  return directives
}

/** The types RFC 9213 §2.1 gives the directives a cache acts on. */
type DirectiveType = 'integer' | 'boolean' | 'field-names'
const DIRECTIVE_TYPES: Readonly<Record<string, DirectiveType>> = Object.assign(
  Object.create(null),
  {
    'max-age': 'integer',
    's-maxage': 'integer',
    'stale-while-revalidate': 'integer',
    'stale-if-error': 'integer',
    'no-store': 'boolean',
    'must-revalidate': 'boolean',
    'proxy-revalidate': 'boolean',
    'must-understand': 'boolean',
    public: 'boolean',
    immutable: 'boolean',
    private: 'field-names',
    'no-cache': 'field-names',
  },
)

/** An RFC 8941 bare item (Byte Sequences kept as their base64 text), or an Inner List of them. */
export type Item = number | Decimal | string | boolean | Item[]

/**
 * RFC 8941 §4.2.2: a Dictionary (members' parameters are parsed and dropped), or `undefined` when
 * the text is not one. A key given twice keeps its last value (RFC 8941 §4.2.2).
 */
export function parseDictionary(text: string): Map<string, Item> | undefined {
  const p = new Parser(text)
  p.skipSpaces()
  const dictionary = new Map<string, Item>()
  while (!p.done()) {
    const key = p.key()
    if (key === undefined) return undefined
    let member: Item | undefined = true
    if (p.peek() === '=') {
      p.pos++
      member = p.peek() === '(' ? p.innerList() : p.bareItem()
    }
    if (member === undefined || !p.parameters()) return undefined
    dictionary.delete(key)
    dictionary.set(key, member)
    p.skipOws()
    if (p.done()) return dictionary
    if (p.peek() !== ',') return undefined
    p.pos++
    p.skipOws()
    // RFC 8941 §4.2.2: a trailing comma is an error.
    if (p.done()) return undefined
  }
  return dictionary
}

const LCALPHA = /[a-z*]/
const KEY_CHAR = /[a-z0-9_\-.*]/
const ALPHA = /[A-Za-z*]/
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/
const BASE64_CHAR = /[A-Za-z0-9+/=]/

/** A cursor over a field value, one method per RFC 8941 §4.2 parsing step. */
class Parser {
  pos = 0
  constructor(private readonly s: string) {}

  done(): boolean {
    return this.pos >= this.s.length
  }

  peek(): string {
    return this.s.charAt(this.pos)
  }

  skipSpaces(): void {
    while (this.peek() === ' ') this.pos++
  }

  skipOws(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++
  }

  /** §4.2.3.3: a key. */
  key(): string | undefined {
    const start = this.pos
    if (!LCALPHA.test(this.peek())) return undefined
    this.pos++
    while (!this.done() && KEY_CHAR.test(this.peek())) this.pos++
    return this.s.slice(start, this.pos)
  }

  /** §4.2.3.2: parameters, parsed for their validity only. */
  parameters(): boolean {
    while (this.peek() === ';') {
      this.pos++
      this.skipSpaces()
      if (this.key() === undefined) return false
      if (this.peek() === '=') {
        this.pos++
        if (this.bareItem() === undefined) return false
      }
    }
    return true
  }

  /** §4.2.1.2: an Inner List (its items' parameters parsed and dropped). */
  innerList(): Item[] | undefined {
    this.pos++
    const items: Item[] = []
    while (!this.done()) {
      this.skipSpaces()
      if (this.peek() === ')') {
        this.pos++
        return items
      }
      const item = this.bareItem()
      if (item === undefined || !this.parameters()) return undefined
      items.push(item)
      if (this.peek() !== ' ' && this.peek() !== ')') return undefined
    }
    return undefined
  }

  /** §4.2.3.1: a bare item. */
  bareItem(): Item | undefined {
    const c = this.peek()
    if (c === '-' || (c >= '0' && c <= '9')) return this.number()
    if (c === '"') return this.string()
    if (c === ':') return this.bytes()
    if (c === '?') return this.boolean()
    if (c !== '' && ALPHA.test(c)) return this.token()
    return undefined
  }

  /** §4.2.4: an Integer (at most 15 digits) or a Decimal (at most 12 digits, then 1 to 3). */
  number(): number | Decimal | undefined {
    const match = /^-?(\d{1,15})(\.\d{1,3})?/.exec(this.s.slice(this.pos, this.pos + 20))
    if (!match || /[\d.]/.test(this.s.charAt(this.pos + match[0].length))) return undefined
    if (match[2] !== undefined && match[1]!.length > 12) return undefined
    this.pos += match[0].length
    return match[2] === undefined ? Number(match[0]) : new Decimal(match[0])
  }

  /** §4.2.5: a String: printable ASCII, with `\"` and `\\` the only escapes. */
  string(): string | undefined {
    let out = ''
    for (this.pos++; !this.done(); this.pos++) {
      const c = this.peek()
      if (c === '"') {
        this.pos++
        return out
      }
      if (c === '\\') {
        this.pos++
        const next = this.peek()
        if (next !== '"' && next !== '\\') return undefined
        out += next
      } else if (c < ' ' || c > '~') return undefined
      else out += c
    }
    return undefined
  }

  /** §4.2.6: a Token. */
  token(): string {
    const start = this.pos
    this.pos++
    while (!this.done() && TOKEN_CHAR.test(this.peek())) this.pos++
    return this.s.slice(start, this.pos)
  }

  /** §4.2.7: a Byte Sequence, kept as its base64 text. */
  bytes(): string | undefined {
    const end = this.s.indexOf(':', this.pos + 1)
    if (end === -1) return undefined
    const text = this.s.slice(this.pos + 1, end)
    for (const c of text) if (!BASE64_CHAR.test(c)) return undefined
    this.pos = end + 1
    return text
  }

  /** §4.2.8: a Boolean, `?1` or `?0`. */
  boolean(): boolean | undefined {
    const c = this.s.charAt(this.pos + 1)
    if (c !== '0' && c !== '1') return undefined
    this.pos += 2
    return c === '1'
  }
}

/** An RFC 8941 Decimal, kept apart from an Integer: `max-age=10.0` is the wrong type. */
export class Decimal {
  constructor(readonly text: string) {}

  toString(): string {
    return this.text
  }
}
