/**
 * memoize(): a function's results cached in a {@link CacheStore} by its arguments, as ordinary
 * entries, so that `invalidateTags` drops them together with the pages built from them.
 *
 * Store keys: `prefix + '\0memo\0' + namespace + '\0' + argument key` (a host never starts
 * with NUL, so no page key can collide, and `clear()` is one `store.clear(prefix)`). Entries:
 * status 200, `content-type: application/x-memoized`, a body of one type byte and the value.
 */
import { createHash } from 'node:crypto'
import { isTag, tagList } from '../http/tags.js'
import type { CacheEntry, CacheStore } from '../store.js'
import { describe, rejectUnknown } from '../lib/describe.js'
import { logOncePerBurst, safeReporter, type ErrorHandler, type ErrorOp } from '../core/report.js'

/** Options of {@link memoize}. */
export interface MemoizeOptions<A extends unknown[]> {
  /** Where results are stored (`app.memoize` passes the accelerator's). */
  store: CacheStore
  /** Seconds a result is reused; after it the function runs again (nothing stale is served). @default 300 */
  cacheFor?: number
  /** @deprecated the old name of {@link cacheFor} (seconds too); giving both is an error. */
  ttl?: number
  /**
   * Tags of each result, for `invalidateTags`: any iterable of strings (an array, a Set) or one
   * string, or a function of the arguments returning one. @default []
   */
  tags?: Iterable<string> | string | ((...args: A) => Iterable<string> | string)
  /** The argument key, replacing the default stable serialisation of the arguments. */
  key?: (...args: A) => string
  /** Keeps this function's results apart from other functions'; no NUL. @default fn.name (a TypeError when it is empty) */
  namespace?: string
  /** The clock, epoch milliseconds. @default Date.now */
  now?: () => number
  /** Receives store failures and results that cannot be stored (the call still succeeds). @default logs the first of each burst */
  onError?: ErrorHandler
}

/** A memoized function: same parameters, always async, plus `delete` and `clear`. */
export type Memoized<A extends unknown[], R> = ((...args: A) => Promise<R>) & {
  /** Drops the result stored for these arguments; resolves how many entries were removed (0 or 1). */
  delete(...args: A): Promise<number>
  /** Drops every stored result of this function (and nothing else). */
  clear(): Promise<void>
}

const KNOWN_OPTIONS: readonly string[] = [
  'store',
  'cacheFor',
  'ttl',
  'tags',
  'key',
  'namespace',
  'now',
  'onError',
]
/** Names other caches use for these options. */
const SYNONYMS: Readonly<Record<string, string>> = {
  maxage: 'cacheFor',
  expire: 'cacheFor',
  expires: 'cacheFor',
  ttlseconds: 'cacheFor',
  keyfn: 'key',
  hash: 'key',
  prefix: 'namespace',
  keyprefix: 'namespace',
}

/** The content type of memoized entries; the body's first byte says how the rest is encoded. */
export const MEMOIZED_TYPE = 'application/x-memoized'
const UNDEFINED = 0x75 // 'u': no payload
const JSON_DATA = 0x6a // 'j': UTF-8 JSON text
const BYTES = 0x62 // 'b': the bytes, raw
/** Argument keys longer than this many characters are replaced by their SHA-256. */
const MAX_KEY_CHARS = 200
const STORE_METHODS = ['get', 'checkpoint', 'set', 'delete', 'clear'] as const
// Namespaces taken from fn.name, per store: two different functions named alike would share results.
const named = new WeakMap<CacheStore, Map<string, string>>()

/**
 * Wraps `fn` so that its results are stored by arguments and shared by concurrent calls.
 *
 * A call whose arguments cannot be keyed (functions, symbols, cycles, class instances) rejects
 * with a TypeError before `fn` runs. JSON data, bytes (returned as a Buffer) and `undefined` are
 * stored; any other result is returned but not stored, and reported (op `value`). Store failures
 * are reported and `fn` runs (fail open); `delete()` and `clear()` reject with the store's error.
 */
export function memoize<A extends unknown[], R>(
  fn: (...args: A) => R | Promise<R>,
  options: MemoizeOptions<A>,
): Memoized<A, Awaited<R>> {
  return memoizeIn('', fn, options)
}

/** What `app.memoize(fn, options)` takes: {@link MemoizeOptions} without the store (its own). */
export type AppMemoizeOptions<A extends unknown[]> = Omit<MemoizeOptions<A>, 'store'>

/**
 * {@link memoize} with every store key under `keyPrefix`: `app.memoize` passes its namespace's
 * prefix, so that `app.clear()` drops the results too.
 */
export function memoizeIn<A extends unknown[], R>(
  keyPrefix: string,
  fn: (...args: A) => R | Promise<R>,
  options: MemoizeOptions<A>,
): Memoized<A, Awaited<R>> {
  if (typeof fn !== 'function')
    throw new TypeError(`expected fn to be a function, got ${describe(fn)}`)
  if (options === null || typeof options !== 'object') {
    const how =
      "memoize(fn, { store: new MemoryStore() }), or app.memoize(fn) to share an accelerator's store"
    throw new TypeError(
      `expected options to be an object with a store (${how}), got ${describe(options)}`,
    )
  }
  rejectUnknown(options, KNOWN_OPTIONS, 'memoize()', SYNONYMS)
  if (options.cacheFor !== undefined && options.ttl !== undefined) {
    const both = `got cacheFor ${describe(options.cacheFor)} and ttl ${describe(options.ttl)}`
    throw new TypeError(`expected options.cacheFor or its old name options.ttl, not both: ${both}`)
  }
  const { store, tags = [] } = options
  const ttlName = options.cacheFor === undefined && options.ttl !== undefined ? 'ttl' : 'cacheFor'
  const ttl = options.cacheFor ?? options.ttl ?? 300
  if (store === null || typeof store !== 'object')
    throw new TypeError(`expected options.store to be a CacheStore, got ${describe(store)}`)
  for (const method of STORE_METHODS) {
    if (typeof store[method] !== 'function')
      throw new TypeError(
        `expected options.store to have ${method}(), got ${describe(store[method])}`,
      )
  }
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0)
    throw new TypeError(
      `expected options.${ttlName} to be a number of seconds > 0, got ${describe(ttl)}`,
    )
  // An iterable is read once, here (a generator could not be read again for the next call).
  const fixed = typeof tags === 'function' ? undefined : tagsOf(tags)
  if (fixed === undefined && typeof tags !== 'function')
    throw new TypeError(
      `expected options.tags to be strings (an iterable or one) or a function, got ${describe(tags)}`,
    )
  for (const name of ['key', 'now', 'onError'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function')
      throw new TypeError(
        `expected options.${name} to be a function, got ${describe(options[name])}`,
      )
  }
  const { key, now = Date.now } = options
  const report = safeReporter(options.onError ?? logOncePerBurst(now), () => {})
  const namespace = options.namespace ?? fn.name
  if (options.namespace === undefined && namespace === '')
    throw new TypeError(
      'expected options.namespace, or a named function, got an anonymous function',
    )
  if (typeof namespace !== 'string' || namespace === '' || namespace.includes('\0')) {
    throw new TypeError(
      `expected options.namespace to be a non-empty string without NUL characters, got ${describe(namespace)}`,
    )
  }
  const prefix = `${keyPrefix}\0memo\0${namespace}\0`
  if (options.namespace === undefined) claim(store, prefix, String(fn))
  const ttlMs = ttl * 1000
  const flights = new Map<string, Promise<Awaited<R>>>()

  function keyOf(args: A): string {
    let k: string
    if (key === undefined) k = args.map((arg, i) => keyPart(arg, '$', new Set(), i)).join(',')
    else if (typeof (k = key(...args)) !== 'string')
      throw new TypeError(`expected options.key to return a string, got ${describe(k)}`)
    return (
      prefix +
      (k.length > MAX_KEY_CHARS ? '#' + createHash('sha256').update(k).digest('base64url') : k)
    )
  }

  async function run(k: string, args: A): Promise<Awaited<R>> {
    const given = typeof tags === 'function' ? tags(...args) : undefined
    const list = fixed ?? tagsOf(given)
    if (list === undefined)
      throw new TypeError(
        `expected options.tags to return strings (an iterable or one), got ${describe(given)}`,
      )
    try {
      const entry = await store.get(k)
      // Past staleAt (a soft invalidation moves it): recompute, memoized values are never served stale.
      if (entry !== undefined && now() < entry.staleAt) return decode(entry) as Awaited<R>
    } catch (err) {
      report(err as Error, { op: 'get', key: k })
    }
    // Taken before fn runs: an invalidation while it runs makes the store refuse its result.
    const since = await attempt('checkpoint', k, () => store.checkpoint())
    const value = await fn(...args)
    if (since === undefined) return value
    const body = await attempt('value', k, async () => encode(value))
    if (body === undefined) return value
    const at = now()
    const entry: CacheEntry = {
      status: 200,
      headers: { 'content-type': MEMOIZED_TYPE },
      body,
      tags: [...list],
      storedAt: at,
      initialAge: 0,
      staleAt: at + ttlMs,
      expiresAt: at + ttlMs,
    }
    // Awaited, so that a call made once this one resolved finds the result stored.
    await attempt('set', k, () => store.set(k, entry, since))
    return value
  }

  /** The result of `call`, or undefined (reported) when it fails: the store fails open. */
  async function attempt<T>(
    op: ErrorOp,
    k: string,
    call: () => Promise<T>,
  ): Promise<T | undefined> {
    try {
      return await call()
    } catch (err) {
      report(err as Error, { op, key: k })
      return undefined
    }
  }

  const memoized = async (...args: A): Promise<Awaited<R>> => {
    const k = keyOf(args)
    const running = flights.get(k)
    if (running !== undefined) return running
    const flight = run(k, args).finally(() => {
      if (flights.get(k) === flight) flights.delete(k)
    })
    flights.set(k, flight)
    return flight
  }
  return Object.assign(memoized, {
    // Calls made after these begin do not join a run that began before them.
    delete: async (...args: A): Promise<number> => {
      const k = keyOf(args)
      flights.delete(k)
      return store.delete(k)
    },
    clear: async (): Promise<void> => {
      flights.clear()
      await store.clear(prefix)
    },
  })
}

/** Tags as given (an iterable of strings, or one string) as a fresh array; undefined if not tags. */
function tagsOf(value: unknown): string[] | undefined {
  const list = tagList(value)
  return list?.every(isTag) ? [...(list as string[])] : undefined
}

function claim(store: CacheStore, prefix: string, source: string): void {
  let sources = named.get(store)
  if (sources === undefined) named.set(store, (sources = new Map()))
  const other = sources.get(prefix)
  if (other !== undefined && other !== source) {
    throw new TypeError(
      `another function named ${describe(prefix.split('\0')[2])} is memoized on this store; give one of them options.namespace`,
    )
  }
  sources.set(prefix, source)
}

/**
 * The stable key of one argument: unambiguous (strings quoted, `1` ≠ `'1'`, `undefined` ≠
 * `null`), object keys sorted, Map entries and Set members sorted, Dates by time, bytes by value.
 */
function keyPart(value: unknown, at: string, ancestors: Set<object>, arg: number): string {
  const fail = (why: string): never => {
    throw new TypeError(`cannot key argument ${arg} (${at}): ${why}; pass options.key`)
  }
  switch (typeof value) {
    case 'undefined':
      return 'u'
    case 'boolean':
      return value ? 't' : 'f'
    case 'number':
      return String(value) // -0 is 0; NaN and ±Infinity by name
    case 'bigint':
      return `${value}n`
    case 'string':
      return JSON.stringify(value)
    case 'function':
    case 'symbol':
      return fail(`it is a ${typeof value}`)
  }
  if (value === null) return 'n'
  const o = value as object
  if (ancestors.has(o)) return fail('it is a cycle')
  if (o instanceof Date) return `D${o.getTime()}`
  if (o instanceof Uint8Array)
    return `B${Buffer.from(o.buffer, o.byteOffset, o.byteLength).toString('base64')}`
  ancestors.add(o)
  const part = (v: unknown, path: string) => keyPart(v, path, ancestors, arg)
  let out: string
  if (Array.isArray(o)) out = `[${Array.from(o, (v, i) => part(v, `${at}[${i}]`)).join(',')}]`
  else if (o instanceof Map)
    out = `M[${[...o]
      .map(([k, v], i) => `${part(k, `${at}[${i}][0]`)}:${part(v, `${at}[${i}][1]`)}`)
      .sort()
      .join(',')}]`
  else if (o instanceof Set)
    out = `S[${[...o]
      .map((v, i) => part(v, `${at}[${i}]`))
      .sort()
      .join(',')}]`
  else if (isPlain(o)) {
    if (Object.getOwnPropertySymbols(o).length > 0) fail('it has symbol keys')
    const record = o as Record<string, unknown>
    out = `{${Object.keys(record)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${part(record[k], child(at, k))}`)
      .join(',')}}`
  } else return fail(`it is ${instanceOf(o)}`)
  ancestors.delete(o)
  return out
}

/** The body of a memoized entry; a TypeError naming the first part that is not plain data. */
function encode(value: unknown): Buffer {
  if (value === undefined) return Buffer.of(UNDEFINED)
  if (value instanceof Uint8Array) return Buffer.concat([Buffer.of(BYTES), value])
  const problem = notJson(value, '$', new Set())
  if (problem !== undefined) {
    throw new TypeError(
      `cannot store the result: ${problem}; results must be JSON data (plain objects, arrays, strings, finite numbers, booleans, null), bytes or undefined`,
    )
  }
  return Buffer.from(String.fromCharCode(JSON_DATA) + JSON.stringify(value))
}

/** Why JSON.stringify would not give `value` back exactly, or undefined when it would. */
function notJson(value: unknown, at: string, ancestors: Set<object>): string | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `${at} is ${value}`
  if (typeof value !== 'object')
    return `${at} is ${value === undefined ? 'undefined' : `a ${typeof value}`}`
  if (ancestors.has(value)) return `${at} is a cycle`
  ancestors.add(value)
  let problem: string | undefined
  if (Array.isArray(value))
    for (let i = 0; i < value.length && problem === undefined; i++)
      problem = notJson(value[i], `${at}[${i}]`, ancestors)
  else if (!isPlain(value)) problem = `${at} is ${instanceOf(value)}`
  else if (Object.getOwnPropertySymbols(value).length > 0) problem = `${at} has symbol keys`
  else
    for (const [k, v] of Object.entries(value))
      if ((problem = notJson(v, child(at, k), ancestors)) !== undefined) break
  ancestors.delete(value)
  return problem
}

function decode(entry: CacheEntry): unknown {
  const type = entry.body[0]
  if (entry.headers['content-type'] === MEMOIZED_TYPE) {
    if (type === UNDEFINED) return undefined
    // A copy: a MemoryStore hands out the stored bytes themselves.
    if (type === BYTES) return Buffer.from(entry.body.subarray(1))
    if (type === JSON_DATA) return JSON.parse(entry.body.toString('utf8', 1))
  }
  throw new Error('the entry at this key is not a memoized value')
}

function isPlain(o: object): boolean {
  const proto = Object.getPrototypeOf(o)
  return proto === Object.prototype || proto === null
}

function instanceOf(o: object): string {
  const name: unknown = (Object.getPrototypeOf(o) as { constructor?: { name?: unknown } })
    .constructor?.name
  return typeof name === 'string' && name !== ''
    ? `an instance of ${name}`
    : 'an instance of an anonymous class'
}

function child(at: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${at}.${key}` : `${at}[${JSON.stringify(key)}]`
}
