/** Tags (Surrogate-Key and Cache-Tag members, `res.tags`): which strings are tags. */
import { isWellFormed } from './target.js'

/**
 * The accelerator's own tags (every variant of a resource; every entry of a path) start with NUL,
 * a lower-case name and NUL. Tags of that shape are refused from users, so that theirs can never
 * collide with these.
 */
const RESERVED_TAG = /^\u0000[a-z]+\u0000/

/** Whether a tag is one of the accelerator's own (see {@link isTag}). */
export function isReservedTag(tag: string): boolean {
  return RESERVED_TAG.test(tag)
}

/**
 * A tag is any string that is well-formed Unicode (a lone surrogate cannot be spelled the same way
 * in every store: Redis keys are UTF-8, where every one of them would become U+FFFD), except the
 * reserved `\0name\0...` shape of the accelerator's own tags.
 */
export function isTag(tag: unknown): tag is string {
  return typeof tag === 'string' && isWellFormed(tag) && !isReservedTag(tag)
}

/**
 * Tags as given, as an array: one string is one tag; any other iterable (an array, a Set, a
 * generator, iterated once) gives its items; anything else is `undefined`. The items are not
 * checked here (see {@link isTag}).
 */
export function tagList(tags: unknown): unknown[] | undefined {
  if (typeof tags === 'string') return [tags]
  if (typeof tags !== 'object' || tags === null || !(Symbol.iterator in tags)) return undefined
  return Array.isArray(tags) ? tags : [...(tags as Iterable<unknown>)]
}
