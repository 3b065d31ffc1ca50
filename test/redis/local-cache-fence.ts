// The fence: a purge (a tag invalidation, a delete, a clear) returns only once every other
// process with a local cache has applied it. A process whose stream is not read (a stalled
// process: its socket paused here) holds the purge until it reads again, and serves nothing old
// once the purge has returned; one that does not answer within the timeout holds it no longer.
import t, { type Test } from 'tap'
import { RedisStore } from '../../stores/redis.js'
import { startRedis, type RedisServer } from '../fixtures/redis-server.js'
import { makeEntry } from '../fixtures/store-conformance.js'
import { eventually } from '../fixtures/http.js'
import { local, localStore as localStoreOn } from '../fixtures/local-cache.js'

let server!: RedisServer
t.before(async () => {
  server = await startRedis(t)
})

let prefixes = 0
const localStore = (t: Test, prefix: string, timeoutMs?: number) =>
  localStoreOn(t, { url: server.url, prefix, ...(timeoutMs ? { timeoutMs } : {}) })

/** Stops (or resumes) reading B's stream: what a descheduled or busy process does. */
function stall(store: RedisStore, stalled: boolean): void {
  for (const connection of local(store).connections)
    if (stalled) connection.stream.pause()
    else connection.stream.resume()
}

async function setUp(t: Test, timeoutMs?: number): Promise<[RedisStore, RedisStore]> {
  const prefix = `lf${++prefixes}:`
  const a = await localStore(t, prefix, timeoutMs)
  const b = await localStore(t, prefix)
  const entry = makeEntry({ body: Buffer.from('v1'), tags: ['t'] })
  t.ok(await a.set('page', entry, await a.checkpoint()))
  await eventually(async () => (await b.get('page')) !== undefined && local(b).has('page'), 'kept')
  return [a, b]
}

const purges: Array<[string, (a: RedisStore) => Promise<unknown>]> = [
  ['an invalidation of its tag', (a) => a.invalidateTags(['t'])],
  ['a delete', (a) => a.delete('page')],
  ['a clear()', (a) => a.clear()],
]
for (const [what, purge] of purges) {
  t.test(`${what}: no other process serves the old copy once it returned`, async (t) => {
    const [a, b] = await setUp(t)
    stall(b, true)
    let returned = false
    // What B would serve at the very moment the purge returns to its caller.
    const seen = purge(a).then(() => {
      returned = true
      return b.peek!('page')
    })
    // Without the fence the purge returns while B has not read its stream; with it, A waits.
    await eventually(() => returned || local(a).fencing === 1, 'the purge returned or waits for B')
    t.notOk(returned, 'the purge waits for B, which has not read its stream')
    t.ok(local(b).has('page'), 'B still holds its copy (the message is unread)')
    stall(b, false)
    t.equal(await seen, null, 'when the purge returned, B had dropped its copy')
    t.equal(await b.get('page'), undefined)
  })
}

t.test('a process that does not answer within the timeout holds the purge no longer', async (t) => {
  const [a, b] = await setUp(t, 300)
  stall(b, true)
  t.teardown(() => stall(b, false))
  t.equal(await a.invalidateTags(['t']), 1, 'the purge returns after the timeout')
  t.equal(local(a).fencing, 0, 'and leaves no fence behind')
  // The exception the guarantee names: B, which did not answer, still holds its copy until it
  // reads its stream.
  t.ok(local(b).has('page'))
  stall(b, false)
  await local(b).sync()
  t.notOk(local(b).has('page'), 'dropped once B reads its stream')
})
