// Every code sample in README.md and docs/*.md runs here, so the docs and the behaviour cannot
// drift apart.
//
// The convention, for whoever writes docs:
// - Each ```ts / ```typescript / ```js / ```javascript block is a complete program: it imports
//   what it uses from 'node-accelerator' (or node-accelerator/redis, /http, /proxy, /metrics,
//   /fastify, /koa, /fetch, or a dev dependency such as express), and defines what it calls. It
//   is compiled as TypeScript (types dropped, not checked) and run on Node. Shell, promql and
//   plain ``` blocks are not run.
// - A sample that starts a server may listen on a fixed port (`listen(3000)`): here it listens
//   on a free one, and the test sends GET / twice to the first server it started, expecting a
//   2xx and then a hit (Cache-Status `hit`, or X-Cache: HIT). A sample that starts no server
//   must run to completion without throwing.
// - An HTML comment on the line just above a block adjusts that, `;`-separated:
//     <!-- docs: GET /products -->              the path to request instead of /
//     <!-- docs: Host www.example.com -->        the Host header to send (default: the server's)
//     <!-- docs: no hit: <why> -->               expect a 2xx only (the response is not cached)
//     <!-- docs: continues -->                   this block continues the previous run one:
//                                                they are run as one program
//     <!-- docs: not run: <why> -->              not run at all, with the reason (capped below)
// - A sample that needs Redis reads `process.env.REDIS_URL` (each gets a private redis-server);
//   one that needs an origin reads `process.env.UPSTREAM_URL` (a server answering `s-maxage=60`).
//
// How: the package's sources (src/, stores/) and the runner are compiled to JavaScript
// (TypeScript's transpileModule: no type check, as tsx) into a scratch tree under .tap/, inside
// the package so that bare imports resolve from its node_modules; each program is compiled to a
// .mjs file there and run by plain node (no loader to start: a third of the CPU time) in a child
// process, test/fixtures/docs-run.ts, which resolves 'node-accelerator' through package.json's
// "exports" to that tree (so to the working tree's sources, never a stale dist/), moves fixed
// ports to free ones, drives the server and exits. Three run at a time, without tap's loader
// (so they count for no coverage).
import t from 'tap'
import { spawn } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pLimit from 'p-limit'
import ts from 'typescript'
import { startRedis } from './fixtures/redis-server.js'

const root = fileURLToPath(new URL('..', import.meta.url))
/** Blocks marked `not run` across all docs; each needs a reason. Keep it small. */
const MAX_NOT_RUN = 2
/** A bound that ends a stuck sample, not a guess of the machine's speed. */
const SAMPLE_TIMEOUT_MS = 60_000
const RUN_LANGS = new Set(['ts', 'typescript', 'js', 'javascript'])

export interface Program {
  /** `file:line` of its first block. */
  where: string
  code: string
  path: string
  host?: string
  expectHit: boolean
  notRun?: string
}

/** The programs of one markdown file, in order; throws on a directive it does not know. */
export function programs(file: string, markdown: string): Program[] {
  const lines = markdown.split('\n')
  const out: Program[] = []
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\S*)\s*$/.exec(lines[i]!)
    if (!fence) continue
    const start = i
    let end = i + 1
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++
    i = end
    if (!RUN_LANGS.has(fence[1]!)) continue
    const code = lines.slice(start + 1, end).join('\n') + '\n'
    let above = start - 1
    while (above >= 0 && lines[above]!.trim() === '') above--
    const comment = /^<!--\s*docs:(.*)-->\s*$/.exec(lines[above] ?? '')
    const program: Program = { where: `${file}:${start + 1}`, code, path: '/', expectHit: true }
    let continues = false
    for (const raw of comment ? comment[1]!.split(';') : []) {
      const directive = raw.trim()
      let match: RegExpExecArray | null
      if (directive === 'continues') continues = true
      else if ((match = /^GET (\/\S*)$/.exec(directive))) program.path = match[1]!
      else if ((match = /^Host (\S+)$/.exec(directive))) program.host = match[1]!
      else if ((match = /^no hit: (.+)$/.exec(directive))) program.expectHit = false
      else if ((match = /^not run: (.+)$/.exec(directive))) program.notRun = match[1]!
      else throw new Error(`${file}:${above + 1}: unknown docs directive "${directive}"`)
    }
    const previous = out.at(-1)
    if (continues) {
      if (!previous || previous.notRun)
        throw new Error(`${program.where}: "continues" needs a run block before it`)
      previous.code += code
      if (comment && /GET /.test(comment[1]!)) previous.path = program.path
      if (program.host) previous.host = program.host
      if (!program.expectHit) previous.expectHit = false
    } else out.push(program)
  }
  return out
}

export interface Outcome {
  ok: boolean
  code: number | null
  result?: { ok: boolean; error?: string; [key: string]: unknown }
  output: string
}

/** TypeScript (or JavaScript) to an ES module, types dropped; `verbatim` as tsconfig.json says. */
function compile(code: string, fileName: string, verbatim: boolean): string {
  const compilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    verbatimModuleSyntax: verbatim,
    // As tsconfig.json: NestJS's decorators are TypeScript's legacy ones.
    experimentalDecorators: true,
  }
  return ts.transpileModule(code, { fileName, compilerOptions }).outputText
}

/** Every .ts file under `dir`, relative to the root. */
function sourcesUnder(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = `${dir}/${entry.name}`
    if (entry.isDirectory()) return sourcesUnder(rel)
    return rel.endsWith('.ts') ? [rel] : []
  })
}

/** Compiles the package, the runner and its fixtures into `tree` (see the top of this file). */
export function build(tree: string): void {
  const files = [
    ...sourcesUnder('src'),
    ...sourcesUnder('stores'),
    'test/fixtures/docs-run.ts',
    'test/fixtures/docs-redis.ts',
    'test/fixtures/redis-server.ts',
  ]
  for (const file of files) {
    const out = join(tree, file.replace(/\.ts$/, '.js'))
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(out, compile(readFileSync(join(root, file), 'utf8'), file, true))
  }
  writeFileSync(join(tree, 'package.json'), readFileSync(join(root, 'package.json')))
  mkdirSync(join(tree, 'samples'), { recursive: true })
}

/** Runs one program in a child process, with the package compiled into `tree` by build(). */
export async function run(
  program: Program,
  tree: string,
  env: Record<string, string> = {},
): Promise<Outcome> {
  const name = program.where.replace(/[^\w.-]/g, '_')
  const file = join(tree, 'samples', `${name}.mjs`)
  writeFileSync(file, compile(program.code, `${name}.ts`, false))
  const runner = join(tree, 'test/fixtures/docs-run.js')
  // Through env(1), without NODE_OPTIONS: tap's process tracking re-adds its loader to every
  // child's NODE_OPTIONS, which would cost each sample a loader thread and count its coverage.
  const node = ['-u', 'NODE_OPTIONS', process.execPath, runner, file]
  const child = spawn('env', node, {
    cwd: root,
    env: {
      ...process.env,
      ...env,
      DOCS_PATH: program.path,
      ...(program.host ? { DOCS_HOST: program.host } : {}),
      DOCS_EXPECT: program.expectHit ? 'hit' : 'ok',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: SAMPLE_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  const line = /^DOCS-RESULT (.*)$/m.exec(output)
  const result = line ? (JSON.parse(line[1]!) as Outcome['result']) : undefined
  return { ok: code === 0 && result?.ok === true, code, result, output }
}

/** Every program of README.md and docs/*.md. */
function allPrograms(): Program[] {
  const files = [
    'README.md',
    ...readdirSync(join(root, 'docs'))
      .filter((name) => name.endsWith('.md'))
      .sort()
      .map((name) => `docs/${name}`),
  ]
  return files.flatMap((file) => programs(file, readFileSync(join(root, file), 'utf8')))
}

// About 30 Node processes: 20 to 60 s on a loaded 2-core machine, more while the rest of the
// suite runs beside it, so this file's bound is raised above .taprc's 120 s (a bound that ends a
// stuck run, not a guess of the machine's speed).
t.setTimeout(300_000)

const all = allPrograms()
const runnable = all.filter((program) => !program.notRun)
const scratch = join(root, '.tap')
mkdirSync(scratch, { recursive: true })
const dir = mkdtempSync(join(scratch, 'docs-samples-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
t.before(() => build(dir))

// An origin for samples that forward (UPSTREAM_URL): every path is cacheable.
const origin = http.createServer((req, res) => {
  res.setHeader('cache-control', 's-maxage=60')
  res.setHeader('content-type', 'text/plain')
  res.end(`origin: ${req.method} ${req.url}\n`)
})
let upstream = ''
t.before(async () => {
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve))
  upstream = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
})
t.teardown(
  () =>
    new Promise<void>((resolve) => {
      origin.closeAllConnections()
      origin.close(() => resolve())
    }),
)

// All programs start at once, three at a time, when the first subtest runs; each subtest
// waits for its own.
const limit = pLimit(3)
let started: Map<Program, Promise<Outcome>> | undefined
function outcome(program: Program): Promise<Outcome> {
  started ??= new Map(
    runnable.map((each) => [
      each,
      limit(async () => {
        const env: Record<string, string> = { UPSTREAM_URL: upstream }
        if (/REDIS_URL/.test(each.code)) env.REDIS_URL = (await startRedis(t)).url
        return run(each, dir, env)
      }),
    ]),
  )
  return started.get(program)!
}

t.test('the docs hold samples, and few are not run', async (t) => {
  t.ok(runnable.length >= 20, `${runnable.length} programs run`)
  const notRun = all.filter((program) => program.notRun)
  t.ok(
    notRun.length <= MAX_NOT_RUN,
    `${notRun.length} not run (at most ${MAX_NOT_RUN}): ${notRun.map((p) => `${p.where} (${p.notRun})`).join(', ')}`,
  )
})

for (const program of runnable)
  t.test(
    `${program.where} runs${program.path === '/' ? '' : ` (GET ${program.path})`}`,
    async (t) => {
      const result = await outcome(program)
      t.ok(result.ok, 'the sample ran and its server answered as expected', {
        exit: result.code,
        result: result.result,
        output: result.output.slice(-3000),
      })
    },
  )

/** The anchors GitHub gives a markdown file's headings (lower-cased, punctuation dropped). */
export function anchors(markdown: string): Set<string> {
  const found = new Set<string>()
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    const heading = fenced ? null : /^#+ (.*)$/.exec(line)
    if (!heading) continue
    const slug = heading[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-')
    found.add(slug).add(slug.replace(/-+$/, ''))
  }
  return found
}

t.test('every relative link of the docs names a file, and a heading in it', async (t) => {
  const pages = [
    'README.md',
    'examples/README.md',
    'bench/README.md',
    ...readdirSync(join(root, 'docs'))
      .filter((name) => name.endsWith('.md'))
      .map((name) => `docs/${name}`),
  ]
  const broken: string[] = []
  for (const page of pages) {
    const text = readFileSync(join(root, page), 'utf8')
    for (const [, link] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^(https?|mailto):/.test(link!)) continue
      const [path, fragment] = link!.split('#') as [string, string | undefined]
      const target = path === '' ? join(root, page) : join(root, dirname(page), path)
      if (!existsSync(target)) broken.push(`${page}: ${link} (no such file)`)
      else if (
        fragment &&
        target.endsWith('.md') &&
        !anchors(readFileSync(target, 'utf8')).has(fragment)
      )
        broken.push(`${page}: ${link} (no such heading)`)
    }
  }
  t.same(broken, [])
  const sample = '# A `b({ c })`: d\n```\n# not a heading\n```\n## Ça va?\n'
  t.same([...anchors(sample)], ['a-b-c--d', 'ça-va'])
})

t.test('the conventions', async (t) => {
  t.test('blocks, directives and continuations are read as documented', async (t) => {
    const md = [
      '```ts',
      'a()',
      '```',
      '<!-- docs: continues; GET /x -->',
      '```js',
      'b()',
      '```',
      '```sh',
      'npm test',
      '```',
      '<!-- docs: no hit: it sets a cookie -->',
      '',
      '```typescript',
      'c()',
      '```',
      '<!-- docs: not run: needs a TLS Redis -->',
      '```javascript',
      'd()',
      '```',
    ].join('\n')
    const read = programs('x.md', md)
    t.same(
      read.map(({ where, code, path, expectHit, notRun }) => ({
        where,
        code,
        path,
        expectHit,
        notRun,
      })),
      [
        { where: 'x.md:1', code: 'a()\nb()\n', path: '/x', expectHit: true, notRun: undefined },
        { where: 'x.md:13', code: 'c()\n', path: '/', expectHit: false, notRun: undefined },
        {
          where: 'x.md:17',
          code: 'd()\n',
          path: '/',
          expectHit: true,
          notRun: 'needs a TLS Redis',
        },
      ],
    )
    t.throws(() => programs('y.md', '<!-- docs: maybe -->\n```ts\nx\n```\n'), {
      message: 'y.md:1: unknown docs directive "maybe"',
    })
    t.throws(() => programs('z.md', '<!-- docs: continues -->\n```ts\nx\n```\n'), {
      message: 'z.md:2: "continues" needs a run block before it',
    })
  })

  // The runner must fail a broken sample: one that throws, and one whose page is not cached.
  const broken: Array<[string, string, string]> = [
    ['a sample that throws', "throw new Error('broken sample')\n", 'broken sample'],
    [
      'a sample whose server is not a cache',
      "import http from 'node:http'\nhttp.createServer((req, res) => res.end('x')).listen(3000)\n",
      'was not a 2xx hit',
    ],
    [
      'a sample whose server answers 500',
      [
        "import http from 'node:http'",
        "import { accelerate } from 'node-accelerator'",
        'const app = accelerate(() => {',
        "  throw new Error('handler fails')",
        '})',
        'http.createServer(app).listen(3000)',
        '',
      ].join('\n'),
      'answered 500',
    ],
    [
      'a sample importing a name the package does not export',
      "import { accelerator } from 'node-accelerator'\naccelerator()\n",
      'accelerator',
    ],
  ]
  for (const [name, code, message] of broken)
    t.test(`${name} fails`, async (t) => {
      const result = await run({ where: `broken:${name}`, code, path: '/', expectHit: true }, dir)
      t.notOk(result.ok)
      t.equal(result.code, 1)
      t.match(result.output, message)
    })

  t.test('a working sample passes, its second GET a hit', async (t) => {
    const code = [
      "import http from 'node:http'",
      "import { accelerate } from 'node-accelerator'",
      'const app = accelerate((req, res) => {',
      '  res.cacheFor = 60',
      "  res.end('hello')",
      '})',
      'http.createServer(app).listen(3000)',
      '',
    ].join('\n')
    const result = await run({ where: 'good:sample', code, path: '/', expectHit: true }, dir)
    t.ok(result.ok, result.output)
    t.match(result.result, { second: { status: 200, cacheStatus: /hit/ } })
  })
})
