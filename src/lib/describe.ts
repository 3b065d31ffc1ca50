/**
 * What error messages say about a bad value, and what an unknown option name was probably meant
 * to be: shared by every layer that validates its options.
 */
/** A short description of a bad value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value))
    return `[${value.slice(0, 5).map(describe).join(', ')}${value.length > 5 ? ', …' : ''}]`
  if (typeof value === 'object' && value !== null) return `an object`
  return String(value)
}

/**
 * What an unknown option name was probably meant to be: a synonym's meaning (keys folded, as
 * {@link fold} does), else the nearest known name, else the list of known names.
 */
export function suggestOption(
  name: string,
  known: readonly string[],
  synonyms: Readonly<Record<string, string>>,
): string {
  const folded = fold(name)
  const synonym = synonyms[folded]
  if (synonym !== undefined) return `did you mean ${synonym}?`
  let best: string = known[0]!
  let bestDistance = Infinity
  for (const option of known) {
    const distance = editDistance(folded, fold(option))
    if (distance < bestDistance) [best, bestDistance] = [option, distance]
  }
  if (bestDistance <= Math.max(2, folded.length / 3)) return `did you mean ${best}?`
  if (known.length === 1) return `the only option is ${known[0]}`
  return `the options are ${known.join(', ')}`
}

/** Case and `_`/`-` folded: `max_age`, `MaxAge` and `max-age` all read as `maxage`. */
function fold(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '')
}

/** Levenshtein distance, one row at a time (option names are short). */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, substitution)
    }
    row = next
  }
  return row[b.length]!
}

/**
 * Throws a TypeError for the first option `options` has that is not in `known` (own keys only),
 * naming it and what it was probably meant to be: a misspelt or invented option would otherwise
 * change nothing and say nothing.
 */
export function rejectUnknown(
  options: object,
  known: readonly string[],
  where: string,
  synonyms: Readonly<Record<string, string>> = {},
): void {
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue
    const hint = suggestOption(name, known, synonyms)
    throw new TypeError(`unknown option ${JSON.stringify(name)} for ${where}: ${hint}`)
  }
}
