// RedisStore on Redis Sentinel: a failover of the master under load answers every request
// with a 2xx (the store fails open, each command bounded by timeoutMs), and caching resumes
// on the new master by itself.
import t from 'tap'
import { Redis } from 'ioredis'
import { accelerate } from '../../src/index.js'
import { RedisStore, RedisStoreError } from '../../stores/redis.js'
import { startSentinel } from '../fixtures/redis-sentinel.js'
import { counted, eventually, listen, request, type Reply } from '../fixtures/http.js'

const TIMEOUT_MS = 500
const PREFIX = 'ha:'

t.test('a failover under load: every request a 2xx, then caching on the new master', async (t) => {
  const set = await startSentinel(t)
  const oldMaster = await set.masterPort()
  const store = new RedisStore({
    clientOptions: { sentinels: [set.sentinel], name: set.name },
    prefix: PREFIX,
    timeoutMs: TIMEOUT_MS,
  })
  const errors: Error[] = []
  const origin = counted((req, res) => {
    res.cacheFor = 60
    return `render ${req.url}`
  })
  const app = accelerate(origin, { store, onError: (err) => errors.push(err) })
  t.teardown(() => store.close())
  const url = await listen(t, app)

  t.match((await request(url + '/before')).headers['cache-status'], /fwd=miss; stored/)
  t.match(
    (await request(url + '/before')).headers['cache-status'],
    /; hit/,
    'a hit on the first master',
  )

  // Load: four clients in a loop over ten pages until the failover is over and caching is back.
  const replies: Reply[] = []
  const failures: Error[] = []
  let loading = true
  const client = async (n: number) => {
    for (let i = 0; loading; i++) {
      await request(`${url}/page/${(n + i) % 10}`).then(
        (reply) => replies.push(reply),
        (err: Error) => failures.push(err),
      )
    }
  }
  const load = Promise.all([0, 1, 2, 3].map(client))
  await eventually(() => replies.length >= 40, 'load running')
  const during = replies.length
  const newMaster = await set.failover()
  t.not(newMaster, oldMaster, `failed over from ${oldMaster} to ${newMaster}`)
  const onNewMaster = new Redis(newMaster, '127.0.0.1')
  t.teardown(() => onNewMaster.disconnect())
  // Caching resumed: a page first seen now is a stored miss, then a hit, and lives on the new master.
  let page = 0
  await eventually(async () => {
    const path = `/after/${page++}`
    const miss = await request(url + path)
    const hit = await request(url + path)
    return (
      /stored/.test(String(miss.headers['cache-status'])) &&
      /; hit/.test(String(hit.headers['cache-status'])) &&
      (await onNewMaster.exists(`${PREFIX}{k:${new URL(url).host}${path}}v`)) === 1
    )
  }, 'a miss stored on the new master, then a hit')
  t.pass('caching resumed on the new master')
  loading = false
  await load

  t.same(failures, [], 'every request answered')
  t.ok(
    replies.length > during,
    `${replies.length} requests under load, ${replies.length - during} of them from the failover on`,
  )
  t.same(
    replies.filter((reply) => reply.status !== 200),
    [],
    '0 non-2xx responses',
  )
  t.ok(
    replies.every((reply) => reply.text.startsWith('render /page/')),
    'each with its own page',
  )
  const unexpected = errors.filter((err) => !(err instanceof RedisStoreError && err.outage))
  t.same(
    unexpected.map((err) => err.message),
    [],
    `store errors (${errors.length}) were all outages, each bounded by timeoutMs`,
  )
})
