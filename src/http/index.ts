/**
 * node-accelerator/http: the HTTP rules the cache follows, for handlers and stores that want the
 * same ones (RFC 9111 Cache-Control, RFC 9110 dates, validators and conditional requests).
 */
export { normalizeHost } from './target.js'
export { parseCacheControl, deltaSeconds, type CacheControl } from './cache-control.js'
export { parseHttpDate, formatHttpDate } from './http-date.js'
export { isNotModified, notModifiedHeaders } from './conditional.js'
export { strongEtag } from './etag.js'
// Not a rule but the cache's word to a forwarder: the request headers it set to a stored
// variant's values before asking the origin to revalidate it (RFC 9111 §4.3.1).
export { selectingSet } from '../core/revalidate.js'
