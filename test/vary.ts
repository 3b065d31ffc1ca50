// Variant keys and vary records.
import t from 'tap'
import { coversVariant, variantKey, variantsTag, varyNames, varyRecord } from '../src/vary.js'

t.test('varyNames: lower-cased, deduplicated, sorted; * alone', async (t) => {
  t.same(varyNames(undefined), [])
  t.same(varyNames(''), [])
  t.same(varyNames('Accept-Encoding'), ['accept-encoding'])
  t.same(varyNames(' Accept ,accept-language,, ACCEPT '), ['accept', 'accept-language'])
  t.same(varyNames(['x-b', 'X-A']), ['x-a', 'x-b'])
  t.same(varyNames('accept, *'), ['*'])
})

t.test('variantKey: values as sent, absent distinct from empty, long values hashed', async (t) => {
  const names = ['accept-encoding', 'x-tenant']
  const a = variantKey('base', names, { 'accept-encoding': 'gzip' })
  t.equal(a, 'base\u0000vary\u0000["gzip",null]')
  t.not(variantKey('base', names, { 'accept-encoding': 'gzip', 'x-tenant': '' }), a)
  t.not(variantKey('base', names, { 'accept-encoding': 'GZIP' }), a, 'values are case-sensitive')
  const long = variantKey('base', ['cookie'], { cookie: 'c'.repeat(10_000) })
  t.ok(long.length < 100, 'a 10 KB cookie makes a short key')
  t.equal(long, variantKey('base', ['cookie'], { cookie: 'c'.repeat(10_000) }), 'and the same one each time')
  t.not(long, variantKey('base', ['cookie'], { cookie: 'c'.repeat(9_999) + 'd' }))
})

t.test('variantsTag and varyRecord', async (t) => {
  t.equal(variantsTag('k'), '\u0000variants\u0000k')
  t.match(varyRecord(['accept'], 1, 5), { status: 0, headers: {}, tags: [], storedAt: 1, staleAt: 5, expiresAt: 5, variesOn: ['accept'] })
})

t.test('coversVariant: the same names, living at least as long', async (t) => {
  const record = varyRecord(['accept', 'x-a'], 0, 1000)
  t.ok(coversVariant(record, ['accept', 'x-a'], 1000))
  t.notOk(coversVariant(record, ['accept', 'x-a'], 1001), 'a variant outliving the record')
  t.notOk(coversVariant(record, ['accept'], 10), 'other names')
  t.notOk(coversVariant(undefined, ['accept'], 10))
  t.notOk(coversVariant({ ...record, variesOn: undefined }, ['accept', 'x-a'], 10), 'a response, not a record')
})
