/** Replacing a live request's header lines. */

/** Sets `rawHeaders` on a live request: an own property, as HTTP/2's request only has a getter. */
export function setRawHeaders(req: { rawHeaders: string[] }, raw: string[]): void {
  Object.defineProperty(req, 'rawHeaders', {
    value: raw,
    writable: true,
    configurable: true,
    enumerable: true,
  })
}
