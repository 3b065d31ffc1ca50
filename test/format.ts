// Prettier (.prettierrc.json: 100 columns) is the one formatting: every source, test, bench and
// config file is checked here, so `npm test`, and so CI, fails on a file `npm run format` would
// change, naming it.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as prettier from 'prettier'

// Formatting ~200 files is CPU work: seconds on an idle machine, a minute on a loaded one.
t.setTimeout(300_000)

const root = fileURLToPath(new URL('..', import.meta.url))
const SKIP = new Set(['node_modules', 'dist', 'coverage', '.tap', '.git'])

/** The files Prettier formats here, relative to the root (what .prettierignore leaves). */
function files(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = dir === '.' ? entry.name : `${dir}/${entry.name}`
    if (entry.isDirectory()) return SKIP.has(entry.name) ? [] : files(rel)
    return /\.(ts|mjs|json)$/.test(entry.name) && entry.name !== 'package-lock.json' ? [rel] : []
  })
}

t.test('every file is as Prettier formats it (npm run format fixes it)', async (t) => {
  const checked = files('.')
  t.ok(checked.length > 100, `${checked.length} files checked`)
  const unformatted: string[] = []
  for (const file of checked) {
    const filepath = path.join(root, file)
    const options = await prettier.resolveConfig(filepath)
    const text = readFileSync(filepath, 'utf8')
    if (!(await prettier.check(text, { ...options, filepath }))) unformatted.push(file)
  }
  t.same(unformatted, [])
})

t.test('the check fails on a file Prettier would change', async (t) => {
  const options = await prettier.resolveConfig(path.join(root, 'src/index.ts'))
  const long = `export const x = [${'1, '.repeat(60)}1]\n`
  t.notOk(await prettier.check(long, { ...options, filepath: 'x.ts' }), 'over 100 columns')
  t.notOk(await prettier.check('export const x = "a";\n', { ...options, filepath: 'x.ts' }))
  t.ok(await prettier.check("export const x = 'a'\n", { ...options, filepath: 'x.ts' }))
})
