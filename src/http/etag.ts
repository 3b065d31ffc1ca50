/**
 * Entity-tags computed from response bodies (RFC 9110 §8.8.3), in the format of jshttp/etag.
 */

import { createHash } from 'node:crypto'

/**
 * A strong entity-tag for the body bytes: `"<byte length, hex>-<SHA-1 digest, base64, first 27
 * characters>"`, quotes included (the empty body gives `"0-2jmj7l5rSw0yVb/vlWAYkK/YBwk"`).
 */
export function strongEtag(body: Uint8Array): string {
  const digest = createHash('sha1').update(body).digest('base64').slice(0, 27)
  return `"${body.byteLength.toString(16)}-${digest}"`
}
