/** Request-targets and hosts as RFC 9110 and RFC 3986 define them: strings in, strings out. */

/** RFC 3986 §3: `scheme://authority` and the rest, as written (no resolution, no re-encoding). */
const ABSOLUTE = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/is

/** An absolute URL or absolute-form request-target, split as written. */
export interface AbsoluteTarget {
  /** Lower-cased: `http`, `https`, ... */
  scheme: string
  /** As written: `host[:port]`, possibly with userinfo or worse (check it before use). */
  authority: string
  /** The path and query as written, `/` when the path is empty (RFC 9112 §3.2.1). */
  path: string
}

/**
 * Splits `scheme://authority/path?query` without parsing it as a WHATWG URL, which would resolve
 * dot-segments and re-encode characters the cache keys as sent; `undefined` for anything else.
 */
export function splitAbsolute(target: string): AbsoluteTarget | undefined {
  const match = ABSOLUTE.exec(target)
  if (match === null) return undefined
  const rest = match[3]!
  return {
    scheme: match[1]!.toLowerCase(),
    authority: match[2]!,
    path: rest.startsWith('/') ? rest : '/' + rest,
  }
}

/**
 * Host names are case-insensitive, and a trailing dot or the scheme's own default port name the
 * same origin (RFC 9110 §4.2.3), so `Example.com.:80` and `example.com` share entries over plain
 * HTTP. Only the scheme's own port is dropped: `:443` over plain HTTP (or `:80` over TLS) is
 * another origin, which the application may well answer differently.
 */
export function normalizeHost(host: string | undefined, secure = false): string {
  if (!host) return ''
  let h = host.trim().toLowerCase()
  const port = secure ? ':443' : ':80'
  if (h.endsWith(port)) h = h.slice(0, -port.length)
  return h.endsWith('.') ? h.slice(0, -1) : h
}

/** A lone surrogate: not well-formed Unicode. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Whether a string is well-formed Unicode (no lone surrogate): what every store spells alike. */
export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text)
}
