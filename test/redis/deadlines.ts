// The hit path's deadlines: every GET in flight shares one timer (ioredis's commandTimeout arms one
// per command), and each is still rejected once past its own deadline, as ioredis would.
import t from 'tap'
import { Command } from 'ioredis'
import { RedisStore } from '../../stores/redis.js'
import { Deadlines } from '../../stores/redis-connection.js'
import { makeEntry } from '../fixtures/store-conformance.js'
import { startRedis } from '../fixtures/redis-server.js'

/** Timers keeping the process alive now. */
const timers = () => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length

/** What a command came to: its reply, or its error's message. */
const outcome = (command: Command) =>
  command.promise.then(
    (reply: unknown) => ({ reply }),
    (err: Error) => ({ error: err.message }),
  )

t.test('50 hits in flight arm no timer each, and are all answered', async (t) => {
  const server = await startRedis(t)
  const store = new RedisStore({ url: server.url, timeoutMs: 60_000 })
  t.teardown(() => store.close())
  await store.ready()
  const entry = makeEntry({ body: Buffer.from('hello') })
  t.ok(await store.set('k', entry, await store.checkpoint()))
  const before = timers()
  const gets = Array.from({ length: 50 }, () => store.get('k'))
  t.ok(
    timers() - before <= 1,
    `at most one timer for 50 GETs in flight (${timers() - before} more)`,
  )
  const got = await Promise.all(gets)
  t.same(
    got.map((hit) => hit?.body.toString()),
    Array(50).fill('hello'),
    'every GET is a hit',
  )
})

t.test('each command is rejected once past its own deadline, not before, not after', async (t) => {
  let now = 0
  const deadlines = new Deadlines(() => now)
  t.teardown(() => deadlines.clear())
  const [answered, first, second] = [
    new Command('get', ['a']),
    new Command('get', ['b']),
    new Command('get', ['c']),
  ]
  deadlines.add(answered, 5)
  deadlines.add(first, 5)
  answered.resolve(Buffer.from('ok'))
  now = 3
  deadlines.add(second, 5)
  // The timer (set for the oldest deadline, 5) finds `first` due at 5 and `second` due at 8.
  now = 5
  t.same(await outcome(first), { error: 'Command timed out' }, 'the first, at its deadline')
  t.equal(second.isSettled, false, 'the second is not due yet')
  now = 8
  t.same(
    await outcome(second),
    { error: 'Command timed out' },
    'the second, at its own deadline (the timer was set again)',
  )
  t.same(
    await outcome(answered),
    { reply: Buffer.from('ok') },
    'an answered command keeps its reply',
  )
})

t.test('a long queue of answered commands is dropped, the unanswered ones kept', async (t) => {
  let now = 0
  const deadlines = new Deadlines(() => now)
  t.teardown(() => deadlines.clear())
  const commands = Array.from({ length: 1100 }, (_, i) => new Command('get', [`k${i}`]))
  for (const command of commands) deadlines.add(command, 5)
  for (const command of commands.slice(0, 1050)) command.resolve(null)
  // Walks past the 1,050 answered ones and compacts the queue.
  const last = new Command('get', ['last'])
  deadlines.add(last, 5)
  now = 10
  const unanswered = await Promise.all([...commands.slice(1050), last].map(outcome))
  t.equal(unanswered.length, 51)
  t.ok(
    unanswered.every((result) => 'error' in result && result.error === 'Command timed out'),
    'every unanswered command timed out',
  )
  t.same(await outcome(commands[0]!), { reply: null }, 'answered ones keep their replies')
})

t.test(
  'clear() forgets every command: a timer set afterwards rejects only what came after',
  async (t) => {
    let now = 0
    const deadlines = new Deadlines(() => now)
    t.teardown(() => deadlines.clear())
    const cleared = new Command('get', ['before'])
    deadlines.add(cleared, 5)
    deadlines.clear()
    const after = new Command('get', ['after'])
    deadlines.add(after, 5)
    now = 10
    t.same(await outcome(after), { error: 'Command timed out' })
    t.equal(cleared.isSettled, false, 'the command cleared is left to its connection')
    cleared.resolve(null)
    t.same(await outcome(cleared), { reply: null })
  },
)
