// The coalescing bound: waiters of one generation are released with its outcome, or at the
// latest coalesceTimeoutMs after the generation started, however late they arrived.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Flight, Flights, type Outcome } from '../src/flights.js'
import { makeEntry } from './fixtures/store-conformance.js'

const outcome: Outcome = { entry: makeEntry(), key: 'k' }
// The bound's timer is unref'd (it must not keep a closing server alive); a server's sockets keep
// the process up meanwhile, as this does here.
const alive = setInterval(() => {}, 1000)
t.teardown(() => clearInterval(alive))

t.test('a waiter gets the outcome the generation settles with', async (t) => {
  const flight = new Flight(5000)
  const waiting = flight.wait()
  flight.settle(outcome)
  flight.settle(undefined) // only the first settle counts
  t.equal(await waiting, outcome)
  t.equal(await flight.wait(), outcome, 'and so does a waiter arriving after it settled')
})

t.test('waiters are released when the bound passes, counted from the generation\'s start', async (t) => {
  const flight = new Flight(300)
  await sleep(150)
  // Released before a full bound counted from the wait itself: Node fires due timers in the
  // order of their deadlines, and the flight's (start + 300 ms) is earlier than this one's
  // (at least start + 440 ms), however late either actually runs on a busy machine.
  const fullBound = new Promise<'a full bound later'>((resolve) => setTimeout(resolve, 290, 'a full bound later'))
  const first = await Promise.race([flight.wait().then((outcome) => ({ outcome })), fullBound])
  t.same(first, { outcome: undefined }, 'released without an outcome, before a full bound from the wait')
  flight.settle(outcome)
  t.equal(await flight.wait(), undefined, 'a late outcome does not change what was given')
})

t.test('a first waiter arriving after the bound is released at once', async (t) => {
  const flight = new Flight(10)
  await sleep(25)
  t.equal(await flight.wait(), undefined)
  flight.settle(outcome)
  t.equal(await flight.wait(), undefined)
})

t.test('a bound of 0 never makes anyone wait', async (t) => {
  const flights = new Flights(0)
  const { flight, land } = flights.start('k')
  t.equal(await flight.wait(), undefined)
  land()
  t.equal(flights.get('k'), undefined)
})
