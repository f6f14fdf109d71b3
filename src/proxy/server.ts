/**
 * `mailkey proxy`: listeners for LOGIN-only clients. Each connection runs a pre-auth session
 * (protocols/*), checks the local password, signs in upstream with OAuth (upstream.ts), then
 * splices client and server byte for byte. The parts: listeners.ts (listen, reload, close),
 * door.ts (connection caps), connection.ts (one client until the splice), login-gate.ts
 * (allow-list, password, deadline). The proxy needs a TokenSource (token-source.ts), which
 * `Mailkey` is.
 *
 * Safe defaults: listeners bind 127.0.0.1; a non-loopback listener without TLS is refused by the
 * caller (cli/commands/proxy.ts); pre-auth time, line and literal sizes are bounded; connections
 * and unauthenticated input are capped (admission.ts); one session's failure never touches another.
 *
 * Owns: putting the parts together and the keep-alive schedule. Must not: parse protocols, hold
 * tokens, or decide which grants need keeping alive (broker/keep-alive.ts).
 */
import type { Socket } from 'node:net'
import { TLSSocket, type SecureContext } from 'node:tls'
import { randomBytes } from 'node:crypto'
import type { PenaltyOptions } from './penalty.js'
import type { KdfGateOptions, ThrottleOptions } from './throttle.js'
import type { ProxyProtocol } from './upstream.js'
import type { AdmissionLimits } from './admission.js'
import type { TokenSource } from './token-source.js'
import { Door, type Log, type LogEvent } from './door.js'
import { Listeners, type Address, type ListenerConfig } from './listeners.js'
import { LoginGate } from './login-gate.js'
import { Connection, type ConnectionDeps } from './connection.js'
import { scheduleKeepAlive } from '../broker/keep-alive-schedule.js'

export type { ListenerConfig } from './listeners.js'
export type { LogEvent } from './door.js'
export type { TokenSource } from './token-source.js'

export interface ProxyOptions {
  /** accounts and tokens (a `Mailkey`, or a fake in tests) */
  tokens: TokenSource
  listeners: ListenerConfig[]
  log?: (e: LogEvent) => void
  /** a client must log in within this time (default 120 s) */
  preAuthTimeoutMs?: number
  /** a client must send its first command within this time (default 20 s) */
  firstCommandTimeoutMs?: number
  /** caps on connections and on input before login (admission.ts: defaults, the total cap from the fd limit) */
  admission?: Partial<AdmissionLimits>
  /** deadline for the upstream sign-in, token refresh included (default 30 s) */
  loginTimeoutMs?: number
  /** the delay for repeated wrong local passwords (penalty.ts; defaults: 3 free, then 1 s doubling to 15 s) */
  penalty?: Partial<PenaltyOptions>
  /** guesses per source and in total (throttle.ts DEFAULT_THROTTLE) */
  throttle?: Partial<ThrottleOptions>
  /** KDF runs at once and waiting (throttle.ts DEFAULT_KDF_GATE) */
  kdf?: Partial<KdfGateOptions>
  /**
   * how often to look for grants to keep alive (broker/horizon.ts: an idle-limited refresh token
   * is refreshed once half its idle span has passed); the first look is right after start.
   * Default 6 h; 0 turns it off.
   */
  keepAliveIntervalMs?: number
}

export interface RunningProxy {
  addresses: { protocol: ProxyProtocol; host: string; port: number }[]
  /** open client connections */
  connections(): number
  /** stop accepting; close pre-auth sessions; spliced sessions end on their own (or after graceMs) */
  close(graceMs?: number): Promise<void>
  /** replace the listeners (SIGHUP): open sessions carry on, new ones see the new listeners */
  reload(listeners: ListenerConfig[]): Promise<void>
}

export async function startProxy(opts: ProxyOptions): Promise<RunningProxy> {
  const log: Log = opts.log ?? (() => {})
  const deps: ConnectionDeps = {
    door: new Door(opts.admission, log),
    gate: new LoginGate({
      tokens: opts.tokens,
      log,
      loginTimeoutMs: opts.loginTimeoutMs,
      penalty: opts.penalty,
      throttle: opts.throttle,
      kdf: opts.kdf,
    }),
    log,
    preAuthTimeoutMs: opts.preAuthTimeoutMs ?? 120_000,
    firstCommandTimeoutMs: opts.firstCommandTimeoutMs ?? 20_000,
  }
  const listeners = new Listeners((raw, l, ctx) => accept(deps, raw, l, ctx), log)
  await listeners.start(opts.listeners)
  const stopKeepAlive = scheduleKeepAlive(opts.tokens, log, opts.keepAliveIntervalMs ?? 6 * 60 * 60_000)
  const addresses: Address[] = listeners.addresses
  return {
    addresses,
    connections: () => listeners.open.size,
    reload: (next) => listeners.reload(next),
    async close(graceMs = 10_000): Promise<void> {
      stopKeepAlive()
      await listeners.close(graceMs)
    },
  }
}

/** A new client socket: admitted (door.ts) or refused; an admitted one is served as a Connection. */
function accept(deps: ConnectionDeps, raw: Socket, l: ListenerConfig, ctx: SecureContext | undefined): void {
  const cid = randomBytes(4).toString('hex')
  const client: Socket =
    l.tls?.mode === 'implicit' && ctx ? new TLSSocket(raw, { isServer: true, secureContext: ctx }) : raw
  const entry = deps.door.admit(raw, client, l.protocol, cid)
  if (!entry) return
  new Connection(deps, client, l, ctx, cid, entry).run().catch((e: unknown) => {
    deps.log({
      level: 'error',
      cid,
      proto: l.protocol,
      event: 'internal-error',
      msg: String((e as Error)?.message ?? e),
    })
    client.destroy()
  })
}
