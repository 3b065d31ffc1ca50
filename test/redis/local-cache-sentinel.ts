// RedisStore's local cache on Redis Sentinel: after a failover, the stream follows the store to
// the new master, and a change made there removes another process's copy again.
import t from 'tap'
import { RedisStore } from '../../stores/redis.js'
import { localCacheOf } from '../../stores/local-cache.js'
import { startSentinel } from '../fixtures/redis-sentinel.js'
import { makeEntry } from '../fixtures/store-conformance.js'
import { eventually } from '../fixtures/http.js'

t.test('a failover: copies dropped, then kept and invalidated on the new master', async (t) => {
  const set = await startSentinel(t)
  const store = () => {
    const store = new RedisStore({
      clientOptions: { sentinels: [set.sentinel], name: set.name },
      prefix: 'lcs:',
      timeoutMs: 2000,
      localCache: { maxBytes: 1 << 20 },
    })
    t.teardown(() => store.close())
    return store
  }
  const [a, b] = [store(), store()]
  const local = localCacheOf(a)!
  // Either store may be between masters: a failed command is tried again.
  const put = (text: string) =>
    b
      .checkpoint()
      .then((since) => b.set('page', makeEntry({ body: Buffer.from(text) }), since))
      .catch(() => false)
  const read = async () => (await a.get('page').catch(() => undefined))?.body.toString()
  const kept = (text: string) =>
    eventually(async () => (await read()) === text && local.has('page'), `A keeps ${text}`)
  await eventually(() => local.live && localCacheOf(b)!.live, 'both streams up')
  await eventually(() => put('v1'), 'v1 stored')
  await kept('v1')
  const oldMaster = await set.masterPort()
  const newMaster = await set.failover()
  t.not(newMaster, oldMaster)
  // Sentinel kills the clients of the demoted master: A's stream is lost, its copy with it.
  await eventually(() => !local.has('page'), 'the copy from the old master dropped')
  await eventually(() => put('v2'), 'v2 stored on the new master')
  await kept('v2')
  t.equal(local.live, true)
  await eventually(() => put('v3'), 'v3 stored')
  await local.sync()
  t.notOk(local.has('page'), 'a change on the new master removed the copy')
  t.equal(await read(), 'v3')
})
