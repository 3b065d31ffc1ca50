/**
 * `{ ...a, ...b }` without the spread syntax. On Node 20 (V8 11.3), a spread followed by more
 * properties (a second spread, or `{ ...a, key }`) leaves the fast clone path: measured at about
 * 0.5 µs a call against 0.05 µs for this loop, and its garbage made scavenges several times
 * slower, which was most of a miss's overhead (bench/RESULTS.md, miss scenarios). Hot paths
 * merge records with this instead.
 */
export function merged<A, B, C = never>(
  a: Readonly<Record<string, A>>,
  b: Readonly<Record<string, B>>,
  c?: Readonly<Record<string, C>>,
): Record<string, A | B | C> {
  const out: Record<string, A | B | C> = {}
  copy(out, a)
  copy(out, b)
  if (c !== undefined) copy(out, c)
  return out
}

function copy<V>(into: Record<string, V>, from: Readonly<Record<string, V>>): void {
  for (const name in from) setOwn(into, name, from[name]!)
}

/**
 * `record[name] = value`, except that a header named `__proto__` (a valid token) stays data, as
 * a spread or `Object.fromEntries` would keep it, instead of replacing the record's prototype.
 */
export function setOwn<V>(record: Record<string, V>, name: string, value: V): void {
  if (name === '__proto__')
    Object.defineProperty(record, name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    })
  else record[name] = value
}
