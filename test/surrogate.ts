// Reading Surrogate-Key, Cache-Tag and Surrogate-Control.
import t from 'tap'
import { surrogateInstructions } from '../src/http/surrogate.js'

t.test('surrogateInstructions', async (t) => {
  t.same(surrogateInstructions({}), { tags: [], noStore: false })
  t.same(surrogateInstructions({ 'surrogate-key': '  a   b\tc ', 'cache-tag': ' d, e ,,a' }), {
    tags: ['a', 'b', 'c', 'd', 'e'],
    noStore: false,
  })
  t.same(
    surrogateInstructions({ 'surrogate-key': ['a b', 'c'], 'cache-tag': ['d', 'e'] }).tags,
    ['a', 'b', 'c', 'd', 'e'],
    'repeated header lines',
  )
  t.same(surrogateInstructions({ 'surrogate-control': 'max-age=300, stale-while-revalidate=10' }), {
    tags: [],
    ttl: 300,
    noStore: false,
  })
  t.same(surrogateInstructions({ 'surrogate-control': 'no-store' }), { tags: [], noStore: true })
  t.same(
    surrogateInstructions({ 'surrogate-control': 'max-age=soon' }),
    { tags: [], noStore: false },
    'a malformed max-age is absent',
  )
})
