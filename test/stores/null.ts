import t from 'tap'
import { NullStore } from '../../stores/null.js'
import { makeEntry } from '../fixtures/store-conformance.js'

t.test('stores nothing and answers as empty', async (t) => {
  const store = new NullStore()
  t.equal(await store.checkpoint(), 0)
  t.equal(await store.set('k', makeEntry({ tags: ['t'] }), await store.checkpoint()), false)
  t.equal(await store.get('k'), undefined)
  t.equal(await store.delete('k'), 0)
  t.equal(await store.invalidateTags(['t']), 0)
  t.equal(await store.invalidateTags(['t'], { soft: true }), 0)
  t.equal(await store.clear(), undefined)
  t.equal(await store.clear('k'), undefined)
  t.strictSame(store.size(), { entries: 0, bytes: 0 })
})

t.test('close is idempotent and the store still answers after it', async (t) => {
  const store = new NullStore()
  t.equal(await store.close(), undefined)
  t.equal(await store.close(), undefined)
  t.equal(await store.get('k'), undefined)
  t.equal(await store.set('k', makeEntry(), 0), false)
})
