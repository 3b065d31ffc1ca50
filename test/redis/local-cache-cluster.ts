// RedisStore's local cache on a real 3-master Redis Cluster started by the test: a stream per
// master, so a change on any master removes another process's copy; one master's stream lost, or
// a node gone from the client's pool, and no copy is served until every stream is back.
import t, { type Test } from 'tap'
import { Cluster, Redis } from 'ioredis'
import { RedisStore } from '../../stores/redis.js'
import { localCacheOf, type LocalCache } from '../../stores/local-cache.js'
import { startCluster, PATIENT_MS } from '../fixtures/redis-server.js'
import { makeEntry } from '../fixtures/store-conformance.js'
import { eventually } from '../fixtures/http.js'

let nodes!: Array<{ host: string; port: number }>
t.before(async () => {
  nodes = await startCluster(t)
})

let prefixes = 0
/** The Cluster client under each store (the test creates them). */
const clients = new WeakMap<RedisStore, Cluster>()
/** A "process": a store with a local cache on a Cluster client of its own. */
async function clusterStore(t: Test, prefix: string): Promise<RedisStore> {
  const client = new Cluster(nodes)
  const store = new RedisStore({
    client,
    prefix,
    timeoutMs: PATIENT_MS,
    lease: false,
    localCache: { maxBytes: 1 << 20 },
  })
  clients.set(store, client)
  t.teardown(async () => {
    await store.close()
    client.disconnect()
  })
  await eventually(() => local(store).live, 'a stream on every master is up')
  return store
}

function local(store: RedisStore): LocalCache {
  return localCacheOf(store)!
}

/** One key per master: the node serving each key's entry, by the cluster's slot map. */
async function keysOnEachMaster(prefix: string): Promise<Map<number, string>> {
  const admin = new Redis(nodes[0]!.port)
  try {
    const slots = (await admin.call('CLUSTER', 'SLOTS')) as Array<
      [number, number, [string, number]]
    >
    const byPort = new Map<number, string>()
    for (let i = 0; byPort.size < nodes.length; i++) {
      const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', `${prefix}{k:page${i}}v`))
      const port = slots.find(([from, to]) => slot >= from && slot <= to)![2][1]
      if (!byPort.has(port)) byPort.set(port, `page${i}`)
    }
    return byPort
  } finally {
    admin.disconnect()
  }
}

async function put(store: RedisStore, key: string, text: string): Promise<void> {
  const entry = makeEntry({ body: Buffer.from(text), tags: ['t'] })
  if (!(await store.set(key, entry, await store.checkpoint()))) throw new Error(`${key} not stored`)
}

async function held(store: RedisStore, keys: Iterable<string>): Promise<void> {
  for (const key of keys)
    await eventually(
      async () => (await store.get(key)) !== undefined && local(store).has(key),
      `${key} kept`,
    )
}

t.test('a purge in one process drops the copies of another, on every master', async (t) => {
  const prefix = `lcc${++prefixes}:`
  const keys = await keysOnEachMaster(prefix)
  t.equal(keys.size, 3, 'keys on three masters')
  const [a, b] = [await clusterStore(t, prefix), await clusterStore(t, prefix)]
  for (const key of keys.values()) await put(a, key, `v1 ${key}`)
  await held(a, keys.values())
  await held(b, keys.values())
  await a.invalidateTags(['t'])
  for (const key of keys.values()) t.equal(a.peek!(key), null, `A (the purger) dropped ${key}`)
  await local(b).sync()
  for (const key of keys.values()) {
    t.notOk(local(b).has(key), `B dropped ${key}`)
    t.equal(await b.get(key), undefined)
  }
  // An overwrite on each master, made by B: A hears each master's message.
  for (const key of keys.values()) await put(b, key, `v2 ${key}`)
  await held(a, keys.values())
  for (const key of keys.values()) await put(b, key, `v3 ${key}`)
  await local(a).sync()
  for (const key of keys.values()) {
    t.notOk(local(a).has(key), `A dropped ${key} after B's overwrite`)
    t.equal((await a.get(key))?.body.toString(), `v3 ${key}`)
  }
})

t.test('one master stream lost: every copy is dropped and bypassed until it is back', async (t) => {
  const prefix = `lcc${++prefixes}:`
  const keys = await keysOnEachMaster(prefix)
  const a = await clusterStore(t, prefix)
  for (const key of keys.values()) await put(a, key, 'v1')
  await held(a, keys.values())
  // Only the streams on one master: the data connections, and the other masters, stay up.
  const [port] = keys.keys()
  const admin = new Redis(port!)
  t.teardown(() => admin.disconnect())
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  await eventually(() => !local(a).live, 'A sees one stream lost')
  t.same(local(a).size(), { entries: 0, bytes: 0 }, 'the copies on the other masters too')
  for (const key of keys.values()) t.equal(a.peek!(key), null, `${key}: ask get`)
  let asked = 0
  for (const key of keys.values())
    await local(a).get(key, async () => {
      asked++
      return undefined
    })
  t.equal(asked, 3, 'reads go to Redis')
  await eventually(() => local(a).live, 'the stream reconnected')
  await held(a, keys.values())
})

t.test('a node gone from the client and back: copies dropped, then kept again', async (t) => {
  const prefix = `lcc${++prefixes}:`
  const keys = await keysOnEachMaster(prefix)
  const a = await clusterStore(t, prefix)
  for (const key of keys.values()) await put(a, key, 'v1')
  await held(a, keys.values())
  const removed = new Promise((resolve) => clients.get(a)!.once('-node', resolve))
  // The client's own connections to one master (normal clients; the streams are pub/sub ones):
  // ioredis drops the node from its pool ('-node') and adds it back when it next needs it.
  const [port] = keys.keys()
  const admin = new Redis(port!)
  t.teardown(() => admin.disconnect())
  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal')
  await removed
  t.same(local(a).size(), { entries: 0, bytes: 0 }, 'every copy dropped when the node went')
  await held(a, keys.values())
  t.ok(local(a).live, 'kept again once every master has its stream')
})
