// The architecture as import rules: every relative import in src/ and stores/ is read off the
// files and checked against the layer it crosses into, so an edge that breaks a layer fails here
// (docs/internals.md describes the layers).
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Every .ts file under `dir`, relative to the repository root. */
function sources(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = `${dir}/${entry.name}`
    if (entry.isDirectory()) return sources(rel)
    return rel.endsWith('.ts') ? [rel] : []
  })
}

interface Edge {
  from: string
  /** The imported file relative to the root (`src/core/key.ts`), or the bare specifier. */
  to: string
  typeOnly: boolean
  /** The names imported, as written between the braces. */
  names: string[]
}

const IMPORT =
  /(?:^|\n)\s*(import|export)(\s+type)?\s([^'";]*?)from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)/g

/** The imports (static, re-exports and dynamic) of one file. */
function edgesOf(file: string, text: string): Edge[] {
  const edges: Edge[] = []
  for (const match of text.matchAll(IMPORT)) {
    const spec = match[4] ?? match[5]!
    const to = spec.startsWith('.')
      ? path.posix.join(path.posix.dirname(file), spec).replace(/\.js$/, '.ts')
      : spec
    const names = (match[3] ?? '')
      .replace(/[{}]/g, '')
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '')
    edges.push({ from: file, to, typeOnly: match[2] !== undefined, names })
  }
  return edges
}

const ENTRY_POINTS = new Set([
  'src/index.ts',
  'src/http/index.ts',
  'src/metrics.ts',
  'stores/memory.ts',
  'stores/redis.ts',
  'stores/null.ts',
])
const HEADER_TYPES = new Set(['IncomingHttpHeaders', 'OutgoingHttpHeaders'])
const under = (dir: string) => (to: string) => to.startsWith(dir)
const node = (to: string) => to.startsWith('node:')
const packages =
  (...names: string[]) =>
  (to: string) =>
    names.includes(to)

/**
 * What each layer may import (relative files by prefix, packages by name). Layers, bottom up:
 * lib (helpers with no imports), http (pure RFC rules: headers, strings and numbers in, values
 * out), the store contract, core (the request flow and what it runs), the feature layers built
 * on it (memoize, policies, frameworks, metrics), and the proxy, built on the public API only.
 */
const RULES: Array<{
  layer: string
  files: (file: string) => boolean
  may: Array<(to: string, edge: Edge) => boolean>
}> = [
  { layer: 'src/lib', files: under('src/lib/'), may: [node] },
  {
    layer: 'src/http (pure rules)',
    files: (file) => file.startsWith('src/http/') && file !== 'src/http/index.ts',
    // Headers come typed as node:http's IncomingHttpHeaders; nothing else of node:http (no
    // request or response) and nothing of the cache (no CacheEntry) reaches a rule.
    may: [
      under('src/http/'),
      packages('node:crypto'),
      (to, edge) =>
        to === 'node:http' && edge.typeOnly && edge.names.every((name) => HEADER_TYPES.has(name)),
    ],
  },
  { layer: 'src/store.ts', files: (file) => file === 'src/store.ts', may: [] },
  {
    layer: 'stores',
    files: under('stores/'),
    may: [
      under('stores/'),
      node,
      packages('ioredis', 'mnemonist'),
      (to, edge) => to === 'src/store.ts' && edge.typeOnly,
    ],
  },
  {
    layer: 'src/core and the request flow',
    files: (file) =>
      file.startsWith('src/core/') || file === 'src/accelerate.ts' || file === 'src/types.ts',
    // (MemoryStore is the default store; memoize() is also a method of every accelerator.)
    may: [
      under('src/core/'),
      under('src/http/'),
      under('src/lib/'),
      under('src/memoize/'),
      packages('src/store.ts', 'src/types.ts', 'src/accelerate.ts', 'stores/memory.ts', 'p-limit'),
      node,
    ],
  },
  {
    layer: 'src/memoize',
    files: under('src/memoize/'),
    may: [
      under('src/memoize/'),
      under('src/http/'),
      under('src/lib/'),
      packages('src/store.ts', 'src/core/report.ts'),
      node,
    ],
  },
  {
    layer: 'src/policies',
    files: under('src/policies/'),
    may: [
      under('src/core/'),
      under('src/http/'),
      under('src/lib/'),
      packages('src/store.ts', 'src/types.ts'),
      node,
    ],
  },
  {
    layer: 'src/frameworks',
    files: under('src/frameworks/'),
    may: [
      under('src/core/'),
      under('src/http/'),
      under('src/lib/'),
      packages('src/accelerate.ts', 'src/types.ts', 'fastify', 'fastify-plugin', 'koa'),
      node,
    ],
  },
  {
    layer: 'src/metrics.ts',
    files: (file) => file === 'src/metrics.ts',
    may: [
      packages('src/core/diagnostics.ts', 'src/types.ts', 'prom-client'),
      under('src/lib/'),
      node,
    ],
  },
  {
    layer: 'src/proxy (the public API only)',
    files: under('src/proxy/'),
    may: [
      under('src/proxy/'),
      under('src/http/'),
      under('src/lib/'),
      (to) => ENTRY_POINTS.has(to),
      node,
    ],
  },
  // The entry points say what is public: they may re-export from any layer below them.
  {
    layer: 'entry points',
    files: (file) => file === 'src/index.ts' || file === 'src/http/index.ts',
    may: [(to) => to.startsWith('src/') || to.startsWith('stores/')],
  },
]

/** The edges of `files` that no rule allows, as `from -> to (layer)`. */
function violations(files: ReadonlyMap<string, string>): string[] {
  const found: string[] = []
  for (const [file, text] of files) {
    const rule = RULES.find((r) => r.files(file))
    if (rule === undefined) {
      found.push(`${file}: in no layer (add it to a layer's directory or to RULES)`)
      continue
    }
    for (const edge of edgesOf(file, text)) {
      if (!rule.may.some((allowed) => allowed(edge.to, edge)))
        found.push(
          `${file} -> ${edge.to}${edge.typeOnly ? ' (type)' : ''}: not allowed in ${rule.layer}`,
        )
    }
  }
  return found
}

const files = new Map(
  [...sources('src'), ...sources('stores')].map((file) => [
    file,
    readFileSync(path.join(root, file), 'utf8'),
  ]),
)

t.test('every import in src/ and stores/ keeps to its layer', async (t) => {
  t.ok(files.size > 40, 'the sources were found')
  t.same(violations(files), [])
})

t.test('the rules catch the edges they forbid', async (t) => {
  const broken = new Map([
    [
      'src/http/policy.ts',
      "import type { CacheEntry } from '../store.js'\nimport type { IncomingMessage } from 'node:http'\n",
    ],
    ['src/http/vary.ts', "import { IncomingMessage } from 'node:http'\n"],
    [
      'stores/memory.ts',
      "import { describe } from '../src/lib/describe.js'\nimport type { CacheEntry } from '../src/store.js'\n",
    ],
    ['stores/redis.ts', "import { isTag } from '../src/http/tags.js'\n"],
    [
      'src/proxy/forward.ts',
      "import { selectingSet } from '../core/revalidate.js'\nimport { quoteEntityTags } from '../http/conditional.js'\n",
    ],
    [
      'src/proxy/cli.ts',
      "const { RedisStore } = await import('../../stores/redis.js')\nconst m = await import('../core/options.js')\n",
    ],
    ['src/core/flights.ts', "import { forward } from '../proxy/forward.js'\n"],
    ['src/lib/describe.ts', "import { isTag } from '../http/tags.js'\n"],
    ['src/memoize/memoize.ts', "import { accelerate } from '../accelerate.js'\n"],
    ['src/new.ts', ''],
  ])
  t.same(violations(broken), [
    'src/http/policy.ts -> src/store.ts (type): not allowed in src/http (pure rules)',
    'src/http/policy.ts -> node:http (type): not allowed in src/http (pure rules)',
    'src/http/vary.ts -> node:http: not allowed in src/http (pure rules)',
    'stores/memory.ts -> src/lib/describe.ts: not allowed in stores',
    'stores/redis.ts -> src/http/tags.ts: not allowed in stores',
    'src/proxy/forward.ts -> src/core/revalidate.ts: not allowed in src/proxy (the public API only)',
    'src/proxy/cli.ts -> src/core/options.ts: not allowed in src/proxy (the public API only)',
    'src/core/flights.ts -> src/proxy/forward.ts: not allowed in src/core and the request flow',
    'src/lib/describe.ts -> src/http/tags.ts: not allowed in src/lib',
    'src/memoize/memoize.ts -> src/accelerate.ts: not allowed in src/memoize',
    "src/new.ts: in no layer (add it to a layer's directory or to RULES)",
  ])
})
