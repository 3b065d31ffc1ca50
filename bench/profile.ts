/**
 * Profiling a server under load: the server runs with `node --cpu-prof` while the driver loads
 * it, exits (which writes the .cpuprofile), and the profile is reduced to where the CPU went per
 * request: by category (the accelerator's code, Node's http and net, GC, ...), by function
 * (self time), and the accelerator's functions with everything they call (inclusive time).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RunResult, ServerSpec } from './common.js'
import { ServerHandle, type Driver, type Pinning } from './processes.js'

interface CpuProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface CpuProfile {
  nodes: CpuProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

export interface FrameTime {
  frame: string
  category: string
  /** µs per request. */
  us: number
  /** Share of the non-idle time. */
  share: number
}

export interface ProfileSummary {
  label: string
  requests: number
  rps: number
  /** Non-idle CPU per request, µs (sampled; profiling itself adds overhead). */
  busyUsPerRequest: number
  categories: FrameTime[]
  selfTop: FrameTime[]
  /** The accelerator's own functions, with what they call (inclusive). */
  acceleratorInclusive: FrameTime[]
}

const IDLE = new Set(['(idle)', '(root)'])

function category(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC'
  if (name === '(program)') return 'V8/native (program)'
  if (IDLE.has(name)) return 'idle'
  if (/\/(src|stores)\/[\w/-]+\.js$/.test(url) && !url.includes('/node_modules/'))
    return 'accelerator (src/, stores/)'
  if (/\/node_modules\/(mnemonist|p-limit|yocto-queue)\//.test(url))
    return 'accelerator deps (mnemonist, p-limit)'
  if (/\/bench\/[\w-]+\.js$/.test(url)) return 'bench handler/server'
  if (url.includes('/node_modules/'))
    return `dependency: ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]}`
  if (/^node:(_http|http)/.test(url)) return 'node: http'
  if (/^node:(net|stream|internal\/streams|internal\/stream_base)/.test(url))
    return 'node: net, streams'
  if (url.startsWith('node:')) return 'node: other'
  return 'V8 builtins/native'
}

function frameName(node: CpuProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const file = url
    .replace(/^file:\/\/.*\/dist\/bench\//, '')
    .replace(/^file:\/\/.*\/node_modules\//, '')
  return `${functionName || '(anonymous)'}${file ? ` ${file}:${lineNumber + 1}` : ''}`
}

/** Reduces a .cpuprofile to time per request by category, by frame, and inclusive for the accelerator. */
export function summarize(
  profile: CpuProfile,
  label: string,
  requests: number,
  rps: number,
  top = 18,
): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id)
  const self = new Map<string, { us: number; category: string }>()
  const categories = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let busy = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)!
    const us = profile.timeDeltas[i] ?? 0
    const cat = category(node.callFrame.url, node.callFrame.functionName)
    if (cat === 'idle') continue
    busy += us
    categories.set(cat, (categories.get(cat) ?? 0) + us)
    const name = frameName(node)
    const entry = self.get(name) ?? { us: 0, category: cat }
    entry.us += us
    self.set(name, entry)
    // Inclusive time of the accelerator's frames: each counted once per sample.
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!
      if (
        category(frame.callFrame.url, frame.callFrame.functionName) !==
        'accelerator (src/, stores/)'
      )
        continue
      const key = frameName(frame)
      if (seen.has(key)) continue
      seen.add(key)
      inclusive.set(key, (inclusive.get(key) ?? 0) + us)
    }
  }
  const per = (us: number) => us / requests
  const rows = (entries: Iterable<[string, number, string]>) =>
    [...entries]
      .map(([frame, us, cat]) => ({ frame, category: cat, us: per(us), share: us / busy }))
      .sort((a, b) => b.us - a.us)
  return {
    label,
    requests,
    rps,
    busyUsPerRequest: per(busy),
    categories: rows(
      [...categories].map(([cat, us]) => [cat, us, cat] as [string, number, string]),
    ),
    selfTop: rows(
      [...self].map(
        ([frame, { us, category: cat }]) => [frame, us, cat] as [string, number, string],
      ),
    ).slice(0, top),
    acceleratorInclusive: rows(
      [...inclusive].map(
        ([frame, us]) => [frame, us, 'accelerator (src/, stores/)'] as [string, number, string],
      ),
    ).slice(0, top),
  }
}

/**
 * Runs `spec` under `node --cpu-prof` (100 µs sampling), warms it, loads it for `seconds` with
 * the driver, and summarizes the profile written when it exits.
 */
export async function profileServer(
  label: string,
  spec: ServerSpec,
  path: string,
  driver: Driver,
  pinning: Pinning,
  seconds: number,
  headers?: Record<string, string>,
  keepIn?: string,
): Promise<ProfileSummary> {
  const dir = mkdtempSync(join(tmpdir(), 'accelerator-prof-'))
  try {
    const server = await ServerHandle.start(spec, pinning, [
      '--cpu-prof',
      `--cpu-prof-dir=${dir}`,
      '--cpu-prof-interval=100',
    ])
    const url = server.url + path
    await driver.warm({ url, requests: 20_000, connections: 16, ...(headers ? { headers } : {}) })
    const result: RunResult = await driver.run({
      driver: 'autocannon',
      url,
      connections: 50,
      duration: seconds,
      warmup: 0,
      ...(headers ? { headers } : {}),
    })
    await server.stop()
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'))
    if (!file) throw new Error('no .cpuprofile written')
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
    // Kept for a flame graph: Chrome DevTools (Performance, load profile) or speedscope open it.
    if (keepIn) {
      mkdirSync(keepIn, { recursive: true })
      copyFileSync(join(dir, file), join(keepIn, `${label.replace(/\W+/g, '-')}.cpuprofile`))
    }
    // The warm-up requests are in the profile too.
    return summarize(profile, label, result.requests + 20_000, result.rps)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
