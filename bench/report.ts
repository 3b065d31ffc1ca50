/** Tables: Markdown pipe tables, printed as is to the terminal and written to RESULTS.md. */
import type { InvalidationResult } from './invalidation.js'
import type { MemoryResult } from './memory.js'
import type { ProfileSummary } from './profile.js'
import type { Comparison, Contender } from './scenarios.js'
import { median, type RunResult } from './common.js'

/** One run of one contender, with what the runner checked and computed around it. */
export interface Measured {
  result: RunResult
  /** Server CPU over the run, in cores. */
  serverCpu: number
  /** Server CPU time per response, µs. */
  usPerRequest: number
  /** Server time in GC pauses per response, µs. */
  gcUsPerRequest: number
  /** redis-server CPU over the run, in cores (Redis rows). */
  redisCpu?: number
  /** The load generator's core was (nearly) saturated: the number is the generator's, not the server's. */
  loadBound: boolean
  /** Why the run is not a valid measurement (errors, unexpected statuses, not hits, ...). */
  invalid?: string
  /** Invalidations completed during the run, and their mean time (6b). */
  invalidations?: { perSecond: number; meanMs: number; failed: number }
}

export interface ComparisonResult {
  comparison: Comparison
  /** runs[contender index][round]; index 0 is the baseline. */
  runs: Measured[][]
  driverNote?: string
  error?: string
}

export type Verdict = 'met' | 'NOT met' | 'load-bound' | 'invalid' | 'n/a'

export interface RatioSummary {
  text: string
  /** Median of the per-round ratios, when it is a number worth reporting. */
  value?: number
  /** Which side the number bounds when only one side was load-bound. */
  bound?: 'lower' | 'upper'
  verdict: Verdict
  /** A server got less than CONTENDED_CPU of its core without the generator being the limit. */
  contended?: boolean
}

export const LOAD_BOUND_CPU = 0.9
/** Below this, a server that was not load-bound lost CPU to other processes: the ratio is noisy. */
export const CONTENDED_CPU = 0.8

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '–')
const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–')

export function table(headings: string[], rows: string[][], align?: Array<'l' | 'r'>): string {
  const widths = headings.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)),
  )
  const line = (cells: string[]) =>
    `| ${cells.map((cell, i) => (align?.[i] === 'r' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join(' | ')} |`
  const rule = `|${widths.map((w, i) => (align?.[i] === 'r' ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`
  return [line(headings), rule, ...rows.map(line)].join('\n')
}

/**
 * The ratio of a candidate (index `c`) to the baseline, median over rounds. A run with an error
 * makes it invalid; load-bound runs make it a bound (or nothing, when both sides were).
 */
export function ratioOf(result: ComparisonResult, c: number): RatioSummary {
  const base = result.runs[0] ?? []
  const cand = result.runs[c] ?? []
  const invalid = [...base, ...cand].find((m) => m.invalid)
  if (result.error) return { text: `error: ${result.error}`, verdict: 'invalid' }
  if (invalid) return { text: `INVALID: ${invalid.invalid}`, verdict: 'invalid' }
  const ratios = cand.map((m, i) => m.result.rps / base[i]!.result.rps)
  const value = median(ratios)
  const spread = `${fmt(Math.min(...ratios))}–${fmt(Math.max(...ratios))}`
  const baseBound = base.some((m) => m.loadBound)
  const candBound = cand.some((m) => m.loadBound)
  const target = result.comparison.target
  const meets = (v: number) => (target === undefined ? 'n/a' : v >= target.min ? 'met' : 'NOT met')
  if (baseBound && candBound) return { text: 'load-bound (both sides)', verdict: 'load-bound' }
  const contended = [...base, ...cand].some((m) => !m.loadBound && m.serverCpu < CONTENDED_CPU)
  if (candBound) {
    // The candidate could go faster than measured: the ratio is a lower bound.
    const verdict: Verdict =
      target === undefined ? 'n/a' : value >= target.min ? 'met' : 'load-bound'
    return { text: `>= ${fmt(value)} (candidate load-bound)`, value, bound: 'lower', verdict }
  }
  if (baseBound) {
    const verdict: Verdict =
      target === undefined ? 'n/a' : value < target.min ? 'NOT met' : 'load-bound'
    return { text: `<= ${fmt(value)} (baseline load-bound)`, value, bound: 'upper', verdict }
  }
  return {
    text: `${fmt(value)} (${spread})${contended ? ' contended' : ''}`,
    value,
    verdict: meets(value),
    contended,
  }
}

/** The same ratio from server CPU per request (baseline µs/req ÷ candidate µs/req): steadier on a busy machine. */
function cpuRatioOf(result: ComparisonResult, c: number): string {
  const base = result.runs[0] ?? []
  const cand = result.runs[c] ?? []
  if (base.length === 0 || cand.length !== base.length) return '–'
  return fmt(median(cand.map((m, i) => base[i]!.usPerRequest / m.usPerRequest)))
}

function contenderRow(result: ComparisonResult, contender: Contender, index: number): string[] {
  const runs = result.runs[index] ?? []
  const med = (pick: (m: Measured) => number) => median(runs.map(pick))
  const flags = [
    runs.some((m) => m.loadBound) ? 'load-bound' : '',
    runs.some((m) => m.invalid) ? 'invalid' : '',
  ]
    .filter(Boolean)
    .join(', ')
  const driverCpu = med((m) => m.result.driverCpu)
  const ratio = index === 0 ? 'baseline' : ratioOf(result, index).text
  const cpuRatio = index === 0 ? '' : cpuRatioOf(result, index)
  const redis =
    runs[0]?.redisCpu !== undefined ? ` (+redis ${fmt(med((m) => m.redisCpu ?? 0))})` : ''
  const inv = runs[0]?.invalidations
    ? ` [${fmt(
        med((m) => m.invalidations!.perSecond),
        0,
      )} inv/s, ${fmt(med((m) => m.invalidations!.meanMs))} ms each]`
    : ''
  return [
    result.comparison.name,
    contender.label + inv + (flags ? ` (${flags})` : ''),
    runs[0]?.result.driver ?? '–',
    fmtInt(med((m) => m.result.rps)),
    fmt(med((m) => m.result.p50)),
    fmt(med((m) => m.result.p99)),
    fmt(med((m) => m.serverCpu)),
    fmt(
      med((m) => m.usPerRequest),
      1,
    ),
    fmt(
      med((m) => m.gcUsPerRequest),
      1,
    ),
    fmt(driverCpu) + redis,
    ratio,
    cpuRatio,
    index === 0 || !contender.targeted ? '' : (result.comparison.target?.text ?? ''),
  ]
}

export function scenarioTable(results: ComparisonResult[]): string {
  const rows: string[][] = []
  for (const result of results) {
    const contenders = [result.comparison.baseline, ...result.comparison.candidates]
    contenders.forEach((contender, i) => rows.push(contenderRow(result, contender, i)))
  }
  const ratioName = results[0]?.comparison.ratio ?? 'ratio'
  return table(
    [
      '',
      'server',
      'driver',
      'req/s',
      'p50 ms',
      'p99 ms',
      'server CPU',
      'server µs/req',
      'GC µs/req',
      'driver CPU',
      `${ratioName} (median, range)`,
      'by CPU/req',
      'target',
    ],
    rows,
    ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'l'],
  )
}

export function invalidationTable(
  results: InvalidationResult[],
  targets: Record<'memory' | 'redis', number>,
): string {
  return table(
    [
      'store',
      'entries with the tag',
      'invalidateTags ms (median)',
      'each run ms',
      'dropped',
      'fill s',
      'target at 100k',
      'verdict',
    ],
    results.map((r) => {
      const ms = median(r.ms)
      const ok =
        r.error === undefined &&
        r.dropped.every((d) => d === r.entries) &&
        r.left.every((n) => n === 0)
      const target = r.entries >= 100_000 ? `< ${targets[r.store]} ms` : ''
      const verdict = !ok
        ? r.error
          ? `FAILED: ${r.error}`
          : 'INVALID: not every entry dropped'
        : target
          ? ms < targets[r.store]
            ? 'met'
            : 'NOT met'
          : ''
      return [
        r.store === 'memory'
          ? 'MemoryStore'
          : `RedisStore${r.timeoutMs ? ` (timeoutMs ${r.timeoutMs})` : ''}`,
        fmtInt(r.entries),
        fmt(ms, 1),
        r.ms.map((v) => fmt(v, 0)).join(', '),
        r.dropped.map(fmtInt).join(', '),
        fmt(r.fillMs / 1000, 1),
        target,
        verdict,
      ]
    }),
    ['l', 'r', 'r', 'l', 'l', 'r', 'l', 'l'],
  )
}

export function memoryTable(r: MemoryResult): string {
  return table(
    [
      'entries',
      'body',
      'V8 heap / entry',
      'buffers / entry',
      'heap + buffers / entry',
      'RSS growth / entry',
      'MemoryStore counts / entry',
    ],
    [
      [
        fmtInt(r.stored),
        `${r.size} B`,
        `${fmtInt(r.heapPerEntry)} B`,
        `${fmtInt(r.buffersPerEntry)} B`,
        `${fmtInt(r.heapPerEntry + r.buffersPerEntry)} B`,
        `${fmtInt(r.rssPerEntry)} B`,
        `${fmtInt(r.accountedPerEntry)} B`,
      ],
    ],
    ['r', 'r', 'r', 'r', 'r', 'r', 'r'],
  )
}

export function profileTables(profiles: ProfileSummary[]): string {
  const out: string[] = []
  // Categories under 0.05 µs/req everywhere (module loading of unused dependencies, ...) are summed.
  const shown = [
    ...new Set(
      profiles.flatMap((p) => p.categories.filter((c) => c.us >= 0.05).map((c) => c.frame)),
    ),
  ]
  const rest = (p: ProfileSummary) =>
    p.categories.filter((c) => !shown.includes(c.frame)).reduce((sum, c) => sum + c.us, 0)
  out.push(
    table(
      ['CPU per request by category (µs)', ...profiles.map((p) => p.label)],
      [
        ...shown.map((cat) => [
          cat,
          ...profiles.map((p) => fmt(p.categories.find((c) => c.frame === cat)?.us ?? 0, 2)),
        ]),
        ['other', ...profiles.map((p) => fmt(rest(p), 2))],
        ['total (non-idle)', ...profiles.map((p) => fmt(p.busyUsPerRequest, 2))],
        ['req/s while profiled', ...profiles.map((p) => fmtInt(p.rps))],
      ],
      ['l', ...profiles.map(() => 'r' as const)],
    ),
  )
  for (const p of profiles) {
    out.push(`\nTop self time, ${p.label} (µs per request, share of non-idle):\n`)
    out.push(
      table(
        ['function', 'category', 'µs/req', 'share'],
        p.selfTop.map((f) => [f.frame, f.category, fmt(f.us, 2), `${fmt(f.share * 100, 1)} %`]),
        ['l', 'l', 'r', 'r'],
      ),
    )
    if (p.categories.some((c) => c.frame.startsWith('accelerator (') && c.us >= 0.1)) {
      out.push(`\nThe accelerator's functions with everything they call, ${p.label}:\n`)
      out.push(
        table(
          ['function', 'µs/req', 'share'],
          p.acceleratorInclusive.map((f) => [f.frame, fmt(f.us, 2), `${fmt(f.share * 100, 1)} %`]),
          ['l', 'r', 'r'],
        ),
      )
    }
  }
  return out.join('\n')
}
