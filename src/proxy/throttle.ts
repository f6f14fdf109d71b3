/**
 * How many password guesses the proxy lets through, counted per source as a whole (every
 * connection from one address shares one budget) and for all sources together, and how much KDF
 * work may be pending. A per-connection sleep (penalty.ts) cannot do this: 300 parallel
 * connections each sleeping made 10.2 guesses/s (issue 11, item 3).
 *
 * - GuessThrottle: one token bucket per source and one global bucket. A password check that needs
 *   the KDF takes a token from both; a check that succeeds, or that never ran, gives it back, so
 *   only wrong guesses (and refused pass-through tokens) spend the budget. An empty bucket means a
 *   fast, temporary refusal: nothing queues behind it.
 * - KdfGate: at most `parallel` KDF runs at once, `queued` waiting (`queuedPerSource` from one
 *   source); beyond that a fast refusal. Waiting runs start in turn by source (round robin), so one
 *   source's burst does not stand in front of everyone else. A waiting run whose client has gone
 *   (its signal aborted) leaves the queue without running.
 *
 * A source is an IPv4 address, or the /64 prefix of an IPv6 address (one host usually holds a
 * whole /64). Every local client is 127.0.0.1: one source; a known-good password (passwords.ts)
 * skips both the throttle and the gate, so the owner is not locked out by a local attacker.
 *
 * Owns: the buckets and the queue. Must not: see a password, sleep, or do I/O. The clock is injected.
 */

export interface ThrottleOptions {
  /** guesses one source may make per minute once its burst is spent */
  perSourcePerMin: number
  /** guesses one source may make at once (the bucket's size) */
  perSourceBurst: number
  /** guesses all sources together may make per minute once the global burst is spent */
  globalPerMin: number
  globalBurst: number
  /** sources remembered at most (the least recently used go first; a full bucket is as good as new) */
  maxSources: number
  now: () => number
}

export const DEFAULT_THROTTLE: ThrottleOptions = {
  perSourcePerMin: 6,
  perSourceBurst: 10,
  globalPerMin: 30,
  globalBurst: 30,
  maxSources: 10_000,
  now: Date.now,
}

export interface KdfGateOptions {
  /** KDF runs at once (scrypt shares libuv's 4-thread pool with file reads; 64 MiB each) */
  parallel: number
  /** KDF runs waiting at most, all sources together; one more is refused at once */
  queued: number
  /** KDF runs one source may have waiting; one more from it is refused at once */
  queuedPerSource: number
}

export const DEFAULT_KDF_GATE: KdfGateOptions = { parallel: 2, queued: 32, queuedPerSource: 4 }

interface Bucket {
  tokens: number
  at: number
}

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number }

export class GuessThrottle {
  readonly #o: ThrottleOptions
  /** insertion order = least recently used first */
  readonly #sources = new Map<string, Bucket>()
  readonly #global: Bucket

  constructor(options: Partial<ThrottleOptions> = {}) {
    this.#o = { ...DEFAULT_THROTTLE, ...options }
    for (const k of ['perSourcePerMin', 'perSourceBurst', 'globalPerMin', 'globalBurst', 'maxSources'] as const) {
      const v = this.#o[k]
      if (!(typeof v === 'number' && Number.isFinite(v) && v > 0))
        throw new RangeError(`throttle setting "${k}" must be a positive number`)
    }
    this.#global = { tokens: this.#o.globalBurst, at: this.#o.now() }
  }

  /** Take one guess for `source` (and from the global budget); refused when either is spent. */
  take(source: string): TakeResult {
    const o = this.#o
    const now = o.now()
    const src = this.#source(source, now)
    refill(this.#global, now, o.globalPerMin, o.globalBurst)
    if (src.tokens < 1 || this.#global.tokens < 1) {
      const wait = Math.max(waitMs(src, o.perSourcePerMin), waitMs(this.#global, o.globalPerMin))
      return { ok: false, retryAfterMs: Math.ceil(wait) }
    }
    src.tokens -= 1
    this.#global.tokens -= 1
    return { ok: true }
  }

  /** Give back a guess that was not one: the password was right, or no check ran. */
  refund(source: string): void {
    const o = this.#o
    const now = o.now()
    const src = this.#source(source, now)
    src.tokens = Math.min(o.perSourceBurst, src.tokens + 1)
    refill(this.#global, now, o.globalPerMin, o.globalBurst)
    this.#global.tokens = Math.min(o.globalBurst, this.#global.tokens + 1)
  }

  /** sources held (for tests) */
  get size(): number {
    return this.#sources.size
  }

  #source(key: string, now: number): Bucket {
    const o = this.#o
    let b = this.#sources.get(key)
    if (b) this.#sources.delete(key)
    else b = { tokens: o.perSourceBurst, at: now }
    refill(b, now, o.perSourcePerMin, o.perSourceBurst)
    this.#sources.set(key, b)
    while (this.#sources.size > o.maxSources) {
      const oldest = this.#sources.keys().next().value as string
      this.#sources.delete(oldest)
    }
    return b
  }
}

function refill(b: Bucket, now: number, perMin: number, burst: number): void {
  const elapsed = Math.max(0, now - b.at)
  b.tokens = Math.min(burst, b.tokens + (elapsed * perMin) / 60_000)
  b.at = now
}

function waitMs(b: Bucket, perMin: number): number {
  return b.tokens >= 1 ? 0 : ((1 - b.tokens) * 60_000) / perMin
}

/** The throttle's key for a client address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64. */
export function sourceOf(address: string): string {
  const a = address.toLowerCase().replace(/%.*$/, '')
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a)
  if (mapped) return mapped[1] as string
  if (!a.includes(':')) return a
  const [head = '', tail = ''] = a.split('::')
  const left = head ? head.split(':') : []
  const right = a.includes('::') && tail ? tail.split(':') : []
  const groups = a.includes('::')
    ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left
  return (
    groups
      .slice(0, 4)
      .map((g) => (g || '0').replace(/^0+(?=.)/, ''))
      .join(':') + '::/64'
  )
}

/** The queue is full: refuse at once (a temporary failure for the client). */
export class KdfBusyError extends Error {
  constructor() {
    super('too many password checks waiting')
    this.name = 'KdfBusyError'
  }
}

/** The client went away before its check started. */
export class KdfAbandonedError extends Error {
  constructor() {
    super('the client left before its password check ran')
    this.name = 'KdfAbandonedError'
  }
}

interface Waiter {
  start: () => void
  abandon: () => void
}

export class KdfGate {
  readonly #o: KdfGateOptions
  /** waiting runs by source; Map order is the round-robin order (a served source goes to the back) */
  readonly #waiting = new Map<string, Waiter[]>()
  #queued = 0
  #running = 0

  constructor(options: Partial<KdfGateOptions> = {}) {
    this.#o = { ...DEFAULT_KDF_GATE, ...options }
    for (const k of ['parallel', 'queued', 'queuedPerSource'] as const) {
      const v = this.#o[k]
      if (!Number.isSafeInteger(v) || v < (k === 'parallel' ? 1 : 0))
        throw new RangeError(`KDF gate setting "${k}" must be a whole number${k === 'parallel' ? ' from 1' : ''}`)
    }
  }

  /**
   * Run `f` when a slot is free. Throws KdfBusyError at once when the queue (or this source's
   * share of it) is full, and KdfAbandonedError when `signal` aborts while waiting (a running KDF
   * cannot be stopped).
   */
  async run<T>(f: () => Promise<T>, signal?: AbortSignal, source = ''): Promise<T> {
    if (signal?.aborted) throw new KdfAbandonedError()
    if (this.#running < this.#o.parallel) {
      this.#running++
    } else {
      const mine = this.#waiting.get(source) ?? []
      if (this.#queued >= this.#o.queued || mine.length >= this.#o.queuedPerSource) throw new KdfBusyError()
      // A finishing run hands its slot straight to the next waiter (#running stays as it is), so
      // no newcomer can slip in between.
      await new Promise<void>((resolve, reject) => {
        const w: Waiter = {
          start: () => {
            signal?.removeEventListener('abort', w.abandon)
            resolve()
          },
          abandon: () => {
            const list = this.#waiting.get(source)
            const i = list ? list.indexOf(w) : -1
            if (list && i >= 0) {
              list.splice(i, 1)
              this.#queued--
              if (list.length === 0) this.#waiting.delete(source)
            }
            reject(new KdfAbandonedError())
          },
        }
        mine.push(w)
        this.#queued++
        if (!this.#waiting.has(source)) this.#waiting.set(source, mine)
        signal?.addEventListener('abort', w.abandon, { once: true })
      })
    }
    try {
      return await f()
    } finally {
      const next = this.#next()
      if (next) next.start()
      else this.#running--
    }
  }

  /** The first waiter of the source whose turn it is; that source then goes to the back. */
  #next(): Waiter | undefined {
    const first = this.#waiting.entries().next()
    if (first.done) return undefined
    const [source, list] = first.value
    const w = list.shift() as Waiter
    this.#queued--
    this.#waiting.delete(source)
    if (list.length > 0) this.#waiting.set(source, list)
    return w
  }

  get running(): number {
    return this.#running
  }

  get queued(): number {
    return this.#queued
  }
}
