/**
 * Retrying a transient failure (B4): up to `maxAttempts` tries, 0.5 s then 1.5 s apart (jittered),
 * or as long as the server's Retry-After says when that is at most `maxRetryAfterSec`; a longer
 * Retry-After fails at once and says how long the server asks to wait. Sleep and randomness are
 * passed in, so tests run without waiting.
 *
 * Owns: when to try again and how long to wait. Must not: classify errors (oauth/classify.ts) or
 * touch the store.
 */
import type { MailkeyError } from '../errors.js'
import { retryAfterTooLong } from './failures.js'

export interface RetryPolicy {
  maxAttempts: number
  maxRetryAfterSec: number
}

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>

export interface RetryOptions extends RetryPolicy {
  sleep: Sleep
  /** [0, 1), for the jitter */
  random: () => number
  /** the account, for the error that a too-long Retry-After becomes */
  account: string
  signal?: AbortSignal
  /** every failure as a MailkeyError (the caller may reword it, e.g. a lost answer) */
  toError: (e: unknown) => MailkeyError
  /** a failure that must not be tried again whatever it is (the answer arrived but could not be stored) */
  final?: (e: unknown) => boolean
}

/** The wait before try `attempt + 1`: the server's Retry-After, else 500 ms * 3^(attempt-1) + up to 250 ms. */
export function backoffMs(attempt: number, retryAfterSec: number | undefined, random: () => number): number {
  return retryAfterSec !== undefined ? retryAfterSec * 1000 : 500 * 3 ** (attempt - 1) + Math.floor(random() * 250)
}

/** Run `attempt` until it succeeds or fails for good; rejects with the last error (a MailkeyError). */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, o: RetryOptions): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n)
    } catch (e) {
      const err = o.toError(e)
      const ra = err.retryAfterSec
      const again = err.transient && n < o.maxAttempts && !o.signal?.aborted && !o.final?.(e)
      if (again && (ra === undefined || ra <= o.maxRetryAfterSec)) {
        await o.sleep(backoffMs(n, ra, o.random), o.signal)
        continue
      }
      if (err.transient && ra !== undefined && ra > o.maxRetryAfterSec) throw retryAfterTooLong(err, ra, o.account)
      throw err
    }
  }
}
