/**
 * The proxy's listening sockets: open one server per listener, replace the set on reload (SIGHUP;
 * back to the old set when the new one cannot be opened), and close them with a grace period for
 * the connections still open. Every accepted socket is counted until it closes.
 *
 * Owns: the servers, their addresses and the set of open client sockets. Must not: read from a
 * client socket or decide about a connection (that is the `accept` callback's job).
 */
import { createServer, type Server, type Socket } from 'node:net'
import { createSecureContext, type SecureContext } from 'node:tls'
import type { Log } from './door.js'
import type { ProxyProtocol } from './upstream.js'

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

export type Address = { protocol: ProxyProtocol; host: string; port: number }

/** A new client socket on listener `l` (`ctx`: its TLS context, if it has TLS). */
export type Accept = (raw: Socket, l: ListenerConfig, ctx: SecureContext | undefined) => void

export class Listeners {
  /** where the current listeners listen (the same array, updated in place on reload) */
  readonly addresses: Address[] = []
  /** open client connections */
  readonly open = new Set<Socket>()
  readonly #servers: Server[] = []
  #current: ListenerConfig[] = []
  readonly #accept: Accept
  readonly #log: Log

  constructor(accept: Accept, log: Log) {
    this.#accept = accept
    this.#log = log
  }

  /** Listen on all of `listeners` (the first set). */
  async start(listeners: ListenerConfig[]): Promise<void> {
    this.#current = listeners
    for (const l of listeners) this.#servers.push(await this.#listen(l))
  }

  /**
   * Stop accepting on the old listeners (their open sessions carry on), then listen anew. If the
   * new set cannot be opened (a busy port), go back to the old set.
   */
  async reload(listeners: ListenerConfig[]): Promise<void> {
    const previous = this.#current
    this.#stopAll()
    try {
      for (const l of listeners) this.#servers.push(await this.#listen(l))
      this.#current = listeners
    } catch (e) {
      this.#stopAll()
      for (const l of previous) this.#servers.push(await this.#listen(l))
      throw e
    }
  }

  /** Stop accepting; wait up to graceMs for open connections to end, then end them. */
  async close(graceMs: number): Promise<void> {
    // server.close() stops accepting at once; its callback waits for every connection to end.
    const closed = Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
    const deadline = Date.now() + graceMs
    while (this.open.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    for (const s of this.open) s.destroy()
    await closed
  }

  #stopAll(): void {
    for (const srv of this.#servers.splice(0)) srv.close()
    this.addresses.splice(0)
  }

  async #listen(l: ListenerConfig): Promise<Server> {
    const ctx: SecureContext | undefined = l.tls
      ? createSecureContext({ cert: l.tls.cert, key: l.tls.key, minVersion: 'TLSv1.2' })
      : undefined
    const server = createServer({ pauseOnConnect: false }, (raw) => {
      this.open.add(raw)
      raw.once('close', () => this.open.delete(raw))
      raw.on('error', () => {})
      // Replies are small lines: send each at once (Nagle would hold one back behind an unacked one).
      raw.setNoDelay(true)
      this.#accept(raw, l, ctx)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(l.port, l.host, () => resolve())
    })
    server.on('error', (e) => this.#log({ level: 'error', event: 'listener-error', proto: l.protocol, msg: e.message }))
    const a = server.address()
    this.addresses.push({ protocol: l.protocol, host: l.host, port: typeof a === 'object' && a ? a.port : l.port })
    return server
  }
}
