// A purge in one process seals the generations in flight in every process whose RedisStore
// hears it (localCache's fences): a request that comes after the purge returned never joins a
// generation that began before it, which may have read the data the purge was for. (The soak
// found this: a hot page purged by one process, then answered by another from a render it had
// begun before the purge.) Two stores with local caches on one prefix stand for two processes.
import t, { type Test } from 'tap'
import { accelerate } from '../../src/index.js'
import { startRedis, type RedisServer } from '../fixtures/redis-server.js'
import { eventually, gate, listen, request } from '../fixtures/http.js'
import { localStore as localStoreOn } from '../fixtures/local-cache.js'

let server!: RedisServer
t.before(async () => {
  server = await startRedis(t)
})

let prefixes = 0
// No lease: the test is about this process's own coalescing, which a lease would add to.
const localStore = (t: Test, prefix: string) =>
  localStoreOn(t, { url: server.url, prefix, lease: false })

t.test('a purge in another process seals the generations in flight here', async (t) => {
  const prefix = `ls${++prefixes}:`
  const purger = accelerate(() => 'unused', { store: await localStore(t, prefix) })
  let version = 1
  let runs = 0
  const held = gate()
  const app = accelerate(
    async (_req, res) => {
      const read = version // what the render read, when it began
      if (++runs === 1) await held.promise
      res.cacheFor = 60
      res.tags = ['page']
      res.end(`v${read}`)
    },
    { store: await localStore(t, prefix) },
  )
  t.teardown(() => app.close())
  const url = await listen(t, app)
  const first = request(url + '/page')
  await eventually(() => runs === 1, 'the first render began, and waits')
  version = 2
  t.equal(await purger.invalidateTags(['page']), 0, 'nothing stored yet')
  const second = request(url + '/page')
  // Old code: the second request joined the first render (coalesced); now it renders anew.
  await eventually(() => runs === 2 || app.stats().coalesced === 1, 'the second request is in')
  held.open()
  t.equal((await second).text, 'v2', 'the request after the purge got what the purge was for')
  t.equal((await first).text, 'v1', 'the request from before the purge got the render it began')
  t.equal(app.stats().coalesced, 0)
  t.equal(runs, 2)
  // The stored page is the second render's: the first began before the purge and is refused.
  t.equal((await request(url + '/page')).text, 'v2')
})

t.test('a closed accelerator no longer listens to the store', async (t) => {
  const prefix = `ls${++prefixes}:`
  const store = await localStore(t, prefix)
  const purger = await localStore(t, prefix)
  let sealed = 0
  const unwatch = store.onInvalidation!(() => sealed++)
  const app = accelerate(() => 'x', { store })
  await purger.invalidateTags(['any'])
  t.equal(sealed, 1, 'told of the purge before it returned')
  await app.close()
  unwatch()
  await purger.invalidateTags(['any'])
  t.equal(sealed, 1, 'a removed listener is not told')
})
