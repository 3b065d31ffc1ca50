// Variant keys and vary records.
import t from 'tap'
import { normalizeSelecting, selectedBy, variantKey, varyNames } from '../src/http/vary.js'
import { coversVariant, variantsTag, varyRecord } from '../src/core/variants.js'

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
  t.not(
    variantKey('base', names, { 'accept-encoding': 'GZIP' }, false),
    variantKey('base', names, { 'accept-encoding': 'gzip' }, false),
    'values as sent: case-sensitive',
  )
  t.not(
    variantKey('base', ['x-tenant'], { 'x-tenant': 'A' }),
    variantKey('base', ['x-tenant'], { 'x-tenant': 'a' }),
    'other headers stay case-sensitive',
  )
  t.equal(
    variantKey('base', ['x-tenant'], { 'x-tenant': ['1', '2'] }),
    variantKey('base', ['x-tenant'], { 'x-tenant': '1,2' }),
    'repeated lines are one list',
  )
  t.equal(
    variantKey('base', ['x-tenant'], { 'x-tenant': ['1', '2'] }, false),
    'base\u0000vary\u0000[["1","2"]]',
    'as sent, unnormalised',
  )
  const long = variantKey('base', ['cookie'], { cookie: 'c'.repeat(10_000) })
  t.ok(long.length < 100, 'a 10 KB cookie makes a short key')
  t.equal(
    long,
    variantKey('base', ['cookie'], { cookie: 'c'.repeat(10_000) }),
    'and the same one each time',
  )
  t.not(long, variantKey('base', ['cookie'], { cookie: 'c'.repeat(9_999) + 'd' }))
})

t.test('RFC 9111 §4.1: selecting header values normalised', async (t) => {
  const chrome = 'gzip, deflate, br, zstd'
  const curl = 'deflate, gzip, br, zstd'
  const same = (name: string, a: string, b: string, why: string) =>
    t.equal(normalizeSelecting(name, a), normalizeSelecting(name, b), why)
  const apart = (name: string, a: string, b: string, why: string) =>
    t.not(normalizeSelecting(name, a), normalizeSelecting(name, b), why)
  t.equal(normalizeSelecting('accept-encoding', chrome), 'br,deflate,gzip,zstd')
  same('accept-encoding', chrome, curl, 'Chrome, Firefox and curl --compressed share')
  same(
    'accept-encoding',
    'GZIP;q=1.0, br;q=0.5',
    'br, gzip',
    'case and q-values of accepted codings do not matter',
  )
  same('accept-encoding', 'gzip, br;q=0', 'gzip', 'q=0 is not accepted')
  same('accept-encoding', 'gzip, br; q = 0.000', 'gzip', 'q=0 with spaces and decimals')
  same('accept-encoding', 'gzip, gzip', 'gzip', 'duplicates')
  apart(
    'accept-encoding',
    'gzip',
    'gzip, br',
    'another set of codings: another variant (a br answer must not reach a gzip-only client)',
  )
  apart('accept-encoding', '', 'identity', 'empty is not identity spelled out')
  same('accept-language', 'en, de', 'de, en', 'Accept-Language: order')
  same('accept-language', 'en, de', 'eN, De', 'case')
  same('accept-language', 'en, de', ' en ,   de', 'whitespace')
  same('accept-language', 'en;q=0.5, de', 'de,en; q=0.5', 'q-values stay with their language')
  apart('accept-language', 'en;q=0.5, de', 'en, de;q=0.5', 'other q-values')
  same('foo', '1,2', ' 1, 2 ', 'other headers: whitespace around members')
  same('foo', '1,,2', '1, 2', 'empty members')
  apart('foo', '1,2', '2,1', 'other headers: order counts')
})

t.test('variantsTag and varyRecord', async (t) => {
  t.equal(variantsTag('k'), '\u0000variants\u0000k')
  t.match(varyRecord(['accept'], 1, 5), {
    status: 0,
    headers: {},
    tags: [],
    storedAt: 1,
    staleAt: 5,
    expiresAt: 5,
    variesOn: ['accept'],
  })
})

t.test('coversVariant: the same names, living at least as long', async (t) => {
  const record = varyRecord(['accept', 'x-a'], 0, 1000)
  t.ok(coversVariant(record, ['accept', 'x-a'], 1000))
  t.notOk(coversVariant(record, ['accept', 'x-a'], 1001), 'a variant outliving the record')
  t.notOk(coversVariant(record, ['accept'], 10), 'other names')
  t.notOk(coversVariant(undefined, ['accept'], 10))
  t.notOk(
    coversVariant({ ...record, variesOn: undefined }, ['accept', 'x-a'], 10),
    'a response, not a record',
  )
})

t.test(
  'selectedBy: the values of the headers Vary names, as sent; absent ones left out',
  async (t) => {
    t.equal(selectedBy(undefined, { accept: 'x' }), undefined, 'no Vary: none')
    const values = selectedBy('Accept-Language, X-Tenant, __proto__', {
      'accept-language': 'en, de',
      'x-a': ['1', '2'],
    })
    t.same(values, { 'accept-language': 'en, de' })
    t.same(selectedBy('X-A', { 'x-a': ['1', '2'] }), { 'x-a': '1, 2' }, 'repeated lines joined')
    const own = selectedBy('__proto__', JSON.parse('{"__proto__":"v"}'))!
    t.equal(Object.getPrototypeOf(own), Object.prototype, 'a header named __proto__ stays data')
    t.equal(Object.getOwnPropertyDescriptor(own, '__proto__')?.value, 'v')
  },
)
