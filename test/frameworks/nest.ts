// NestJS, the examples themselves (examples/nest-express.ts, examples/nest-fastify.ts): each app
// on a real socket, on both of Nest's HTTP platforms. The posts route counts its own runs in the
// body ("renders"), so a hit shows the controller did not run; the apps run as programs too.
import t, { type Test } from 'tap'
import type { INestApplication } from '@nestjs/common'
import type { NestFastifyApplication } from '@nestjs/platform-fastify'
import { spawn } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Stats } from '../../src/index.js'
import * as onExpress from '../../examples/nest-express.js'
import * as onFastify from '../../examples/nest-fastify.js'
import { request } from '../fixtures/http.js'

interface Platform {
  name: string
  example: string
  /** The example's app, not listening yet, quiet (no Nest log lines in the test's output). */
  create: () => Promise<INestApplication>
  /** The accelerator's counters, as the app exposes them. */
  stats: (app: INestApplication) => Stats
  /** Whether the posts route's 404 is stored (Fastify: its route config opts every status in). */
  notFoundStored: boolean
}

const PLATFORMS: Platform[] = [
  {
    name: 'Express',
    example: 'nest-express.ts',
    create: () => onExpress.createApp({}, { logger: false }),
    stats: (app) => app.get(onExpress.Cache).middleware.stats(),
    notFoundStored: false,
  },
  {
    name: 'Fastify',
    example: 'nest-fastify.ts',
    create: () => onFastify.createApp({}, { logger: false }),
    stats: (app) =>
      (app as NestFastifyApplication).getHttpAdapter().getInstance().accelerator.stats(),
    notFoundStored: true,
  },
]

/** The app listening on a free port, closed at teardown (a test that closes it first is fine). */
async function start(t: Test, platform: Platform) {
  const app = await platform.create()
  t.teardown(() => app.close())
  await app.listen(0, '127.0.0.1')
  const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`
  return { app, url }
}

const put = (url: string, body: object) =>
  request(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
const json = (text: string) => JSON.parse(text) as Record<string, unknown>
const STORED = 'node-accelerator; fwd=miss; stored'
const HIT = /^node-accelerator; hit; ttl=\d+$/

for (const platform of PLATFORMS) {
  t.test(`${platform.name}: a miss, a hit, a 304, a purge by tag`, async (t) => {
    const { app, url } = await start(t, platform)
    const miss = await request(url + '/posts/1')
    t.equal(miss.headers['cache-status'], STORED)
    t.same(json(miss.text), { id: '1', title: 'Hello, cache', version: 1, renders: 1 })
    const hit = await request(url + '/posts/1')
    t.match(hit.headers['cache-status'], HIT)
    t.equal(hit.text, miss.text, 'the controller did not run: still its first render')
    t.equal(hit.headers['content-type'], 'application/json; charset=utf-8')

    t.ok(hit.headers.etag, 'a stored entry has an ETag')
    const notModified = await request(url + '/posts/1', {
      headers: { 'if-none-match': hit.headers.etag! },
    })
    t.equal(notModified.status, 304)
    t.equal(notModified.body.length, 0)
    t.equal(notModified.headers.etag, hit.headers.etag)

    await request(url + '/posts/2')
    const edit = await put(url + '/posts/1', { title: 'Edited' })
    t.same(json(edit.text), { purged: 1 }, "the edit purged tag post:1: post 1's one entry")
    const after = await request(url + '/posts/1')
    t.equal(after.headers['cache-status'], STORED, 'a miss again')
    t.same(json(after.text), { id: '1', title: 'Edited', version: 2, renders: 2 })
    const other = await request(url + '/posts/2')
    t.match(other.headers['cache-status'], HIT, 'post 2 was not purged')
    t.equal(json(other.text).renders, 1)
    t.match(platform.stats(app), { hits: 3, notModified: 1, errors: 0 }, 'the 304 is a hit too')
  })

  t.test(`${platform.name}: one entry per Vary variant`, async (t) => {
    const { url } = await start(t, platform)
    const greet = (language: string) =>
      request(url + '/greeting', { headers: { 'accept-language': language } })
    const fr = await greet('fr')
    const en = await greet('en')
    t.same([fr.text, en.text], ['bonjour', 'hello'])
    t.same([fr.headers['cache-status'], en.headers['cache-status']], [STORED, STORED])
    t.equal(fr.headers.vary, 'Accept-Language')
    for (const [language, text] of [
      ['fr', 'bonjour'],
      ['en', 'hello'],
    ] as const) {
      const hit = await greet(language)
      t.equal(hit.text, text, `${language}: its own variant`)
      t.match(hit.headers['cache-status'], HIT)
    }
  })

  t.test(`${platform.name}: an unknown post's 404; an edit without a title`, async (t) => {
    const { url } = await start(t, platform)
    const first = await request(url + '/posts/9')
    t.equal(first.status, 404)
    t.equal(json(first.text).message, 'No post 9: try /posts/1')
    const second = await request(url + '/posts/9')
    t.equal(second.status, 404)
    if (platform.notFoundStored) t.match(second.headers['cache-status'], HIT)
    else t.match(second.headers['cache-status'], /fwd=miss; detail=not-opted-in/)
    t.equal((await put(url + '/posts/9', {})).status, 404)
    t.same(json((await put(url + '/posts/2', {})).text), { purged: 0 }, 'post 2 was not stored')
    const post = json((await request(url + '/posts/2')).text)
    t.same([post.title, post.version], ['Tags drop what changed', 2], 'the title kept')
  })

  t.test(`${platform.name}: app.close() closes the server and the cache`, async (t) => {
    const { app, url } = await start(t, platform)
    await request(url + '/posts/1')
    await request(url + '/greeting')
    t.ok(platform.stats(app).entries! > 0)
    await app.close()
    t.equal(app.getHttpServer().listening, false)
    t.equal(platform.stats(app).entries, 0, 'the store the accelerator made is closed and emptied')
  })

  t.test(
    `${platform.name}: runs as a program (npx tsx examples/${platform.example})`,
    async (t) => {
      const file = fileURLToPath(new URL(`../../examples/${platform.example}`, import.meta.url))
      const child = spawn(process.execPath, [...process.execArgv, file], {
        env: { ...process.env, PORT: '0' },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
        child.once('exit', (code, signal) => resolve(signal ?? code)),
      )
      t.teardown(() => {
        child.kill('SIGTERM')
        return exited
      })
      let out = ''
      child.stdout.on('data', (chunk: Buffer) => (out += chunk))
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', () => {
          const found = /node-accelerator on (http:\/\/localhost:\d+)\/posts\/1/.exec(out)
          if (found) resolve(found[1]!.replace('localhost', '127.0.0.1'))
        })
        void exited.then(() => reject(new Error(`the example exited before listening: ${out}`)))
      })
      t.equal((await request(url + '/posts/1')).headers['cache-status'], STORED)
      t.match((await request(url + '/posts/1')).headers['cache-status'], HIT)
      child.kill('SIGTERM')
      // Nest's shutdown hooks close the app, then raise the signal again: the process ends by
      // it (or exits 0 where a signal-exit handler is installed, as tap's process tracking does).
      t.ok([0, 'SIGTERM'].includes((await exited)!), 'Ctrl-C ends it')
    },
  )
}
