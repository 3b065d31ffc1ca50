import type {
  CacheEntry,
  CacheStore,
  Checkpoint,
  InvalidateOptions,
  StoreSize,
} from '../src/store.js'

/**
 * A {@link CacheStore} that stores nothing: every `get` misses and every `set` is declined. Use it
 * to switch caching off without changing the code that talks to a store.
 */
export class NullStore implements CacheStore {
  async get(_key: string): Promise<CacheEntry | undefined> {
    return undefined
  }

  async checkpoint(): Promise<Checkpoint> {
    return 0
  }

  async set(_key: string, _entry: CacheEntry, _since: Checkpoint): Promise<boolean> {
    return false
  }

  async delete(_key: string): Promise<number> {
    return 0
  }

  async invalidateTags(_tags: readonly string[], _options?: InvalidateOptions): Promise<number> {
    return 0
  }

  async clear(_keyPrefix?: string): Promise<void> {}

  async close(): Promise<void> {}

  size(): StoreSize {
    return { entries: 0, bytes: 0 }
  }
}
