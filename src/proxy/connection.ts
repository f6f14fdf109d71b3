/**
 * One client connection, from the greeting to the splice: the pre-auth session (protocols/*) is
 * fed the client's input one chunk at a time (a queue: nothing is read while a login is being
 * checked), its actions are carried out (replies, STARTTLS, close, login via the login gate), and
 * after a successful upstream sign-in client and server are spliced byte for byte. Pre-auth time
 * and input are bounded: a first-command timer, a pre-auth deadline, the admission ticket's byte
 * caps and a cap on input queued behind a login.
 *
 * Owns: the client socket until the splice, and the splice. Must not: parse protocol text, check
 * passwords or talk upstream itself (login-gate.ts).
 */
import type { Socket } from 'node:net'
import { TLSSocket, type SecureContext } from 'node:tls'
import type { PreAuthSession, SessionOptions, ClientAction, LoginResult } from '../protocols/shared/session.js'
import { createImapSession } from '../protocols/imap/session.js'
import { createPop3Session } from '../protocols/pop3/session.js'
import { createSmtpSession } from '../protocols/smtp/session.js'
import { chunkCost, type AdmissionTicket } from './admission.js'
import { listenerAuthPolicy } from './auth-policy.js'
import type { Door, Entry, Log } from './door.js'
import { hangUp } from './hangup.js'
import { relayToGraph } from './graph-relay.js'
import type { ListenerConfig } from './listeners.js'
import type { LoginGate, LoginRequest } from './login-gate.js'
import type { ProxyProtocol, UpstreamLogin } from './upstream.js'

const SESSIONS: Record<ProxyProtocol, (o: SessionOptions) => PreAuthSession> = {
  imap: createImapSession,
  pop3: createPop3Session,
  smtp: createSmtpSession,
}

/** input a client may send while its login is being checked (pipelining), before we hang up */
const MAX_QUEUED = 64 * 1024

/** What every connection shares. */
export interface ConnectionDeps {
  door: Door
  gate: LoginGate
  log: Log
  /** a client must log in within this time */
  preAuthTimeoutMs: number
  /** a client must send its first command within this time */
  firstCommandTimeoutMs: number
}

type Listener = (...a: any[]) => void

export class Connection {
  #client: Socket
  readonly #deps: ConnectionDeps
  readonly #l: ListenerConfig
  readonly #proto: ProxyProtocol
  readonly #ctx: SecureContext | undefined
  readonly #cid: string
  readonly #ticket: AdmissionTicket
  readonly #source: Promise<string>
  readonly #session: PreAuthSession
  readonly #ac = new AbortController()
  #preAuth: NodeJS.Timeout | undefined
  #firstCommand: NodeJS.Timeout | undefined
  /**
   * Every listener this pre-auth phase puts on a socket, so that the splice can take them all off:
   * any one of them would keep this connection (the session, its buffers, the queue) alive for the
   * life of the spliced connection (bench/README.md, "Proxy": memory per idle session).
   */
  readonly #listeners: [Socket, string, Listener][] = []
  readonly #queue: Buffer[] = []
  #queuedBytes = 0
  #busy = false

  constructor(
    deps: ConnectionDeps,
    client: Socket,
    l: ListenerConfig,
    ctx: SecureContext | undefined,
    cid: string,
    entry: Entry,
  ) {
    this.#deps = deps
    this.#client = client
    this.#l = l
    this.#proto = l.protocol
    this.#ctx = ctx
    this.#cid = cid
    this.#ticket = entry.ticket
    this.#source = entry.source
    this.#session = SESSIONS[l.protocol]({
      secure: l.tls?.mode === 'implicit',
      starttlsAvailable: l.tls?.mode === 'starttls',
      ...listenerAuthPolicy(l),
      hostname: 'localhost',
    })
  }

  /** Greet the client and serve it until it logs in (then splice) or goes away. */
  async run(): Promise<void> {
    const client = this.#client
    const { log, preAuthTimeoutMs, firstCommandTimeoutMs } = this.#deps
    const remote = `${client.remoteAddress ?? '?'}:${client.remotePort ?? '?'}`
    log({ level: 'info', cid: this.#cid, proto: this.#proto, event: 'connect', remote })
    this.#preAuth = setTimeout(() => {
      log({ level: 'info', cid: this.#cid, proto: this.#proto, event: 'pre-auth-timeout' })
      this.#client.destroy()
    }, preAuthTimeoutMs)
    // A connection that never sends a command is closed sooner than one that is logging in.
    this.#firstCommand = setTimeout(() => {
      this.#deps.door.refuse(this.#client, this.#proto, 'idle', this.#cid)
      this.#gone()
    }, firstCommandTimeoutMs)
    this.#on(client, 'close', this.#gone, true)
    this.#on(client, 'data', this.#onData)
    this.#on(client, 'error', () => this.#client.destroy())
    await this.#apply(this.#session.start())
  }

  #on(sock: Socket, event: string, fn: Listener, once = false): void {
    if (once) sock.once(event, fn)
    else sock.on(event, fn)
    this.#listeners.push([sock, event, fn])
  }

  /** the client went away: no pre-auth timer, and any sign-in for it stops */
  readonly #gone = (): void => {
    clearTimeout(this.#preAuth)
    clearTimeout(this.#firstCommand)
    this.#ac.abort()
  }

  readonly #onData = (chunk: Buffer): void => {
    // Input before login is charged to this connection and to all pre-auth connections together.
    const over = this.#ticket.take(chunkCost(chunk.length))
    if (over) {
      this.#client.removeListener('data', this.#onData)
      this.#queue.length = 0
      this.#deps.door.refuse(this.#client, this.#proto, over, this.#cid)
      this.#gone()
      return
    }
    this.#queuedBytes += chunk.length
    if (this.#queuedBytes > MAX_QUEUED) {
      this.#deps.log({
        level: 'warn',
        cid: this.#cid,
        proto: this.#proto,
        event: 'flood',
        msg: 'too much input before login',
      })
      this.#client.destroy()
      return
    }
    this.#queue.push(chunk)
    void this.#drain()
  }

  async #drain(): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      while (this.#queue.length) {
        const chunk = this.#queue.shift() as Buffer
        this.#queuedBytes -= chunk.length
        const actions = this.#session.feed(chunk)
        if (actions.length) clearTimeout(this.#firstCommand) // the client sent a command (or a literal's announcement)
        if (!(await this.#apply(actions))) {
          this.#queue.length = 0
          this.#client.removeListener('data', this.#onData)
          return
        }
      }
    } finally {
      this.#busy = false
    }
  }

  /** Carry out the session's actions in order; false: the session is over here (closed or spliced). */
  async #apply(actions: ClientAction[]): Promise<boolean> {
    for (const a of actions) {
      if (a.type === 'reply') {
        this.#client.write(a.data)
      } else if (a.type === 'close') {
        hangUp(this.#client, a.data)
        return false
      } else if (a.type === 'starttls' && this.#ctx) {
        this.#startTls(this.#ctx)
      } else if (a.type === 'passthrough' || a.type === 'login') {
        if (!(await this.#login(a))) return false
      }
    }
    return true
  }

  #startTls(ctx: SecureContext): void {
    // Plain-text bytes that arrived after STARTTLS, before the handshake, were not protected by
    // TLS: drop them rather than treat them as sent over TLS (STARTTLS command injection,
    // CVE-2011-0411 class).
    this.#queue.length = 0
    this.#queuedBytes = 0
    this.#client.removeListener('data', this.#onData)
    const plain = this.#client
    const tls = new TLSSocket(plain, { isServer: true, secureContext: ctx })
    tls.on('error', () => tls.destroy())
    tls.on('close', () => plain.destroy())
    this.#client = tls
    this.#on(tls, 'data', this.#onData)
    this.#on(tls, 'close', this.#gone, true)
  }

  /** A login through the gate; false: the session is over here (the client went, or spliced). */
  async #login(a: LoginRequest): Promise<boolean> {
    const g = await this.#deps.gate.login(a, {
      listener: this.#l,
      cid: this.#cid,
      source: () => this.#source,
      signal: this.#ac.signal,
    })
    if (g.kind === 'gone') return false
    const relay = g.outcome === 'ok' && g.graph ? this.#deps.gate.relayDeps() : undefined
    // too many Graph relays at once: the client is told to try again (454), like an outage
    const full = relay !== undefined && !relay.budget.enter()
    const res = full
      ? this.#session.loginResult('transient', {
          text: 'Too many clients are sending through Microsoft Graph; try again',
        })
      : this.#session.loginResult(g.outcome, g.info)
    if (res.done && relay) {
      this.#relay(res, a.username, relay)
      return false
    }
    if (!res.done || !g.upstream) {
      g.upstream?.socket.destroy()
      return this.#apply(res.actions)
    }
    this.#splice(res, g.upstream)
    return false
  }

  /** The pre-auth phase is over and no socket goes upstream: this connection's mail goes to Graph. */
  #end(res: LoginResult): { client: Socket; pending: Buffer } {
    clearTimeout(this.#preAuth)
    clearTimeout(this.#firstCommand)
    this.#ticket.loggedIn()
    for (const [sock, event, fn] of this.#listeners.splice(0)) sock.removeListener(event, fn)
    const client = this.#client
    for (const r of res.actions) if (r.type === 'reply') client.write(r.data)
    const pending = Buffer.concat([...(res.leftover ? [res.leftover] : []), ...this.#queue.splice(0)])
    this.#queuedBytes = 0
    return { client, pending }
  }

  #relay(res: LoginResult, account: string, deps: ReturnType<LoginGate['relayDeps']>): void {
    const { client, pending } = this.#end(res)
    relayToGraph(client, pending, { ...deps, cid: this.#cid, account, hostname: 'localhost' })
    this.#deps.log({ level: 'info', cid: this.#cid, proto: this.#proto, event: 'graph-relay', account })
  }

  /** Logged in upstream: the rest of the connection is bytes both ways. */
  #splice(res: LoginResult, up: NonNullable<UpstreamLogin['upstream']>): void {
    const { client, pending: toUpstream } = this.#end(res)
    splice(client, up.socket, up.pending, toUpstream)
    this.#deps.log({ level: 'info', cid: this.#cid, proto: this.#proto, event: 'spliced' })
  }
}

function splice(client: Socket, upstream: Socket, fromUpstream: Buffer, toUpstream: Buffer): void {
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
}
