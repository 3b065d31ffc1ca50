// Issue 22, the library's keys: what an anonymous attacker's request is stored under, and what a
// victim asking for another URL gets. Attackers send their bytes on a raw socket; victims are
// ordinary clients.
// - item 3: an absolute-form target is keyed as sent (`GET http://host/files/../profile` is not
//   `/profile`, which a router sees as `/files/*`);
// - item 4: middleware under a mount path keys the whole URL (`req.originalUrl`);
// - item 8: a default port is dropped only for its own scheme (`:443` over plain HTTP, `:80` over
//   TLS are other origins, which the application may render differently).
import t, { type Test } from 'tap'
import express from 'express'
import https from 'node:https'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { accelerate, MemoryStore, type Handler } from '../../src/index.js'
import { listen, request } from '../fixtures/http.js'
import { rawRequest } from '../fixtures/hostile-http.js'

const HIT = /^node-accelerator; hit; ttl=/

t.test(
  'item 3: GET http://host/files/../profile is stored under its own key, not /profile',
  async (t) => {
    const app = express()
    // Express routes the raw req.url: the absolute-form target above reaches the file listing.
    app.get(/^\/files\//, (_req, res) => {
      res.set('cache-control', 'public, max-age=60')
      res.send('file listing: secret.txt, passwords.txt')
    })
    app.get('/profile', (_req, res) => {
      res.set('cache-control', 'public, max-age=60')
      res.send('your profile')
    })
    const url = await listen(t, accelerate(app))
    const host = new URL(url).host
    const attack = await rawRequest(url, { target: `http://${host}/files/../profile` })
    t.equal(attack.text, 'file listing: secret.txt, passwords.txt', 'the router took it for a file')
    t.match(attack.headers['cache-status'], /stored/)
    const victim = await request(url + '/profile')
    t.equal(victim.text, 'your profile', 'the victim gets the profile, not the listing')
    for (const target of [
      `http://${host}/files/%2e%2e/profile`,
      `http://${host}/files/./../profile`,
      `http://${host.toUpperCase()}/files/../profile`,
    ]) {
      await rawRequest(url, { target })
      t.equal((await request(url + '/profile')).text, 'your profile', target)
    }
    t.match(
      (await rawRequest(url, { target: `http://${host}/files/../profile` })).headers[
        'cache-status'
      ],
      HIT,
      'its own key: a hit for the same bytes',
    )
  },
)

t.test(
  'item 3: an absolute-form target naming :443 or https:// over plain HTTP poisons nothing',
  async (t) => {
    const app = accelerate((req, res) => {
      res.cacheFor = 60
      return `rendered for ${req.headers.host} ${req.url}`
    })
    const url = await listen(t, app)
    await rawRequest(url, { target: 'http://example.com:443/p', host: 'example.com:443' })
    await rawRequest(url, { target: 'https://example.com/p', host: 'example.com' })
    const victim = await rawRequest(url, { target: '/p', host: 'example.com' })
    t.equal(victim.text, 'rendered for example.com /p')
    t.match(victim.headers['cache-status'], /fwd=miss; stored/, 'nobody filled its entry')
  },
)

t.test(
  'item 4: a Router mounted at /admin behind an auth check keys /admin/report, not /report',
  async (t) => {
    let renders = 0
    const acc = accelerate(() => undefined)
    /** A router with the cache in front of a public `/report` page saying `text`. */
    const reportRouter = (text: string) => {
      const router = express.Router()
      router.use(acc.middleware)
      router.get('/report', (_req, res) => {
        renders++
        res.set('cache-control', 'public, max-age=60')
        res.send(text)
      })
      return router
    }
    const admin = reportRouter('admin report: salaries')
    const site = reportRouter('public report')
    const app = express()
    app.use('/admin', (req, res, next) =>
      req.headers.authorization === 'Bearer admin' ? next() : void res.status(401).send('log in'),
    )
    app.use('/admin', admin)
    app.use(site)
    const url = await listen(t, app)

    const asAdmin = await request(url + '/admin/report', {
      headers: { authorization: 'Bearer admin' },
    })
    t.equal(asAdmin.text, 'admin report: salaries')
    t.match(asAdmin.headers['cache-status'], /stored/, 'stored (public, max-age)')
    const anonymous = await request(url + '/report')
    t.equal(anonymous.text, 'public report', 'an anonymous client gets the public page')
    t.equal(
      (await request(url + '/admin/report')).status,
      401,
      'and the admin page still asks for credentials',
    )
    t.match(
      (await request(url + '/admin/report', { headers: { authorization: 'Bearer admin' } }))
        .headers['cache-status'],
      HIT,
    )
    t.equal(renders, 2)
    t.equal(await acc.invalidate('/admin/report'), 1, 'invalidate() names it by its whole URL')
    t.equal(await acc.invalidate('/report'), 1)
  },
)

t.test(
  'item 4: under a mount path, an unsafe method drops its whole URL, not the mount-relative one',
  async (t) => {
    let version = 1
    const acc = accelerate(() => undefined, { sharedCache: true })
    const api = express.Router()
    api.use(acc.middleware)
    api.get('/item', (_req, res) => {
      res.set('cache-control', 'max-age=60')
      res.send(`api item v${version}`)
    })
    api.post('/item', (_req, res) => {
      version++
      res.send('saved')
    })
    const app = express()
    app.use('/api', api)
    app.use(acc.middleware)
    app.get('/item', (_req, res) => {
      res.set('cache-control', 'max-age=60')
      res.send('public item')
    })
    const url = await listen(t, app)
    t.equal((await request(url + '/api/item')).text, 'api item v1')
    t.equal((await request(url + '/item')).text, 'public item', 'its own entry')
    t.match((await request(url + '/api/item')).headers['cache-status'], HIT)
    await request(url + '/api/item', { method: 'POST' })
    t.equal((await request(url + '/api/item')).text, 'api item v2', 'the POST dropped /api/item')
    t.match((await request(url + '/item')).headers['cache-status'], HIT, 'and left /item alone')
  },
)

/** A self-signed certificate for 127.0.0.1, made by openssl for this test. */
function certificate(t: Test): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'acc-keys-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-days',
      '1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  )
  return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }
}

const hostPage: Handler = (req, res) => {
  res.cacheFor = 60
  return `canonical: //${req.headers.host}/`
}

t.test("item 8: over plain HTTP, Host example.com:443 is not example.com's entry", async (t) => {
  const url = await listen(t, accelerate(hostPage))
  const attack = await rawRequest(url, { target: '/p', host: 'example.com:443' })
  t.equal(attack.text, 'canonical: //example.com:443/')
  const victim = await rawRequest(url, { target: '/p', host: 'example.com' })
  t.equal(victim.text, 'canonical: //example.com/', 'the victim gets its own page')
  t.match(
    (await rawRequest(url, { target: '/p', host: 'Example.com:80' })).headers['cache-status'],
    HIT,
    ":80 is http's own port: shared",
  )
})

t.test("item 8: over TLS, :443 shares example.com's entry and :80 does not", async (t) => {
  const store = new MemoryStore()
  t.teardown(() => store.close())
  const server = https.createServer(certificate(t), accelerate(hostPage, { store }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const port = (server.address() as AddressInfo).port
  const get = (host: string) =>
    new Promise<{ text: string; status?: string }>((resolve, reject) => {
      https
        .get(
          {
            host: '127.0.0.1',
            port,
            path: '/p',
            headers: { host },
            rejectUnauthorized: false,
            agent: false,
          },
          (res) => {
            let text = ''
            res.setEncoding('latin1')
            res.on('data', (chunk: string) => (text += chunk))
            res.on('end', () =>
              resolve({ text, status: res.headers['cache-status'] as string | undefined }),
            )
          },
        )
        .on('error', reject)
    })
  t.equal((await get('example.com:80')).text, 'canonical: //example.com:80/')
  const victim = await get('example.com')
  t.equal(victim.text, 'canonical: //example.com/', 'not the :80 page')
  const tlsPort = await get('example.com:443')
  t.equal(tlsPort.text, 'canonical: //example.com/', ":443 is https's own port: shared")
  t.match(tlsPort.status, HIT)
})
