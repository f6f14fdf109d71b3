/**
 * The proxy's verdict on the credentials a client sent, before anything goes upstream:
 *
 * 1. A known-good pair (verified before in this process, remembered as a keyed hash) is accepted
 *    at once: no throttle, no KDF queue. That keeps the owner's mail clients working while someone
 *    guesses from the same address.
 * 2. The same pair already being checked for another connection: wait for that one KDF run.
 * 3. Otherwise: one guess from the source's and the global budget (throttle.ts; spent: a fast
 *    temporary refusal), the per-(source, user) delay after repeated failures (penalty.ts), then
 *    the KDF through the bounded gate (full: a fast temporary refusal). A check whose every client
 *    has gone leaves the queue without running. A right password gives its guess back.
 *
 * A client's own XOAUTH2/OAUTHBEARER token (pass-through) goes through the very same check first,
 * with the token as the password: if it is the account's local password (mbsync with a Cyrus
 * XOAUTH2 plugin sends it so), it is a password login and is never forwarded. Otherwise it is
 * forwarded only for an account that exists here, and it has spent a guess unless the server takes
 * it (forwarded()). An unknown account, an account not allowed on the listener and a wrong password
 * get the same verdict after the same KDF work.
 *
 * Owns: the order of those steps and the shared in-flight checks. Must not: touch sockets, log,
 * or keep a password (only PasswordStore's keyed hash of it).
 */
import { setTimeout as sleepTimer } from 'node:timers/promises'
import type { Secret } from '../core/secret.js'
import { isTransient } from '../errors.js'
import type { ClientAction } from '../protocols/shared/session.js'
import { LoginPenalty, type PenaltyOptions } from './penalty.js'
import {
  GuessThrottle,
  KdfAbandonedError,
  KdfBusyError,
  KdfGate,
  type KdfGateOptions,
  type ThrottleOptions,
} from './throttle.js'

/** What LoginCheck needs of the password store (passwords.ts; a fake at the edge in unit tests). */
export interface PasswordVerifier {
  /** read what remembered() compares against anew, where that costs a store read (undefined: nothing to wait for) */
  reload?(account: string): Promise<void> | undefined
  remembered(account: string, password: Secret): boolean
  pairKey(account: string, password: Secret): string
  verify(account: string, password: Secret): Promise<boolean>
}

export interface LoginCheckOptions {
  throttle?: Partial<ThrottleOptions>
  kdf?: Partial<KdfGateOptions>
  penalty?: Partial<PenaltyOptions>
  /** the penalty's wait (injected in tests) */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
}

export type CheckResult =
  | { kind: 'ok'; remembered: boolean }
  /** `charged`: this call spent a guess of its own (not one that joined another connection's check) */
  | { kind: 'wrong'; penaltyMs?: number; charged: boolean }
  /** refused before any check: the guess budget is spent, or too many checks are waiting */
  | { kind: 'busy'; why: 'throttled' | 'queue-full'; retryAfterMs: number }
  /** the client went away */
  | { kind: 'gone' }
  /** the check could not run for a passing reason (out of file descriptors reading the password file) */
  | { kind: 'unavailable'; msg: string }

export type LoginVerdict =
  /** the local password is right: sign in upstream with the account's own token */
  | { kind: 'signin'; remembered: boolean; fromPassthrough: boolean }
  /** a pass-through token that is not the local password, for an account that exists: forward it */
  | { kind: 'forward'; charged: boolean }
  /** wrong password, unknown account or not allowed here: one answer for all */
  | { kind: 'refused'; penaltyMs?: number; notAllowed?: boolean }
  | { kind: 'busy'; why: 'throttled' | 'queue-full'; retryAfterMs: number }
  | { kind: 'gone' }
  | { kind: 'unavailable'; msg: string }

type JobResult = 'ok' | 'wrong' | 'busy' | 'gone' | { unavailable: string }

interface Job {
  result: Promise<JobResult>
  /** connections waiting for this run; when the last one goes, a queued run is dropped */
  waiters: number
  ac: AbortController
}

export class LoginCheck {
  readonly #passwords: PasswordVerifier
  readonly #throttle: GuessThrottle
  readonly #gate: KdfGate
  readonly #penalty: LoginPenalty
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>
  readonly #inflight = new Map<string, Job>()

  constructor(passwords: PasswordVerifier, o: LoginCheckOptions = {}) {
    this.#passwords = passwords
    this.#throttle = new GuessThrottle(o.throttle)
    this.#gate = new KdfGate(o.kdf)
    this.#penalty = new LoginPenalty({ ...(o.throttle?.now ? { now: o.throttle.now } : {}), ...o.penalty })
    this.#sleep = o.sleep ?? ((ms, signal) => sleepTimer(ms, undefined, { signal }))
  }

  /** The verdict on a `login` or `passthrough` action from `source` (peer-uid.ts throttleSource). */
  async decide(
    a: Extract<ClientAction, { type: 'login' | 'passthrough' }>,
    ctx: {
      source: string | (() => Promise<string>)
      allowed: boolean
      signal: AbortSignal
      hasAccount: (account: string) => Promise<boolean | undefined>
    },
  ): Promise<LoginVerdict> {
    const secret = a.type === 'login' ? a.password : a.token
    // A pass-through token is not the local password as a rule: its wrong guess counts (penalty)
    // only once the server refuses it too (forwarded()).
    const r = await this.check(a.username, secret, ctx.source, ctx.signal, a.type === 'login')
    if (r.kind === 'gone' || r.kind === 'busy' || r.kind === 'unavailable') return r
    // Not allowed here: the same work as for anyone, then the same answer as a wrong password.
    if (!ctx.allowed)
      return {
        kind: 'refused',
        notAllowed: true,
        ...(r.kind === 'wrong' && r.penaltyMs ? { penaltyMs: r.penaltyMs } : {}),
      }
    if (r.kind === 'ok') return { kind: 'signin', remembered: r.remembered, fromPassthrough: a.type === 'passthrough' }
    if (a.type === 'login') return { kind: 'refused', ...(r.penaltyMs ? { penaltyMs: r.penaltyMs } : {}) }
    // A token for an account this proxy does not have: the same answer as a wrong password
    // (issue 11 item 6: CONTACTADMIN told which accounts exist). Unreadable store: let the upstream
    // login classify it.
    if ((await ctx.hasAccount(a.username)) === false) return { kind: 'refused' }
    return { kind: 'forward', charged: r.charged }
  }

  /**
   * The server's answer to a forwarded token: refused, it was a wrong guess (its budget stays
   * spent, and it counts for the delay); accepted, or not judged at all (an outage), its budget
   * comes back.
   */
  forwarded(source: string, account: string, refused: boolean, v: { charged: boolean }): void {
    if (refused) this.#penalty.failed(source, account)
    // only a guess this connection spent itself (joining another's check spent none)
    else if (v.charged) this.#throttle.refund(source)
  }

  /**
   * `source` may be a function: it is asked only when a check needs the budget (a remembered
   * password never pays for finding out who is asking).
   */
  async check(
    account: string,
    password: Secret,
    sourceOrLookup: string | (() => Promise<string>),
    signal: AbortSignal,
    countFailure = true,
  ): Promise<CheckResult> {
    const reloading = this.#passwords.reload?.(account)
    if (reloading) await reloading
    if (this.#passwords.remembered(account, password)) return { kind: 'ok', remembered: true }
    const key = this.#passwords.pairKey(account, password)
    let penaltyMs = 0
    const source = typeof sourceOrLookup === 'string' ? sourceOrLookup : await sourceOrLookup()
    // (after the lookup: connections that sent the same pair meanwhile may have started its check)
    if (this.#passwords.remembered(account, password)) return { kind: 'ok', remembered: true }
    let job = this.#inflight.get(key)
    let charged = false
    if (!job) {
      // The budget first: a refused guess is answered at once, and holds nothing.
      const t = this.#throttle.take(source)
      if (!t.ok) return { kind: 'busy', why: 'throttled', retryAfterMs: t.retryAfterMs }
      charged = true
      penaltyMs = this.#penalty.delayMs(source, account)
      if (penaltyMs > 0) {
        try {
          await this.#sleep(penaltyMs, signal)
        } catch {
          this.#throttle.refund(source)
          return { kind: 'gone' }
        }
        job = this.#inflight.get(key)
        if (job || this.#passwords.remembered(account, password)) {
          this.#throttle.refund(source)
          charged = false
        }
        if (!job && this.#passwords.remembered(account, password)) return { kind: 'ok', remembered: true }
      }
      job ??= this.#start(key, account, password, source)
    }
    const r = await this.#join(job, signal)
    switch (r) {
      case 'ok':
        this.#penalty.succeeded(source, account)
        return { kind: 'ok', remembered: false }
      case 'wrong':
        if (countFailure) this.#penalty.failed(source, account)
        return { kind: 'wrong', charged, ...(penaltyMs ? { penaltyMs } : {}) }
      case 'busy':
        return { kind: 'busy', why: 'queue-full', retryAfterMs: 1000 }
      case 'gone':
        return { kind: 'gone' }
      default:
        return { kind: 'unavailable', msg: r.unavailable }
    }
  }

  /** One KDF run, shared by every connection that sent the same pair meanwhile. */
  #start(key: string, account: string, password: Secret, source: string): Job {
    const ac = new AbortController()
    const result = this.#gate
      .run(() => this.#passwords.verify(account, password), ac.signal, source)
      .then(
        (ok): JobResult => {
          if (ok) this.#throttle.refund(source)
          return ok ? 'ok' : 'wrong'
        },
        (e: unknown): JobResult => {
          // No check ran: the guess is given back.
          if (e instanceof KdfBusyError) return (this.#throttle.refund(source), 'busy')
          if (e instanceof KdfAbandonedError) return (this.#throttle.refund(source), 'gone')
          // The password file could not be read for a passing reason (EMFILE...): an outage, not a
          // wrong password, and no guess. Any other failure (a broken file): refused, the guess spent.
          if (isTransient(e)) return (this.#throttle.refund(source), { unavailable: (e as Error).message })
          return 'wrong'
        },
      )
      .finally(() => this.#inflight.delete(key))
    const job: Job = { result, waiters: 0, ac }
    this.#inflight.set(key, job)
    return job
  }

  async #join(job: Job, signal: AbortSignal): Promise<JobResult> {
    job.waiters++
    let onAbort = (): void => {}
    const gone = new Promise<JobResult>((resolve) => {
      onAbort = (): void => {
        if (--job.waiters === 0) job.ac.abort()
        resolve('gone')
      }
    })
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    try {
      return await Promise.race([job.result, gone])
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** checks in flight and waiting (for tests and the log) */
  get load(): { running: number; queued: number } {
    return { running: this.#gate.running, queued: this.#gate.queued }
  }
}

/** The client's text for a temporary refusal (the protocol's own code comes from the session). */
export function busyText(retryAfterMs: number): string {
  return `Too many login attempts, try again in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s`
}

/** Log fields for a refusal (no secrets). */
export function refusalLog(v: Extract<LoginVerdict, { kind: 'refused' | 'busy' }>): Record<string, string | number> {
  if (v.kind === 'busy')
    return {
      msg: v.why === 'throttled' ? 'guess budget spent for this address (or all)' : 'too many password checks waiting',
      retryAfterMs: v.retryAfterMs,
    }
  return {
    ...(v.penaltyMs ? { penaltyMs: v.penaltyMs } : {}),
    ...(v.notAllowed ? { msg: 'account not allowed on this listener' } : {}),
  }
}
