// Flights' hit-for-miss memory is bounded: a crawler walking a million never-stored URLs must not
// grow it without end. Beyond PASS_KEYS the key marked longest ago is forgotten (it coalesces
// again, which is only the default behaviour).
import t from 'tap'
import { Flights, PASS_KEYS, PASS_MS } from '../src/core/flights.js'
import { manualClock } from './fixtures/http.js'

t.test(
  'hit-for-miss keeps at most PASS_KEYS keys, forgetting the one marked longest ago',
  async (t) => {
    const clock = manualClock()
    const flights = new Flights(5000, clock.now)
    for (let i = 0; i < PASS_KEYS; i++) flights.unshareable(`/k${i}`)
    t.ok(flights.passes('/k0') && flights.passes(`/k${PASS_KEYS - 1}`), 'all of them kept')
    // Marking one again makes it the newest.
    flights.unshareable('/k0')
    flights.unshareable('/new')
    t.ok(flights.passes('/new'), 'the new key is kept')
    t.ok(flights.passes('/k0'), 'the one marked again is kept')
    t.notOk(flights.passes('/k1'), 'the one marked longest ago is forgotten')
    flights.shareable('/new')
    t.notOk(flights.passes('/new'), 'a shareable response ends it')
    clock.advance(PASS_MS)
    t.notOk(flights.passes('/k0'), `gone after ${PASS_MS} ms`)
  },
)
