/**
 * `{ ...a, ...b }` without the spread syntax. On Node 20 (V8 11.3), a spread followed by more
 * properties (a second spread, or `{ ...a, key }`) leaves the fast clone path: measured at about
 * 0.5 µs a call against 0.05 µs for this loop, and its garbage made scavenges several times
 * slower, which was most of a miss's overhead (bench/RESULTS.md, miss scenarios). Hot paths
 * merge records with this instead.
 */
export function merged<A, B, C = never>(a: Readonly<Record<string, A>>, b: Readonly<Record<string, B>>, c?: Readonly<Record<string, C>>): Record<string, A | B | C> {
  const out: Record<string, A | B | C> = {}
  for (const name in a) out[name] = a[name]!
  for (const name in b) out[name] = b[name]!
  if (c !== undefined) for (const name in c) out[name] = c[name]!
  return out
}
