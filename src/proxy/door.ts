/**
 * The proxy's door: a new client connection is admitted under the connection caps (admission.ts)
 * or refused with a line in its protocol, and a refusal is logged (counted, not one line each).
 * Another local user's loopback connections count against the per-source cap under their uid.
 *
 * Owns: the admit/refuse step of a connection and its refusal lines. Must not: read client input,
 * check passwords or talk upstream.
 */
import type { Socket } from 'node:net'
import { Admission, RefusalLog, resolveAdmission, type AdmissionLimits, type AdmissionTicket } from './admission.js'
import { hangUp } from './hangup.js'
import { throttleSource } from './peer-uid.js'
import type { ProxyProtocol } from './upstream.js'
import { refusalLine, type RefusalReason } from '../protocols/shared/refusals.js'
import { openFileLimit } from '../core/resources.js'

export type LogEvent = Record<string, string | number | boolean | undefined>
export type Log = (e: LogEvent) => void

/** An admitted connection: its share of the caps, and who is asking (the local user on loopback). */
export interface Entry {
  ticket: AdmissionTicket
  source: Promise<string>
}

export class Door {
  readonly #admission: Admission
  readonly #refusals = new RefusalLog()
  readonly #log: Log
  readonly #ownSource = typeof process.getuid === 'function' ? `uid:${process.getuid()}` : undefined

  constructor(limits: Partial<AdmissionLimits> | undefined, log: Log) {
    this.#log = log
    // Connection caps and the pre-auth byte budget (issue 11): refused clients hear why, in their protocol.
    const caps = resolveAdmission(limits, openFileLimit())
    if (caps.warning) log({ level: 'warn', event: 'fd-headroom', msg: caps.warning })
    this.#admission = new Admission(caps.limits)
  }

  /** Admit `raw` (whose client side is `client`, TLS or not) or refuse it: undefined. */
  admit(raw: Socket, client: Socket, proto: ProxyProtocol, cid: string): Entry | undefined {
    const ticket = this.#admission.admit(raw.remoteAddress ?? '?')
    if (typeof ticket === 'string') {
      this.refuse(client, proto, ticket, cid, raw.remoteAddress)
      return undefined
    }
    raw.once('close', ticket.release)
    const source = throttleSource(
      { address: raw.remoteAddress ?? '?', port: raw.remotePort },
      { address: raw.localAddress, port: raw.localPort },
    )
    this.#capLocalUser(raw, client, proto, cid, source)
    return { ticket, source }
  }

  /** Say why in the client's protocol, and hang up. */
  refuse(client: Socket, proto: ProxyProtocol, reason: RefusalReason, cid: string, remote?: string): void {
    const count = this.#refusals.note(reason)
    if (count !== undefined)
      this.#log({ level: 'warn', cid, proto, event: 'refused', reason, ...(remote ? { remote } : {}), count })
    // refused at connect: nothing unread, close as soon as the line is out; refused mid-stream:
    // linger, so that the client can read the line before its unread input turns the close into a reset
    hangUp(client, refusalLine(proto, reason, 'localhost'), { quick: reason === 'busy' || reason === 'source-busy' })
  }

  /**
   * Another local user's loopback connections count against the per-source cap under their uid
   * (admission.ts admitLocalUser); found out as soon as the socket table shows the connection.
   */
  #capLocalUser(raw: Socket, client: Socket, proto: ProxyProtocol, cid: string, source: Promise<string>): void {
    source.then(
      (s) => {
        if (!s.startsWith('uid:') || s === this.#ownSource || raw.destroyed) return
        const r = this.#admission.admitLocalUser(s)
        if (r === 'source-busy') return this.refuse(client, proto, r, cid, `${raw.remoteAddress} (${s})`)
        if (raw.destroyed) r()
        else raw.once('close', r)
      },
      () => {},
    )
  }
}
