/**
 * `mailkey proxy`: listeners for LOGIN-only clients. Each connection runs a pre-auth session
 * (protocols/*), checks the local password, signs in upstream with OAuth (upstream.ts), then
 * splices client and server byte for byte.
 *
 * Safe defaults: listeners bind 127.0.0.1; a non-loopback listener without TLS is refused by the
 * caller (cli/commands/proxy.ts); pre-auth time, line and literal sizes are bounded; connections
 * and unauthenticated input are capped (admission.ts); one session's failure never touches another.
 *
 * Owns: sockets for mail traffic. Must not: parse protocols or hold tokens.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls'
import { randomBytes } from 'node:crypto'
import type { Mailkey } from '../mailkey.js'
import type { PreAuthSession, SessionOptions, ClientAction } from '../protocols/shared/session.js'
import { createImapSession } from '../protocols/imap/session.js'
import { createPop3Session } from '../protocols/pop3/session.js'
import { createSmtpSession } from '../protocols/smtp/session.js'
import { PasswordStore } from './passwords.js'
import type { PenaltyOptions } from './penalty.js'
import { LoginCheck, busyText, refusalLog } from './login-check.js'
import type { KdfGateOptions, ThrottleOptions } from './throttle.js'
import { throttleSource } from './peer-uid.js'
import { describeHorizon, grantHorizon, needsKeepAlive } from '../broker/horizon.js'
import { accountId } from '../domain/account.js'
import { loginUpstream, type ProxyProtocol } from './upstream.js'
import {
  Admission,
  RefusalLog,
  chunkCost,
  resolveAdmission,
  type AdmissionLimits,
  type AdmissionTicket,
} from './admission.js'
import { hangUp } from './hangup.js'
import { refusalLine, type RefusalReason } from '../protocols/shared/refusals.js'
import { openFileLimit } from '../core/resources.js'
import { listenerAuthPolicy } from './auth-policy.js'

export interface ListenerConfig {
  protocol: ProxyProtocol
  host: string
  port: number
  /** downstream TLS: implicit (TLS from the first byte) or offered with STARTTLS/STLS */
  tls?: { mode: 'implicit' | 'starttls'; cert: string; key: string }
  /** only these accounts may log in here (lower-case addresses); default: any with a local password */
  accounts?: string[]
  /** this server instead of the account's own (imaps://host:993 ...) */
  upstream?: string
  /** PEM file of a private CA for `upstream` (instead of the account's) */
  upstreamCa?: string
  /** offer XOAUTH2/OAUTHBEARER and pass a client's own token through (default off: auth-policy.ts) */
  oauthPassthrough?: boolean
}

export type LogEvent = Record<string, string | number | boolean | undefined>

export interface ProxyOptions {
  mailkey: Mailkey
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

const SESSIONS: Record<ProxyProtocol, (o: SessionOptions) => PreAuthSession> = {
  imap: createImapSession,
  pop3: createPop3Session,
  smtp: createSmtpSession,
}

export async function startProxy(opts: ProxyOptions): Promise<RunningProxy> {
  const log = opts.log ?? (() => {})
  const logins = new LoginCheck(new PasswordStore(opts.mailkey.broker.store), {
    ...(opts.penalty ? { penalty: opts.penalty } : {}),
    ...(opts.throttle ? { throttle: opts.throttle } : {}),
    ...(opts.kdf ? { kdf: opts.kdf } : {}),
  })
  const hasAccount = (account: string): Promise<boolean | undefined> =>
    opts.mailkey.broker.store.read(accountId(account), { secrets: false }).then(
      (r) => r !== undefined,
      () => undefined,
    )
  const open = new Set<Socket>()
  // Connection caps and the pre-auth byte budget (issue 11): refused clients hear why, in their protocol.
  const caps = resolveAdmission(opts.admission, openFileLimit())
  if (caps.warning) log({ level: 'warn', event: 'fd-headroom', msg: caps.warning })
  const admission = new Admission(caps.limits)
  const refusals = new RefusalLog()
  const refuse = (client: Socket, proto: ProxyProtocol, reason: RefusalReason, cid: string, remote?: string): void => {
    const count = refusals.note(reason)
    if (count !== undefined)
      log({ level: 'warn', cid, proto, event: 'refused', reason, ...(remote ? { remote } : {}), count })
    // refused at connect: nothing unread, close as soon as the line is out; refused mid-stream:
    // linger, so that the client can read the line before its unread input turns the close into a reset
    hangUp(client, refusalLine(proto, reason, 'localhost'), { quick: reason === 'busy' || reason === 'source-busy' })
  }
  // Another local user's loopback connections count against the per-source cap under their uid
  // (admission.ts admitLocalUser); found out as soon as the socket table shows the connection.
  const ownSource = typeof process.getuid === 'function' ? `uid:${process.getuid()}` : undefined
  const capLocalUser = (
    raw: Socket,
    client: Socket,
    proto: ProxyProtocol,
    cid: string,
    source: Promise<string>,
  ): void => {
    source.then(
      (s) => {
        if (!s.startsWith('uid:') || s === ownSource || raw.destroyed) return
        const r = admission.admitLocalUser(s)
        if (r === 'source-busy') return refuse(client, proto, r, cid, `${raw.remoteAddress} (${s})`)
        if (raw.destroyed) r()
        else raw.once('close', r)
      },
      () => {},
    )
  }
  const servers: Server[] = []
  const addresses: RunningProxy['addresses'] = []

  async function listen(l: ListenerConfig): Promise<Server> {
    const ctx: SecureContext | undefined = l.tls
      ? createSecureContext({ cert: l.tls.cert, key: l.tls.key, minVersion: 'TLSv1.2' })
      : undefined
    const server = createServer({ pauseOnConnect: false }, (raw) => {
      const cid = randomBytes(4).toString('hex')
      open.add(raw)
      raw.once('close', () => open.delete(raw))
      raw.on('error', () => {})
      // Replies are small lines: send each at once (Nagle would hold one back behind an unacked one).
      raw.setNoDelay(true)
      const client: Socket =
        l.tls?.mode === 'implicit' && ctx ? new TLSSocket(raw, { isServer: true, secureContext: ctx }) : raw
      const ticket = admission.admit(raw.remoteAddress ?? '?')
      if (typeof ticket === 'string') return refuse(client, l.protocol, ticket, cid, raw.remoteAddress)
      raw.once('close', ticket.release)
      const source = throttleSource(
        { address: raw.remoteAddress ?? '?', port: raw.remotePort },
        { address: raw.localAddress, port: raw.localPort },
      )
      capLocalUser(raw, client, l.protocol, cid, source)
      handle(client, l, ctx, cid, ticket, source).catch((e: unknown) => {
        log({
          level: 'error',
          cid,
          proto: l.protocol,
          event: 'internal-error',
          msg: String((e as Error)?.message ?? e),
        })
        client.destroy()
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(l.port, l.host, () => resolve())
    })
    server.on('error', (e) => log({ level: 'error', event: 'listener-error', proto: l.protocol, msg: e.message }))
    const a = server.address()
    addresses.push({ protocol: l.protocol, host: l.host, port: typeof a === 'object' && a ? a.port : l.port })
    return server
  }
  let current = opts.listeners
  for (const l of current) servers.push(await listen(l))

  // Keep grants alive (issue 5): Microsoft drops a refresh token unused for 90 days; a proxy that
  // runs anyway refreshes such grants well before, and says when one will end regardless.
  let keepAliveTimer: NodeJS.Timeout | undefined
  let stopped = false
  const keepAlive = async (): Promise<void> => {
    const mk = opts.mailkey
    const { records } = await mk.broker.store.list()
    for (const r of records) {
      if (r.state !== 'active') continue
      const account = r.settings.email
      const policy = await mk.broker.grantPolicy(r.settings)
      let grant = r.grant
      if (needsKeepAlive(grant, policy, mk.broker.now())) {
        try {
          await mk.getAccessToken(account, { forceRefresh: true })
          log({ level: 'info', event: 'keepalive', account, outcome: 'ok' })
          // the refresh restarted the idle clock: judge the horizon on the new record
          grant = (await mk.broker.store.read(accountId(account), { secrets: false }).catch(() => r))?.grant
        } catch (e) {
          log({ level: 'warn', event: 'keepalive', account, outcome: 'failed', msg: (e as Error).message })
        }
      }
      const h = grantHorizon(grant, policy, mk.broker.now())
      if (h?.warn) log({ level: 'warn', event: 'grant-ending', account, msg: describeHorizon(account, h) })
    }
  }
  const every = opts.keepAliveIntervalMs ?? 6 * 60 * 60_000
  if (every > 0) {
    const tick = (): void => {
      keepAlive()
        .catch((e: unknown) => log({ level: 'error', event: 'keepalive-error', msg: (e as Error).message }))
        .finally(() => {
          if (stopped) return
          keepAliveTimer = setTimeout(tick, every)
          keepAliveTimer.unref()
        })
    }
    keepAliveTimer = setTimeout(tick, 0)
    keepAliveTimer.unref()
  }

  async function handle(
    initial: Socket,
    l: ListenerConfig,
    ctx: SecureContext | undefined,
    cid: string,
    ticket: AdmissionTicket,
    sourceP: Promise<string>,
  ): Promise<void> {
    let client = initial
    const proto = l.protocol
    const address = initial.remoteAddress ?? '?'
    // who is asking (the local user on loopback), for the guess budget and the per-source cap
    const source = (): Promise<string> => sourceP
    const remote = `${address}:${initial.remotePort ?? '?'}`
    log({ level: 'info', cid, proto, event: 'connect', remote })
    const secure = l.tls?.mode === 'implicit'
    const session = SESSIONS[proto]({
      secure,
      starttlsAvailable: l.tls?.mode === 'starttls',
      ...listenerAuthPolicy(l),
      hostname: 'localhost',
    })
    const ac = new AbortController()
    const preAuth = setTimeout(() => {
      log({ level: 'info', cid, proto, event: 'pre-auth-timeout' })
      client.destroy()
    }, opts.preAuthTimeoutMs ?? 120_000)
    // A connection that never sends a command is closed sooner than one that is logging in.
    const firstCommand = setTimeout(() => {
      refuse(client, proto, 'idle', cid)
      onClientGone()
    }, opts.firstCommandTimeoutMs ?? 20_000)
    /**
     * Every listener this pre-auth phase puts on a socket, so that splice() can take them all off:
     * any one of them would keep this whole scope (the session, its buffers, the queue) alive for
     * the life of the spliced connection (bench/README.md, "Proxy": memory per idle session).
     */
    const listeners: [Socket, string, (...a: any[]) => void][] = []
    const on = (sock: Socket, event: string, fn: (...a: any[]) => void, once = false): void => {
      if (once) sock.once(event, fn)
      else sock.on(event, fn)
      listeners.push([sock, event, fn])
    }
    const release = (): void => {
      for (const [sock, event, fn] of listeners.splice(0)) sock.removeListener(event, fn)
    }
    // the client went away: no pre-auth timer, and any sign-in for it stops
    const onClientGone = (): void => {
      clearTimeout(preAuth)
      clearTimeout(firstCommand)
      ac.abort()
    }
    on(client, 'close', onClientGone, true)
    let busy = false
    const queue: Buffer[] = []
    let queuedBytes = 0
    /** input a client may send while its login is being checked (pipelining), before we hang up */
    const MAX_QUEUED = 64 * 1024

    const apply = async (actions: ClientAction[]): Promise<boolean> => {
      for (const a of actions) {
        if (a.type === 'reply') {
          client.write(a.data)
        } else if (a.type === 'close') {
          hangUp(client, a.data)
          return false
        } else if (a.type === 'starttls' && ctx) {
          // Plain-text bytes that arrived after STARTTLS, before the handshake, were not protected
          // by TLS: drop them rather than treat them as sent over TLS (STARTTLS command injection,
          // CVE-2011-0411 class).
          queue.length = 0
          queuedBytes = 0
          client.removeListener('data', onData)
          const plain = client
          const tls = new TLSSocket(plain, { isServer: true, secureContext: ctx })
          tls.on('error', () => tls.destroy())
          tls.on('close', () => plain.destroy())
          client = tls
          on(client, 'data', onData)
          on(client, 'close', onClientGone, true)
        } else if (a.type === 'passthrough' || a.type === 'login') {
          // login: the local password decides; passthrough: the client's own token goes upstream,
          // unless it is the local password (login-check.ts).
          const event = a.type
          const account = a.username
          const allowed = !l.accounts || l.accounts.includes(account.trim().toLowerCase())
          const v = await logins.decide(a, { source, allowed, signal: ac.signal, hasAccount })
          if (v.kind === 'gone' || ac.signal.aborted) return false
          if (v.kind === 'unavailable') {
            log({ level: 'warn', cid, proto, event, account, outcome: 'transient', msg: v.msg })
            if (!(await apply(session.loginResult('transient').actions))) return false
            continue
          }
          if (v.kind === 'refused' || v.kind === 'busy') {
            const busy = v.kind === 'busy'
            log({
              level: 'info',
              cid,
              proto,
              event,
              account,
              outcome: busy ? 'throttled' : 'bad-credentials',
              ...refusalLog(v),
            })
            if (
              !(await apply(
                session.loginResult(
                  busy ? 'transient' : 'bad-credentials',
                  busy ? { text: busyText(v.retryAfterMs) } : undefined,
                ).actions,
              ))
            )
              return false
            continue
          }
          if (v.kind === 'signin' && v.fromPassthrough)
            log({
              level: 'warn',
              cid,
              proto,
              event,
              account,
              mechanism: (a as { mechanism?: string }).mechanism,
              msg: 'the client sent the local password as an OAuth token: taken as a password login, not forwarded',
            })
          // The sign-in ends when the client goes away or at the deadline, whichever comes first.
          // (A plain timer, cleared at once: AbortSignal.timeout would hold its timer and both
          // signals for the full 30 s after every login.)
          const loginTimeoutMs = opts.loginTimeoutMs ?? 30_000
          const lc = new AbortController()
          const stop = (): void => lc.abort()
          const deadline = setTimeout(stop, loginTimeoutMs)
          ac.signal.addEventListener('abort', stop, { once: true })
          let up
          try {
            up = await loginUpstream(opts.mailkey, proto, account, lc.signal, loginTimeoutMs, {
              ...(l.upstream ? { serverOverride: l.upstream } : {}),
              ...(l.upstreamCa ? { caOverride: l.upstreamCa } : {}),
              ...(a.type === 'passthrough' && v.kind === 'forward'
                ? { clientSasl: { mechanism: a.mechanism, response: a.response } }
                : {}),
            })
          } finally {
            clearTimeout(deadline)
            ac.signal.removeEventListener('abort', stop)
          }
          if (v.kind === 'forward') logins.forwarded(await source(), account, up.outcome === 'bad-credentials', v)
          log({
            level: up.outcome === 'ok' ? 'info' : 'warn',
            cid,
            proto,
            event,
            account,
            ...(a.type === 'passthrough' ? { mechanism: a.mechanism } : {}),
            outcome: up.outcome,
            ...(up.reason ? { msg: up.reason } : {}),
          })
          const res = session.loginResult(up.outcome)
          if (!res.done || !up.upstream) {
            up.upstream?.socket.destroy()
            if (!(await apply(res.actions))) return false
            continue
          }
          clearTimeout(preAuth)
          clearTimeout(firstCommand)
          ticket.loggedIn()
          release()
          for (const r of res.actions) if (r.type === 'reply') client.write(r.data)
          splice(
            client,
            up.upstream.socket,
            up.upstream.pending,
            Buffer.concat([...(res.leftover ? [res.leftover] : []), ...queue.splice(0)]),
            cid,
            proto,
          )
          queuedBytes = 0
          return false
        }
      }
      return true
    }

    async function drain(): Promise<void> {
      if (busy) return
      busy = true
      try {
        while (queue.length) {
          const chunk = queue.shift() as Buffer
          queuedBytes -= chunk.length
          const actions = session.feed(chunk)
          if (actions.length) clearTimeout(firstCommand) // the client sent a command (or a literal's announcement)
          if (!(await apply(actions))) {
            queue.length = 0
            client.removeListener('data', onData)
            return
          }
        }
      } finally {
        busy = false
      }
    }
    function onData(chunk: Buffer): void {
      // Input before login is charged to this connection and to all pre-auth connections together.
      const over = ticket.take(chunkCost(chunk.length))
      if (over) {
        client.removeListener('data', onData)
        queue.length = 0
        refuse(client, proto, over, cid)
        onClientGone()
        return
      }
      queuedBytes += chunk.length
      if (queuedBytes > MAX_QUEUED) {
        log({ level: 'warn', cid, proto, event: 'flood', msg: 'too much input before login' })
        client.destroy()
        return
      }
      queue.push(chunk)
      void drain()
    }
    on(client, 'data', onData)
    on(client, 'error', () => client.destroy())
    await apply(session.start())
  }

  function splice(
    client: Socket,
    upstream: Socket,
    fromUpstream: Buffer,
    toUpstream: Buffer,
    cid: string,
    proto: ProxyProtocol,
  ): void {
    if (fromUpstream.length) client.write(fromUpstream)
    if (toUpstream.length) upstream.write(toUpstream)
    client.pipe(upstream)
    upstream.pipe(client)
    const end = (): void => {
      client.destroy()
      upstream.destroy()
    }
    client.once('close', end)
    upstream.once('close', end)
    upstream.on('error', end)
    client.on('error', end)
    log({ level: 'info', cid, proto, event: 'spliced' })
  }

  return {
    addresses,
    connections: () => open.size,
    async reload(listeners: ListenerConfig[]): Promise<void> {
      // Stop accepting on the old listeners (their open sessions carry on), then listen anew.
      // If the new set cannot be opened (a busy port), go back to the old set.
      const stopAll = async (): Promise<void> => {
        await Promise.all(
          servers.splice(0).map(
            (srv) =>
              new Promise<void>((r) => {
                srv.close()
                r()
              }),
          ),
        )
        addresses.splice(0)
      }
      const previous = current
      await stopAll()
      try {
        for (const l of listeners) servers.push(await listen(l))
        current = listeners
      } catch (e) {
        await stopAll()
        for (const l of previous) servers.push(await listen(l))
        throw e
      }
    },
    async close(graceMs = 10_000): Promise<void> {
      stopped = true
      clearTimeout(keepAliveTimer)
      // server.close() stops accepting at once; its callback waits for every connection to end.
      const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
      const deadline = Date.now() + graceMs
      while (open.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      for (const s of open) s.destroy()
      await closed
    },
  }
}
