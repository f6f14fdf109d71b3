/**
 * The login gate: what the proxy does with a client's credentials (a LOGIN/USER+PASS/AUTH PLAIN
 * password, or a pass-through OAuth token). The listener's allow-list and the local password check
 * (login-check.ts: throttle, KDF queue, penalty) come first; then the upstream sign-in
 * (upstream.ts) under a deadline that also ends when the client goes away. The result is the
 * outcome to tell the client and, on success, the authenticated upstream socket.
 *
 * Owns: the allow-list check, the login deadline and the login log lines. Must not: write to the
 * client or know any protocol's reply text.
 */
import type { ClientAction, LoginOutcome } from '../protocols/shared/session.js'
import { LoginCheck, busyText, refusalLog, type LoginVerdict } from './login-check.js'
import { passwordStoreFor } from './passwords.js'
import type { PenaltyOptions } from './penalty.js'
import type { KdfGateOptions, ThrottleOptions } from './throttle.js'
import type { TokenSource } from './token-source.js'
import { loginUpstream, type UpstreamLogin } from './upstream.js'
import { routeSmtpLogin } from './send-route.js'
import { RelayBudget } from './graph-relay.js'
import type { ListenerConfig } from './listeners.js'
import type { Log } from './door.js'
import { accountId } from '../domain/account.js'

export type LoginRequest = Extract<ClientAction, { type: 'login' | 'passthrough' }>

/** The connection a login comes from. */
export interface GateContext {
  listener: ListenerConfig
  cid: string
  /** who is asking (the local user on loopback), for the guess budget */
  source: () => Promise<string>
  /** aborted when the client goes away */
  signal: AbortSignal
}

export type GateResult =
  /** the client went away meanwhile: nothing to say */
  | { kind: 'gone' }
  /** tell the client `session.loginResult(outcome, info)`; on 'ok' with the upstream to splice */
  | {
      kind: 'outcome'
      outcome: LoginOutcome
      info?: { text: string }
      upstream?: UpstreamLogin['upstream']
      /** on 'ok': the account sends through Microsoft Graph (graph-relay.ts), no upstream socket */
      graph?: true
    }

export interface LoginGateOptions {
  tokens: TokenSource
  log: Log
  /** deadline for the upstream sign-in, token refresh included (default 30 s) */
  loginTimeoutMs?: number | undefined
  penalty?: Partial<PenaltyOptions> | undefined
  throttle?: Partial<ThrottleOptions> | undefined
  kdf?: Partial<KdfGateOptions> | undefined
}

type Refusal = Extract<LoginVerdict, { kind: 'unavailable' | 'refused' | 'busy' }>
type Admitted = Extract<LoginVerdict, { kind: 'signin' | 'forward' }>

export class LoginGate {
  readonly #logins: LoginCheck
  readonly #tokens: TokenSource
  readonly #log: Log
  readonly #timeoutMs: number
  /** Graph relays and submissions of this proxy (graph-relay.ts) */
  readonly #relays = new RelayBudget()

  constructor(o: LoginGateOptions) {
    this.#tokens = o.tokens
    this.#log = o.log
    this.#timeoutMs = o.loginTimeoutMs ?? 30_000
    this.#logins = new LoginCheck(passwordStoreFor(o.tokens), {
      ...(o.penalty ? { penalty: o.penalty } : {}),
      ...(o.throttle ? { throttle: o.throttle } : {}),
      ...(o.kdf ? { kdf: o.kdf } : {}),
    })
  }

  /** what a Graph relay needs from the gate's surroundings (connection.ts) */
  relayDeps(): { tokens: TokenSource; log: Log; budget: RelayBudget } {
    return { tokens: this.#tokens, log: this.#log, budget: this.#relays }
  }

  readonly #hasAccount = (account: string): Promise<boolean | undefined> =>
    this.#tokens.record(account).then(
      (r) => r !== undefined,
      () => undefined,
    )

  /**
   * login: the local password decides; passthrough: the client's own token goes upstream, unless
   * it is the local password (login-check.ts).
   */
  async login(a: LoginRequest, c: GateContext): Promise<GateResult> {
    const allowed = !c.listener.accounts || c.listener.accounts.includes(accountId(a.username))
    const v = await this.#logins.decide(a, {
      source: c.source,
      allowed,
      signal: c.signal,
      hasAccount: this.#hasAccount,
    })
    if (v.kind === 'gone' || c.signal.aborted) return { kind: 'gone' }
    if (v.kind === 'unavailable' || v.kind === 'refused' || v.kind === 'busy') return this.#refusal(a, c, v)
    const up = await this.#signIn(a, c, v)
    if (v.kind === 'forward') this.#logins.forwarded(await c.source(), a.username, up.outcome === 'bad-credentials', v)
    this.#log({
      level: up.outcome === 'ok' ? 'info' : 'warn',
      cid: c.cid,
      proto: c.listener.protocol,
      event: a.type,
      account: a.username,
      ...(a.type === 'passthrough' ? { mechanism: a.mechanism } : {}),
      outcome: up.outcome,
      ...(up.reason ? { msg: up.reason } : {}),
    })
    return {
      kind: 'outcome',
      outcome: up.outcome,
      ...(up.upstream ? { upstream: up.upstream } : {}),
      ...(up.graph ? { graph: true as const } : {}),
      // the client's mail program shows this line: 5.7.139 and its fix are worth showing
      ...(up.smtpAuthDisabled && up.reason ? { info: { text: up.reason } } : {}),
    }
  }

  /** Refused before anything went upstream: log why, and the outcome for the client. */
  #refusal(a: LoginRequest, c: GateContext, v: Refusal): GateResult {
    const line = { cid: c.cid, proto: c.listener.protocol, event: a.type, account: a.username }
    if (v.kind === 'unavailable') {
      this.#log({ level: 'warn', ...line, outcome: 'transient', msg: v.msg })
      return { kind: 'outcome', outcome: 'transient' }
    }
    const busy = v.kind === 'busy'
    this.#log({ level: 'info', ...line, outcome: busy ? 'throttled' : 'bad-credentials', ...refusalLog(v) })
    if (v.kind === 'busy') return { kind: 'outcome', outcome: 'transient', info: { text: busyText(v.retryAfterMs) } }
    return { kind: 'outcome', outcome: 'bad-credentials' }
  }

  /** The upstream sign-in: ends when the client goes away or at the deadline, whichever comes first. */
  async #signIn(a: LoginRequest, c: GateContext, v: Admitted): Promise<UpstreamLogin> {
    if (v.kind === 'signin' && v.fromPassthrough)
      this.#log({
        level: 'warn',
        cid: c.cid,
        proto: c.listener.protocol,
        event: a.type,
        account: a.username,
        mechanism: (a as { mechanism?: string }).mechanism,
        msg: 'the client sent the local password as an OAuth token: taken as a password login, not forwarded',
      })
    // (A plain timer, cleared at once: AbortSignal.timeout would hold its timer and both signals
    // for the full 30 s after every login.)
    const lc = new AbortController()
    const stop = (): void => lc.abort()
    const deadline = setTimeout(stop, this.#timeoutMs)
    c.signal.addEventListener('abort', stop, { once: true })
    const l = c.listener
    const forward = a.type === 'passthrough' && v.kind === 'forward'
    const viaSmtp = (): Promise<UpstreamLogin> =>
      loginUpstream(this.#tokens, l.protocol, a.username, lc.signal, this.#timeoutMs, {
        ...(l.upstream ? { serverOverride: l.upstream } : {}),
        ...(l.upstreamCa ? { caOverride: l.upstreamCa } : {}),
        ...(forward ? { clientSasl: { mechanism: a.mechanism, response: a.response } } : {}),
      })
    try {
      // a client's own token is for the SMTP server it was made for; mailkey's own token may go to Graph
      // a listener that names its upstream server (config.toml `upstream`) always goes there
      if (l.protocol !== 'smtp' || forward || l.upstream) return await viaSmtp()
      const route = { tokens: this.#tokens, account: a.username, signal: lc.signal, log: this.#log, cid: c.cid }
      return await routeSmtpLogin(route, viaSmtp)
    } finally {
      clearTimeout(deadline)
      c.signal.removeEventListener('abort', stop)
    }
  }
}
