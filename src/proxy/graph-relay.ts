/**
 * An SMTP client logged in to an account that sends through Microsoft Graph (issue 16): there is
 * no upstream SMTP server to splice to, so the proxy receives the mail transactions itself (the
 * sans-I/O submission session, protocols/smtp/submission.ts) and hands each message to Graph
 * (graph-submit.ts); the client hears Graph's verdict as the reply to its DATA. One message at a
 * time per connection; input that arrives meanwhile waits in the session (PIPELINING).
 *
 * A client that goes away while its message is with Graph does not stop that request: Graph may
 * already have it, and the log must say how it ended.
 *
 * Owns: the client socket after a Graph login, and its idle timeout. Must not: parse SMTP or
 * talk HTTP itself.
 */
import type { Socket } from 'node:net'
import { createSubmissionSession, type SubmissionAction } from '../protocols/smtp/submission.js'
import { GRAPH_MAX_MIME_BYTES } from '../upstream/graph.js'
import { submitViaGraph, type GraphSubmitOptions } from './graph-submit.js'
import { hangUp } from './hangup.js'
import type { Log } from './door.js'
import type { TokenSource } from './token-source.js'

/** RFC 5321 §4.5.3.2.7: a server waits at least 5 minutes for the next command. */
export const RELAY_IDLE_MS = 5 * 60_000

/** Exchange Online's recipient limit per message (500); more get 452 and are sent again by the client. */
const MAX_RECIPIENTS = 500

/**
 * What Graph relays may hold at once in one proxy: each reads a message of up to ~3 MiB into
 * memory and a submission makes a few copies of it (base64, the request), so relays and
 * submissions are counted. A login past MAX_RELAYS is told to try again (454); a submission past
 * MAX_SUBMISSIONS waits its turn (its client waits for the DATA reply anyway).
 */
export const RELAY_LIMITS = { maxRelays: 64, maxSubmissions: 8 } as const

export class RelayBudget {
  #relays = 0
  #submitting = 0
  readonly #waiting: (() => void)[] = []
  readonly limits: { maxRelays: number; maxSubmissions: number }
  constructor(limits: { maxRelays: number; maxSubmissions: number } = RELAY_LIMITS) {
    this.limits = limits
  }

  /** a new relay, unless there are too many */
  enter(): boolean {
    if (this.#relays >= this.limits.maxRelays) return false
    this.#relays++
    return true
  }

  leave(): void {
    this.#relays = Math.max(0, this.#relays - 1)
  }

  /** resolves when this submission may run; call the function it gives when done */
  async submission(): Promise<() => void> {
    if (this.#submitting >= this.limits.maxSubmissions) await new Promise<void>((r) => this.#waiting.push(r))
    else this.#submitting++
    return () => {
      const next = this.#waiting.shift()
      if (next)
        next() // the slot passes on
      else this.#submitting--
    }
  }
}

export interface RelayDeps {
  tokens: Pick<TokenSource, 'record' | 'getAccessToken'>
  log: Log
  cid: string
  account: string
  hostname: string
  idleMs?: number
  graph?: GraphSubmitOptions
  /** the proxy's relay budget; the relay leaves it when the client goes */
  budget: RelayBudget
}

/** Serve the logged-in client until it quits or goes idle; `first`: what it sent after AUTH. */
export function relayToGraph(client: Socket, first: Buffer, d: RelayDeps): void {
  const session = createSubmissionSession({
    hostname: d.hostname,
    maxMessageBytes: GRAPH_MAX_MIME_BYTES,
    maxRecipients: MAX_RECIPIENTS,
  })
  const idleMs = d.idleMs ?? RELAY_IDLE_MS
  let idle: NodeJS.Timeout | undefined
  let closed = false
  let submitting = false
  const touch = (): void => {
    clearTimeout(idle)
    idle = setTimeout(() => {
      d.log({ level: 'info', cid: d.cid, proto: 'smtp', event: 'idle-timeout', account: d.account })
      hangUp(client, '421 4.4.2 Idle for too long, closing connection\r\n')
    }, idleMs)
  }
  const apply = (actions: SubmissionAction[]): void => {
    for (const a of actions) {
      if (closed) return
      if (a.type === 'reply') client.write(a.data)
      else if (a.type === 'close') {
        closed = true
        hangUp(client, a.data)
      } else void submit(a)
    }
  }
  const submit = async (a: Extract<SubmissionAction, { type: 'submit' }>): Promise<void> => {
    // The client waits for our answer now: no idle timeout, and no more of its input read until
    // the verdict (a client that pipelines on must not overflow the session into a 421 while
    // Graph may be taking the message, which its retry would then send twice).
    submitting = true
    clearTimeout(idle)
    client.pause()
    const done = await d.budget.submission()
    const r = await submitViaGraph(d.tokens, d.account, a.envelope, a.message, d.graph)
      // a bug must cost this message a 451, never the proxy (an unhandled rejection ends the process)
      .catch((e: unknown) => ({
        reply: '451 4.3.0 mailkey failed to hand the message to Microsoft Graph; try again',
        accepted: false,
        note: `internal: ${e instanceof Error ? e.message : String(e)}`.slice(0, 200),
      }))
      .finally(done)
    submitting = false
    d.log({
      level: r.accepted ? 'info' : 'warn',
      cid: d.cid,
      proto: 'smtp',
      event: 'graph-submit',
      account: d.account,
      recipients: a.envelope.to.length,
      bytes: a.message.length,
      outcome: r.note,
      reply: r.reply.slice(0, 3),
      ...(closed ? { msg: 'the client left before the answer' } : {}),
    })
    if (closed) return
    touch()
    apply(session.submitted(`${r.reply}\r\n`))
    if (!closed && !submitting) client.resume()
  }
  client.on('data', (chunk: Buffer) => {
    if (!submitting) touch()
    apply(session.feed(chunk))
  })
  client.once('close', () => {
    closed = true
    clearTimeout(idle)
    d.budget.leave()
  })
  client.on('error', () => client.destroy())
  touch()
  if (first.length) apply(session.feed(first))
}
