// A MemoryStore in a node:cluster worker (PM2's cluster mode is one) warns once that its entries
// and purges stay in that worker, and points to RedisStore with localCache. A real cluster: the
// primary forks a worker running this same file, which makes two stores and reports what Node
// warned; the primary (this test) makes a store too, and must not warn.
import cluster from 'node:cluster'
import { MemoryStore } from '../../stores/memory.js'

if (cluster.isWorker) {
  const warnings: { code?: string; message: string }[] = []
  process.on('warning', (warning: Error & { code?: string }) =>
    warnings.push({ code: warning.code, message: warning.message }),
  )
  new MemoryStore()
  new MemoryStore()
  // Warnings are emitted on the next tick.
  setImmediate(() => {
    process.send!(warnings, () => process.exit(0))
  })
} else {
  const { default: t } = await import('tap')
  t.test(
    'a MemoryStore in a cluster worker warns once, naming RedisStore with localCache',
    async (t) => {
      const seen: (Error & { code?: string })[] = []
      const listener = (warning: Error & { code?: string }) => seen.push(warning)
      process.on('warning', listener)
      t.teardown(() => void process.off('warning', listener))
      new MemoryStore()
      cluster.setupPrimary({ execArgv: process.execArgv, silent: true })
      const worker = cluster.fork()
      t.teardown(() => void (worker.isDead() || worker.kill()))
      const warnings = await new Promise<{ code?: string; message: string }[]>((resolve) =>
        worker.once('message', resolve),
      )
      await new Promise((resolve) => worker.once('exit', resolve))
      t.equal(warnings.length, 1, 'once, for two stores')
      t.equal(warnings[0]!.code, 'NODE_ACCELERATOR_MEMORY_IN_WORKER')
      t.match(warnings[0]!.message, /stay in this worker/)
      t.match(warnings[0]!.message, /RedisStore\(\{ url, localCache/)
      await new Promise((resolve) => setImmediate(resolve))
      t.equal(
        seen.filter((w) => w.code === 'NODE_ACCELERATOR_MEMORY_IN_WORKER').length,
        0,
        'not in the primary',
      )
    },
  )
}
