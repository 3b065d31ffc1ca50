// RedisStore on a real 3-master Redis Cluster started by the test: entries spread over the
// slots, no script spans two slots (Redis would answer CROSSSLOT), a tag's entries on several
// nodes are invalidated together, and the whole conformance suite holds.
import t from 'tap'
import { Cluster } from 'ioredis'
import { RedisStore } from '../../stores/redis.js'
import { makeEntry, storeConformance } from '../fixtures/store-conformance.js'
import { startCluster, PATIENT_MS } from '../fixtures/redis-server.js'

// One cluster for every subtest, started before the first one runs (subtests are still created
// synchronously at the top level).
let cluster!: Cluster
t.before(async () => {
  cluster = new Cluster(await startCluster(t))
  t.teardown(() => cluster.disconnect())
})
let run = 0

t.test('the store conformance suite, on a cluster', async (t) =>
  storeConformance(t, async () => {
    const store = new RedisStore({
      timeoutMs: PATIENT_MS,
      client: cluster,
      prefix: `conf${run++}:`,
    })
    await store.ready()
    return store
  }),
)

t.test('a tag whose entries live on every node is invalidated in one call', async (t) => {
  const store = new RedisStore({ timeoutMs: PATIENT_MS, client: cluster, prefix: 'spread:' })
  await store.ready()
  const keys = Array.from({ length: 30 }, (_, i) => `https://example.com/page/${i}`)
  const since = await store.checkpoint()
  for (const key of keys)
    t.ok(
      await store.set(
        key,
        makeEntry({ tags: ['section', `page:${key}`], body: Buffer.from(key) }),
        since,
      ),
    )
  const perNode = await Promise.all(
    cluster.nodes('master').map(async (node) => (await node.keys('spread:{k:*}v')).length),
  )
  t.equal(
    perNode.reduce((a, b) => a + b, 0),
    30,
  )
  t.ok(
    perNode.filter((count) => count > 0).length === 3,
    `entries on every master: ${perNode.join(', ')}`,
  )
  for (const key of keys)
    t.equal((await store.get(key))?.body.toString(), key, 'a hit, from whichever node holds it')
  t.equal(await store.invalidateTags(['section']), 30, 'all of them, across nodes')
  for (const key of keys) t.equal(await store.get(key), undefined)
  t.equal(await store.invalidateTags([`page:${keys[0]}`]), 0)
})

t.test('clear() scans every master', async (t) => {
  const store = new RedisStore({ timeoutMs: PATIENT_MS, client: cluster, prefix: 'wipe:' })
  await store.ready()
  for (let i = 0; i < 50; i++) await store.set(`k${i}`, makeEntry({ tags: ['t'] }), 0)
  await store.clear()
  const left = await Promise.all(cluster.nodes('master').map((node) => node.keys('wipe:{*')))
  t.same(left.flat(), [])
})

t.test(
  'sibling prefixes on a cluster: clear() of c: leaves every key of c:blog: on every master',
  async (t) => {
    const [outer, inner] = ['c:', 'c:blog:'].map(
      (prefix) => new RedisStore({ timeoutMs: PATIENT_MS, client: cluster, prefix }),
    )
    const keysOf = async (prefix: string) =>
      (await Promise.all(cluster.nodes('master').map((node) => node.keys(`${prefix}*`))))
        .flat()
        .filter((key) => !key.startsWith('c:blog:') || prefix === 'c:blog:')
        .sort()
    for (const store of [outer!, inner!]) {
      const since = await store.checkpoint()
      for (let i = 0; i < 30; i++)
        await store.set(`k${i}`, makeEntry({ tags: ['t', `k${i}`] }), since)
      await store.invalidateTags(['gone'])
    }
    const before = await keysOf('c:blog:')
    await outer!.clear()
    t.same(await keysOf('c:'), ['c:#floor', 'c:#seq'], 'c: keeps only its sequence and floor')
    t.same(await keysOf('c:blog:'), before, `c:blog: keeps its ${before.length} keys`)
    t.ok(await inner!.get('k7'), 'and its hits')
  },
)
