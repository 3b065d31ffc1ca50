import t from 'tap'
import type { CacheEntry } from '../../src/store.js'
import {
  ENTRY_OVERHEAD,
  HEADER_OVERHEAD,
  STRING_OVERHEAD,
  TAG_OVERHEAD,
  MemoryStore,
  entryBytes,
  stringBytes,
} from '../../stores/memory.js'
import { makeEntry, storeConformance } from '../fixtures/store-conformance.js'
import { heapUsed } from '../fixtures/hostile-http.js'

t.test('conformance', async (t) => storeConformance(t, () => new MemoryStore()))

// An entry on an injected clock: `at` is "now", it goes stale at +100 and expires at +1000.
const clocked = (at: number, fields: Partial<CacheEntry> = {}): CacheEntry =>
  makeEntry({ storedAt: at, staleAt: at + 100, expiresAt: at + 1000, ...fields })

// Same-size entries (keys of equal length, same body), so budgets can be counted in entries.
const unit = (fields: Partial<CacheEntry> = {}): CacheEntry =>
  makeEntry({ body: Buffer.alloc(100), headers: { etag: '"1"' }, ...fields })
const UNIT = entryBytes('k0', unit())
/** What a tag adds to an entry's count. */
const tagBytes = (tag: string) => TAG_OVERHEAD + stringBytes(tag)

const held = async (store: MemoryStore, keys: string[]): Promise<string[]> => {
  const found: string[] = []
  for (const key of keys) if ((await store.get(key)) !== undefined) found.push(key)
  return found
}

t.test('options are validated with a TypeError naming the option and the value', async (t) => {
  const cases: [unknown, string][] = [
    [5, 'expected options to be an object, got 5'],
    [null, 'expected options to be an object, got null'],
    [[], 'expected options to be an object, got []'],
    [{ maxBytes: -1 }, 'expected options.maxBytes to be a positive integer, got -1'],
    [{ maxBytes: 0 }, 'expected options.maxBytes to be a positive integer, got 0'],
    [{ maxBytes: 1.5 }, 'expected options.maxBytes to be a positive integer, got 1.5'],
    [{ maxBytes: NaN }, 'expected options.maxBytes to be a positive integer, got NaN'],
    [{ maxBytes: Infinity }, 'expected options.maxBytes to be a positive integer, got Infinity'],
    [{ maxBytes: '10' }, "expected options.maxBytes to be a positive integer, got '10'"],
    [{ maxEntries: 0 }, 'expected options.maxEntries to be a positive integer, got 0'],
    [{ maxEntries: null }, 'expected options.maxEntries to be a positive integer, got null'],
    [{ now: 'soon' }, "expected options.now to be a function, got 'soon'"],
    [{ max_bytes: 1024 }, 'unknown option "max_bytes" for MemoryStore: did you mean maxBytes?'],
    [
      { maxSize: 1024 },
      'unknown option "maxSize" for MemoryStore: the options are maxBytes, maxEntries, now',
    ],
  ]
  for (const [options, message] of cases) {
    t.throws(() => new MemoryStore(options as never), { name: 'TypeError', message }, message)
    t.throws(() => new MemoryStore(options as never), TypeError)
  }
  for (const options of [
    undefined,
    {},
    { maxBytes: undefined, maxEntries: undefined, now: undefined },
  ]) {
    t.doesNotThrow(() => new MemoryStore(options), 'defaults apply')
  }
})

t.test('entryBytes counts overhead, key, body, header names and values, and tags', async (t) => {
  const entry = makeEntry({
    body: Buffer.alloc(10),
    headers: { etag: '"x"', 'x-a': ['ab', 'c'] },
    tags: ['t1', 'tag2'],
  })
  t.same([ENTRY_OVERHEAD, STRING_OVERHEAD, HEADER_OVERHEAD, TAG_OVERHEAD], [800, 16, 40, 96])
  const s = (n: number) => STRING_OVERHEAD + n
  t.equal(
    entryBytes('key', entry),
    800 +
      s(3) +
      10 +
      (40 + s(4) + s(3)) +
      (40 + s(3) + 8 + s(2) + 8 + s(1)) +
      (96 + s(2)) +
      (96 + s(4)),
  )
  t.equal(stringBytes('abc'), 16 + 3, 'latin1: a byte a character')
  t.equal(stringBytes('é\u00ff'), 16 + 2)
  t.equal(stringBytes('a\u0100'), 16 + 4, 'beyond latin1: two bytes a character')
  t.equal(
    entryBytes(
      'k',
      makeEntry({ variesOn: ['accept', 'cookie'], headers: {}, body: Buffer.alloc(0) }),
    ),
    800 + s(1) + (8 + s(6)) + (8 + s(6)),
  )
  const store = new MemoryStore()
  await store.set('key', entry, 0)
  t.strictSame(store.size(), { entries: 1, bytes: entryBytes('key', entry) })
})

t.test('the byte budget holds, evicting least recently used entries', async (t) => {
  const size = UNIT + tagBytes('all') + tagBytes('k1')
  const store = new MemoryStore({ maxBytes: 3 * size })
  for (const key of ['k1', 'k2', 'k3'])
    t.equal(await store.set(key, unit({ tags: ['all', key] }), 0), true)
  t.strictSame(store.size(), { entries: 3, bytes: 3 * size })
  await store.get('k1')
  t.equal(await store.set('k4', unit({ tags: ['all', 'k4'] }), 0), true)
  t.strictSame(await held(store, ['k1', 'k2', 'k3', 'k4']), ['k1', 'k3', 'k4'])
  t.strictSame(store.size(), { entries: 3, bytes: 3 * size })
  t.equal(await store.invalidateTags(['k2']), 0, 'the evicted key left its own tag')
  t.equal(await store.invalidateTags(['all']), 3, 'and the shared one')
  t.strictSame(store.size(), { entries: 0, bytes: 0 })
})

// This is the test that fails if mnemonist's internals (`K`, `tail`) change: it checks exactly
// which keys byte eviction takes, after promotions and a delete (which leaves a pointer hole).
t.test('byte eviction takes exactly the least recently used keys', async (t) => {
  const store = new MemoryStore({ maxBytes: 4 * UNIT })
  for (const key of ['k1', 'k2', 'k3', 'k4']) await store.set(key, unit(), 0)
  await store.delete('k2')
  await store.set('k5', unit(), 1) // reuses k2's pointer slot
  await store.get('k1') // least to most recent: k3, k4, k5, k1
  const double = unit({ body: Buffer.alloc(100 + UNIT) })
  t.equal(entryBytes('k6', double), 2 * UNIT)
  t.equal(await store.set('k6', double, 1), true)
  t.strictSame(store.size(), { entries: 3, bytes: 4 * UNIT })
  t.strictSame(await held(store, ['k3', 'k4']), [], 'k3 and k4 evicted')
  await store.get('k1') // least to most recent: k5, k6, k1
  t.equal(await store.set('k7', double, 1), true)
  t.strictSame(await held(store, ['k1', 'k5', 'k6', 'k7']), ['k1', 'k7'], 'k5, then k6 evicted')
})

t.test('an entry larger than maxBytes is declined and supersedes the old one', async (t) => {
  const store = new MemoryStore({ maxBytes: 3 * UNIT })
  await store.set('k0', unit({ tags: ['t'] }), 0)
  await store.set('k1', unit(), 0)
  t.equal(await store.set('k0', unit({ body: Buffer.alloc(3 * UNIT) }), 0), false)
  t.equal(await store.get('k0'), undefined, 'the old entry at the key is gone')
  t.ok(await store.get('k1'), 'nothing else was evicted')
  t.strictSame(store.size(), { entries: 1, bytes: UNIT })
  t.equal(await store.invalidateTags(['t']), 0)
  const exact = unit({ body: Buffer.alloc(100 + 2 * UNIT) })
  t.equal(await store.set('k2', exact, 0), true, 'an entry of exactly maxBytes fits')
  t.strictSame(store.size(), { entries: 1, bytes: 3 * UNIT })
})

t.test('maxEntries evicts the least recently used and keeps bytes and tags exact', async (t) => {
  const store = new MemoryStore({ maxEntries: 3 })
  for (const key of ['k1', 'k2', 'k3']) await store.set(key, unit({ tags: ['all', key] }), 0)
  await store.get('k1')
  t.equal(await store.set('k4', unit({ tags: ['all', 'k4'] }), 0), true)
  t.strictSame(store.size(), {
    entries: 3,
    bytes: 3 * UNIT + 3 * (tagBytes('all') + tagBytes('k1')),
  })
  t.strictSame(await held(store, ['k1', 'k2', 'k3', 'k4']), ['k1', 'k3', 'k4'])
  t.equal(await store.invalidateTags(['k2']), 0, 'the evicted key left its own tag')
  t.equal(await store.invalidateTags(['all']), 3, 'and the shared one')
  t.strictSame(store.size(), { entries: 0, bytes: 0 })
})

t.test('get resolves the stored object and promotes it', async (t) => {
  const store = new MemoryStore({ maxEntries: 2 })
  const entry = unit()
  await store.set('k1', entry, 0)
  await store.set('k2', unit(), 0)
  t.equal(await store.get('k1'), entry, 'the same object, no copy')
  t.equal(await store.get('k1'), entry)
  await store.set('k3', unit(), 0)
  t.strictSame(await held(store, ['k1', 'k2', 'k3']), ['k1', 'k3'])
})

t.test('a body that is a view into a larger buffer is copied into its own memory', async (t) => {
  const store = new MemoryStore()
  const pooled = makeEntry({ body: Buffer.from('pooled') })
  t.ok(pooled.body.buffer.byteLength > pooled.body.byteLength, 'precondition: a pool view')
  await store.set('k', pooled, 0)
  const got = await store.get('k')
  t.equal(got?.body.toString(), 'pooled')
  t.equal(got?.body.buffer.byteLength, 6)
  t.not(got, pooled)
  t.equal(pooled.body.toString(), 'pooled', "the caller's entry is untouched")
})

t.test('expiry on the injected clock, without timers', async (t) => {
  let now = 1000
  const store = new MemoryStore({ now: () => now })
  t.equal(await store.set('k', clocked(now, { tags: ['t'] }), 0), true)
  t.equal(
    await store.set('gone', clocked(now, { expiresAt: now }), 0),
    false,
    'expiresAt === now is expired',
  )
  now = 1999
  t.ok(await store.get('k'), 'held until expiresAt')
  now = 2000
  t.strictSame(
    store.size(),
    { entries: 1, bytes: entryBytes('k', clocked(0, { tags: ['t'] })) },
    'size counts what is held',
  )
  t.equal(await store.get('k'), undefined, 'gone at expiresAt')
  t.strictSame(store.size(), { entries: 0, bytes: 0 }, 'and removed by the get')
  t.equal(await store.invalidateTags(['t']), 0, 'and out of the tag index')
})

t.test('expired entries are removed but not counted by invalidateTags and delete', async (t) => {
  let now = 1000
  const store = new MemoryStore({ now: () => now })
  await store.set('short', clocked(now, { tags: ['t'] }), 0)
  await store.set('long', clocked(now, { tags: ['t'], expiresAt: 5000 }), 0)
  await store.set('short2', clocked(now, { tags: ['u'] }), 0)
  await store.set('long2', clocked(now, { tags: ['u'], expiresAt: 5000 }), 0)
  await store.set('short3', clocked(now), 0)
  await store.set('short4', clocked(now), 0)
  now = 3000
  t.equal(await store.invalidateTags(['t']), 1)
  t.equal(await store.invalidateTags(['u'], { soft: true }), 1)
  t.equal(await store.delete('short3'), 0)
  t.strictSame(store.size().entries, 2, 'all expired ones but short4 went; long2 stays')
  await store.clear('short')
  t.strictSame(store.size(), {
    entries: 1,
    bytes: entryBytes('long2', clocked(0, { tags: ['u'] })),
  })
})

t.test('soft invalidation sets staleAt to min(staleAt, now) without promoting', async (t) => {
  let now = 1000
  const store = new MemoryStore({ now: () => now, maxEntries: 4 })
  await store.set('lru', clocked(now, { tags: ['t'] }), 0)
  await store.set('fresh', clocked(now, { tags: ['t'] }), 0) // staleAt 1100
  await store.set('stale', clocked(now, { tags: ['t'], staleAt: 1050 }), 0)
  await store.set('other', clocked(now), 0)
  const bytes = store.size().bytes
  now = 1080
  t.equal(await store.invalidateTags(['t'], { soft: true }), 3)
  t.equal(store.size().bytes, bytes, 'bytes unchanged')
  await store.set('new', clocked(now), 0)
  t.equal(
    await store.get('lru'),
    undefined,
    'the LRU entry was not promoted by the soft invalidation',
  )
  t.equal((await store.get('fresh'))?.staleAt, 1080)
  t.equal((await store.get('stale'))?.staleAt, 1050, 'an earlier staleAt is kept')
  t.equal((await store.get('other'))?.staleAt, 1100, 'untagged entries untouched')
})

t.test('seq and floor: exact values and both sides of each invalidation', async (t) => {
  const store = new MemoryStore()
  t.equal(await store.checkpoint(), 0)
  await store.invalidateTags(['t'])
  t.equal(await store.checkpoint(), 1)
  t.equal(
    await store.set('a', unit({ tags: ['t'] }), 0),
    false,
    'checkpoint 0 predates the invalidation at 1',
  )
  t.equal(await store.set('a', unit({ tags: ['t'] }), 1), true, 'checkpoint 1 follows it')
  await store.delete('k')
  t.equal(await store.checkpoint(), 2)
  t.equal(await store.set('k', unit(), 1), false)
  t.equal(await store.set('k', unit(), 2), true)
  t.equal(await store.set('other', unit(), 1), true, 'delete is per key')
  await store.clear('prefix:')
  t.equal(await store.checkpoint(), 3)
  t.equal(
    await store.set('unrelated', unit(), 2),
    false,
    'clear(prefix) refuses every key in flight',
  )
  t.equal(await store.set('unrelated', unit(), 3), true)
  t.equal(await store.set('k', unit({ body: Buffer.alloc(1) }), 2), false, 'a refused set...')
  t.equal((await store.get('k'))?.body.byteLength, 100, '...leaves the newer entry in place')
  t.equal(await store.set('k', unit(), NaN), false, 'a NaN checkpoint is refused')
})

t.test('keys and tags are recorded apart', async (t) => {
  const store = new MemoryStore()
  await store.delete('x')
  t.equal(
    await store.set('y', unit({ tags: ['x'] }), 0),
    true,
    'deleting key x does not block tag x',
  )
  await store.invalidateTags(['z'])
  t.equal(await store.set('z', unit(), 0), true, 'invalidating tag z does not block key z')
})

t.test('an entry listing a tag twice is indexed and unindexed cleanly', async (t) => {
  const store = new MemoryStore()
  await store.set('k', unit({ tags: ['d', 'd'] }), 0)
  await store.set('k2', unit({ tags: ['d', 'd'] }), 0)
  t.equal(await store.delete('k'), 1)
  t.equal(await store.invalidateTags(['d']), 1)
  t.strictSame(store.size(), { entries: 0, bytes: 0 })
})

t.test('the tag index lets go of a tag with its last entry', async (t) => {
  // Two entries per tag, both deleted: the tag's set empties and must leave the index. Left
  // behind, 40,000 such tags would hold about 8 MB of empty sets and tag strings.
  const store = new MemoryStore()
  let stored = 0
  const round = async (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const since = await store.checkpoint()
      if (await store.set(`a${i}`, unit({ tags: [`shared-by-two:${i}`] }), since)) stored++
      if (await store.set(`b${i}`, unit({ tags: [`shared-by-two:${i}`] }), since)) stored++
      await store.delete(`a${i}`)
      await store.delete(`b${i}`)
    }
  }
  await round(0, 10_000) // warm: compiled code, and the key records' pruning in its steady state
  const before = heapUsed()
  await round(10_000, 50_000)
  t.equal(stored, 100_000, 'every entry was stored (and so indexed)')
  const grown = heapUsed() - before
  t.ok(
    grown < 3 * 1024 * 1024,
    `heap grew by ${(grown / 1024 / 1024).toFixed(1)} MiB over 40,000 emptied tags`,
  )
  await store.set('c', unit({ tags: ['shared-by-two:5'] }), await store.checkpoint())
  t.equal(await store.invalidateTags(['shared-by-two:5']), 1, 'a tag used again is indexed anew')
})

t.test('recorded invalidations are pruned into the floor', async (t) => {
  for (const [what, invalidate] of [
    ['keys', (s: MemoryStore, i: number) => s.delete(`k${i}`)],
    ['tags', (s: MemoryStore, i: number) => s.invalidateTags([`k${i}`])],
  ] as const) {
    const store = new MemoryStore()
    const entry = (i: number) => unit(what === 'tags' ? { tags: [`k${i}`] } : {})
    for (let i = 1; i <= 10_000; i++) await invalidate(store, i)
    t.equal(await store.set('fresh', unit(), 0), true, `${what}: no floor at 10000 records`)
    t.equal(await store.set('k1', entry(1), 0), false, `${what}: k1 still recorded`)
    await invalidate(store, 10_001) // 10001 records: the oldest 5000 (seq 1..5000) go
    t.equal(await store.checkpoint(), 10_001)
    t.equal(await store.set('fresh', unit(), 4999), false, `${what}: floor is 5000`)
    t.equal(
      await store.set('fresh', unit(), 5000),
      true,
      `${what}: a checkpoint at the floor passes`,
    )
    t.equal(
      await store.set('k5001', entry(5001), 5000),
      false,
      `${what}: a kept record still refuses`,
    )
    t.equal(await store.set('k5001', entry(5001), 5001), true)
  }
})

t.test('close empties the store, declines later sets, and is idempotent', async (t) => {
  const store = new MemoryStore()
  await store.set('k', unit({ tags: ['t'] }), 0)
  await store.close()
  t.strictSame(store.size(), { entries: 0, bytes: 0 })
  t.equal(await store.get('k'), undefined)
  t.equal(await store.set('k', unit(), await store.checkpoint()), false)
  t.equal(await store.invalidateTags(['t']), 0)
  t.equal(await store.delete('k'), 0)
  await store.close()
  t.strictSame(store.size(), { entries: 0, bytes: 0 })
})

// Issue 22, item 5: maxBytes bounds the heap. Each flood stores three budgets' worth of entries
// of one hostile shape in a 4 MiB store; the heap the store holds once it is full must stay
// within HEAP_FACTOR × maxBytes (docs/stores.md states it), and the store's own count within
// maxBytes. Before, tags counted their length only (2,400 Surrogate-Keys cost 8 times what they
// counted), as did headers and keys, and an entry's objects a flat 256 bytes.
const FLOOD_BUDGET = 4 * 1024 * 1024
const HEAP_FACTOR = 1.5

let serial = 0
/** An entry as the accelerator stores one: fresh strings for its headers, a small body. */
function pageEntry(fields: Partial<CacheEntry> = {}): CacheEntry {
  const at = Date.now() + serial++
  const body = Buffer.from(`page ${serial}`)
  const headers = {
    etag: `"${serial.toString(36)}-x"`,
    date: new Date(at).toUTCString(),
    'content-length': String(body.length),
    'content-type': `text/html; v=${serial % 7}`,
    'cache-control': `max-age=${serial % 600}`,
  }
  return {
    status: 200,
    headers,
    body,
    tags: [],
    storedAt: at,
    initialAge: 0,
    staleAt: at + 600_000,
    expiresAt: at + 600_000,
    ...fields,
  }
}

const SHARED_KEYS = Array.from({ length: 2400 }, (_, i) => `key-${i}`).join(' ')
const FLOODS: Array<[string, (store: MemoryStore, i: number) => Promise<unknown>]> = [
  [
    'many URLs, one path tag each',
    async (s, i) =>
      s.set(
        `example.com/page/${i}?q=${i}`,
        pageEntry({ tags: [`\u0000path\u0000/page/${i}?q=${i}`] }),
        await s.checkpoint(),
      ),
  ],
  [
    '2,400 tags shared by every entry (Surrogate-Key, only the query varied)',
    async (s, i) =>
      s.set(
        `example.com/s?q=${i}`,
        pageEntry({ tags: SHARED_KEYS.split(' ') }),
        await s.checkpoint(),
      ),
  ],
  [
    '200 tags of its own on every entry',
    async (s, i) =>
      s.set(
        `example.com/u${i}`,
        pageEntry({ tags: Array.from({ length: 200 }, (_, j) => `item:${i}:${j}`) }),
        await s.checkpoint(),
      ),
  ],
  [
    'tags split out of a 16 KiB header (V8 slices keep the whole header alive)',
    async (s, i) => {
      const header = `tag-number-${i} ${' '.repeat(16 * 1024)} other-tag-${i}`
      return s.set(
        `example.com/sl${i}`,
        pageEntry({ tags: header.split(/\s+/) }),
        await s.checkpoint(),
      )
    },
  ],
  [
    'Vary: a new variant of one resource each time',
    async (s, i) => {
      const entry = pageEntry({ tags: ['\u0000variants\u0000example.com/v', '\u0000path\u0000/v'] })
      return s.set(
        `example.com/v\u0000vary\u0000["${i}"]`,
        { ...entry, headers: { ...entry.headers, vary: 'x-v' } },
        await s.checkpoint(),
      )
    },
  ],
  [
    '60 headers on every entry',
    async (s, i) => {
      const entry = pageEntry()
      for (let j = 0; j < 60; j++) entry.headers[`x-h${j}`] = `value ${i} ${j}`
      return s.set(`example.com/h${i}`, entry, await s.checkpoint())
    },
  ],
  [
    'a header of 60 lines on every entry',
    async (s, i) => {
      const entry = pageEntry()
      entry.headers.link = Array.from({ length: 60 }, (_, j) => `</a${i}-${j}.css>; rel=preload`)
      return s.set(`example.com/l${i}`, entry, await s.checkpoint())
    },
  ],
]

t.test('maxBytes bounds the heap under floods of tags, variants, URLs and headers', async (t) => {
  for (const [name, flood] of FLOODS) {
    t.test(name, async (t) => {
      const store = new MemoryStore({ maxBytes: FLOOD_BUDGET, maxEntries: 1_000_000 })
      for (let i = 0; i < 50; i++) await flood(store, -1 - i) // warm: compiled code
      await store.clear()
      const before = heapUsed()
      let i = 0
      while (store.size().bytes < 0.9 * FLOOD_BUDGET) await flood(store, i++)
      const full = i
      while (i < 3 * full) await flood(store, i++)
      const grown = heapUsed() - before
      t.ok(store.size().bytes <= FLOOD_BUDGET, 'the count stays within maxBytes')
      t.ok(
        store.size().entries < i / 2,
        `evicting: ${store.size().entries} entries held after ${i} stored`,
      )
      t.ok(
        grown <= HEAP_FACTOR * FLOOD_BUDGET,
        `heap grew ${(grown / 2 ** 20).toFixed(2)} MiB for a ${FLOOD_BUDGET / 2 ** 20} MiB store (${(grown / FLOOD_BUDGET).toFixed(2)} × maxBytes)`,
      )
    })
  }
})

t.test('invalidations of 16 KiB keys and tags are held within a share of maxBytes', async (t) => {
  const store = new MemoryStore({ maxBytes: FLOOD_BUDGET })
  const long = 'a'.repeat(16 * 1024)
  for (let i = 0; i < 20; i++) await store.delete(`warm${i}${long}`)
  const before = heapUsed()
  for (let i = 0; i < 2000; i++) {
    await store.delete(`example.com/${i}-${long}`)
    await store.invalidateTags([`\u0000variants\u0000example.com/${i}-${long}`])
  }
  const grown = heapUsed() - before
  t.ok(
    grown <= FLOOD_BUDGET / 4,
    `heap grew ${(grown / 2 ** 20).toFixed(2)} MiB for 4,000 recorded invalidations of 16 KiB names`,
  )
  // What was pruned raised the floor: a generation older than the records kept is refused.
  t.equal(await store.set('example.com/0-x', unit(), 0), false)
  t.equal(await store.set('example.com/0-x', unit(), await store.checkpoint()), true)
})

t.test(
  'a tag that is a slice of a larger string is held as a copy of its own characters',
  async (t) => {
    const store = new MemoryStore()
    const header = `shared-tag-number-one ${' '.repeat(1000)}`
    const tag = header.split(' ')[0]!
    const entry = unit({ tags: [tag, 'short'] })
    await store.set('k', entry, 0)
    const held = (await store.get('k'))!
    t.not(held, entry, 'a new entry object')
    t.strictSame(held.tags, [tag, 'short'], 'equal tags')
    t.equal(entry.tags[0], tag, "the caller's entry is untouched")
    t.equal(await store.invalidateTags([tag]), 1, 'indexed under the same tag')
    const plain = unit({ tags: ['short'] })
    await store.set('p', plain, 0)
    t.equal(await store.get('p'), plain, 'short tags: the same object, no copy')
  },
)
