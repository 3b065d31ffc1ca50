/**
 * A generation: one run of the handler (or of the rest of a middleware stack) for a key, shared.
 * The handler's output is teed into it once (tee.ts); the leader's client reads it through its
 * own response, every waiter reads it here as the handler produces it, and the store gets it
 * when it is complete. A waiter's slow or vanished client slows or stops nobody else: each
 * reader's response buffers what its client has not read yet, as Varnish streams one busy
 * object to many clients.
 *
 * The generation alone settles its waiters, in `#offer`: each waiter is told once to read it,
 * to serve an entry (a revalidated one, or stale-if-error), to run the handler on its own (the
 * response must not be shared), or to lead or join the next generation (this one cannot serve
 * it: another variant, a body the leader never pulled, the leader's client gone before a body
 * existed, the wait bound passed, an invalidation since it started).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CacheEntry } from '../store.js'

/** What a waiter is left to do once a generation it waited on decided. */
export type Settled =
  | { kind: 'served' }
  | { kind: 'entry'; entry: CacheEntry; key: string; detail?: string | undefined }
  | { kind: 'alone' }
  | { kind: 'next'; key: string }

/** The response every reader gets, decided once the leader's status and headers were final. */
export interface SharedHead {
  /** The key of the variant produced; a waiter of another variant is sent to the next one. */
  key: string
  /** A waiter's key for this response (its variant, when the response has Vary). */
  keyFor(req: Pick<IncomingMessage, 'headers'>): string
  /** Whether it is still fresh: a request arriving once it is stale is not served it. */
  fresh(): boolean
  /** Writes the status and headers to a reader; true when its body is to follow (not HEAD/304). */
  respond(req: IncomingMessage, res: ServerResponse): boolean
}

/** A request waiting on one generation, or racing two (a slow one and the one hedging it). */
class Waiter {
  #open = 0
  #done = false

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly resolve: (settled: Settled) => void,
  ) {}

  wait(generation: Generation): void {
    this.#open++
    generation.join(this)
  }

  /** Takes the first generation that can serve it; false when another already did. */
  take(): boolean {
    if (this.#done) return false
    this.#done = true
    this.resolve({ kind: 'served' })
    return true
  }

  /** An outcome other than reading: an entry wins at once; the rest once no race is left. */
  offer(settled: Settled): void {
    if (this.#done || (settled.kind !== 'entry' && --this.#open > 0)) return
    this.#done = true
    this.resolve(settled)
  }
}

/** One generation in progress. */
export class Generation {
  readonly #startedAt = performance.now()
  #head: SharedHead | undefined
  /** Refused for new waiters: an invalidation since it started, or its waiters went on. */
  #sealed = false
  /** Its body outgrew what is kept: only readers from the start get it. */
  #partial = false
  #unshareable = false
  #complete = false
  #over = false
  /** Its wait bound passed (as its timer saw it). */
  #late = false
  #timer: NodeJS.Timeout | undefined
  /** The body so far, as views of the tee's copy (never copied again). */
  readonly #chunks: Buffer[] = []
  readonly #waiting = new Set<Waiter>()
  readonly #readers = new Set<ServerResponse>()

  /**
   * @param key where it is registered (coalescing)
   * @param waitMs how long a request waits for its status and headers; Infinity for a hedge
   * @param previous the slow generation this one hedges: its waiters take whichever serves first
   */
  constructor(
    readonly key: string,
    private readonly waitMs: number,
    readonly previous?: Generation,
  ) {}

  /** Whether a request arriving now may wait on it. */
  get joinable(): boolean {
    if (this.#sealed || this.#over) return false
    if (this.#head !== undefined || this.#unshareable) return true
    return !this.#late && performance.now() < this.#startedAt + this.waitMs
  }

  /** Past its wait bound with no head: a request arriving now starts one generation hedging it. */
  get slow(): boolean {
    if (this.#sealed || this.#over || this.#head !== undefined || this.#unshareable) return false
    return this.#late || performance.now() >= this.#startedAt + this.waitMs
  }

  /** Whether a request is waiting on it or reading it: the body is wanted beyond the leader. */
  get wanted(): boolean {
    return this.#waiting.size > 0 || this.#readers.size > 0
  }

  /** Resolves what the request is left to do; it may already have been served from here. */
  wait(req: IncomingMessage, res: ServerResponse): Promise<Settled> {
    return new Promise((resolve) => {
      const waiter = new Waiter(req, res, resolve)
      waiter.wait(this)
      const previous = this.previous
      if (previous && !previous.#over && previous.#head === undefined) waiter.wait(previous)
    })
  }

  /** Registers a waiter (see {@link wait}); decided at once when the head is known. */
  join(waiter: Waiter): void {
    if (this.#over) return waiter.offer({ kind: 'next', key: this.key })
    if (this.#unshareable) return waiter.offer({ kind: 'alone' })
    if (this.#head) return this.#offer(waiter, this.#head)
    this.#waiting.add(waiter)
    if (this.#timer === undefined && Number.isFinite(this.waitMs)) {
      const left = this.#startedAt + this.waitMs - performance.now()
      // Past the bound with no head: the waiters go on to the next generation (one hedge).
      this.#timer = setTimeout(() => {
        // A timer may fire a little before performance.now() says the bound passed.
        this.#late = true
        this.#release({ kind: 'next', key: this.key })
      }, left).unref()
    }
  }

  /** The head is final and may be shared: the waiters read it from here on. */
  open(head: SharedHead): void {
    this.#head = head
    clearTimeout(this.#timer)
    for (const waiter of this.#waiting) this.#offer(waiter, head)
    this.#waiting.clear()
  }

  /** The response must not be shared: each waiter runs the handler on its own. */
  unshareable(): void {
    this.#unshareable = true
    this.#release({ kind: 'alone' })
  }

  /** Serves the waiters an entry (stale-if-error, a revalidated entry). */
  serve(entry: CacheEntry, key: string, detail?: string): void {
    this.#release({ kind: 'entry', entry, key, detail })
  }

  /** More of the body, for the readers (copied by the tee: the handler may reuse its buffer). */
  append(bytes: Buffer): void {
    if (!this.#partial) this.#chunks.push(bytes)
    for (const res of this.#readers) res.write(bytes)
  }

  /** The body is complete: readers end; later waiters get it whole until it is stored. */
  complete(): void {
    this.#complete = true
    for (const res of this.#readers) res.end()
    this.#readers.clear()
  }

  /**
   * An invalidation passed since it started: what it produces must not be served from now on
   * (DESIGN-NOTES, no stale resurrection). Waiters with nothing yet go on to the next generation;
   * readers already streaming it keep it (they were served before the invalidation returned).
   */
  seal(): void {
    this.#sealed = true
    if (this.#head === undefined) this.#release({ kind: 'next', key: this.key })
  }

  /** Too large to keep: readers so far get the rest, nobody else reads it. */
  overflowed(): void {
    this.#partial = true
    this.#sealed = true
    this.#chunks.length = 0
  }

  /**
   * The generation is over (stored, or not, or failed). Readers of an unfinished body are cut,
   * as the leader's connection is; waiters that did not read go on to the next generation.
   */
  end(): void {
    this.#over = true
    for (const res of this.#readers) res.destroy()
    this.#readers.clear()
    this.#release({ kind: 'next', key: this.key })
  }

  #release(settled: Settled): void {
    clearTimeout(this.#timer)
    for (const waiter of this.#waiting) waiter.offer(settled)
    this.#waiting.clear()
  }

  /** The one place a waiter learns what the head means for it. */
  #offer(waiter: Waiter, head: SharedHead): void {
    const key = head.keyFor(waiter.req)
    if (key !== head.key) return waiter.offer({ kind: 'next', key })
    if (this.#partial || !head.fresh()) return waiter.offer({ kind: 'next', key })
    if (!waiter.take()) return
    const { req, res } = waiter
    if (!head.respond(req, res)) return void res.end()
    if (this.#complete)
      return void res.end(this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks))
    for (const bytes of this.#chunks) res.write(bytes)
    this.#readers.add(res)
    res.once('close', () => this.#readers.delete(res))
  }
}
