/**
 * `mailkey send` as a library call (issue 16): one message for one account, submitted the way
 * the account sends (broker/send-mode.ts): through Microsoft Graph, or over SMTP with the
 * account's own token (and, for an `auto` account whose server answers 535 5.7.139, switched to
 * Graph for good when the grant has it). The result is an SMTP-style reply either way, so a
 * caller tells the user the same thing a mail client would hear.
 *
 * Owns: the choice per message and the SMTP transaction after the upstream login. Must not:
 * print, read stdin, or exit.
 */
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { submitViaGraph, type GraphSubmitOptions, type SubmitResult } from './graph-submit.js'
import { routeSmtpLogin } from './send-route.js'
import type { TokenSource } from './token-source.js'
import { cleanServerText } from '../core/server-text.js'
import { isPlainAddress } from '../protocols/smtp/mime-recipients.js'
import { loginUpstream } from './upstream.js'

export interface OutgoingMessage {
  account: string
  /** the envelope sender (MAIL FROM); '' is the null sender */
  from: string
  to: string[]
  /** the message, CRLF line ends */
  message: Buffer
  signal?: AbortSignal
}

export type SendResult = SubmitResult & { via: 'graph' | 'smtp' }

type Tokens = Pick<TokenSource, 'record' | 'getAccessToken' | 'sendMode' | 'rememberSendMode'>

export async function sendMessage(tokens: Tokens, m: OutgoingMessage, o: GraphSubmitOptions = {}): Promise<SendResult> {
  const odd = [...m.to, ...(m.from ? [m.from] : [])].find((a) => !isPlainAddress(a))
  if (odd !== undefined)
    return {
      reply: `501 5.1.3 ${JSON.stringify(odd)} is not a plain address`,
      accepted: false,
      note: 'bad address',
      via: 'smtp',
    }
  const signal = m.signal ?? new AbortController().signal
  const route = { tokens, account: m.account, signal, log: () => undefined, cid: 'send' }
  const login = await routeSmtpLogin(route, () => loginUpstream(tokens, 'smtp', m.account, signal))
  if (login.graph) return { ...(await submitViaGraph(tokens, m.account, m, m.message, o)), via: 'graph' }
  if (login.outcome !== 'ok' || !login.upstream) {
    // transient: try later (75); reauth and bad credentials: sign in again (77); config: fix a setting (69)
    const code = {
      transient: '454 4.7.0',
      reauth: '535 5.7.8',
      'bad-credentials': '535 5.7.8',
      config: '554 5.3.5',
      ok: '',
    }
    const line = `${code[login.outcome]} ${login.reason ?? 'the SMTP login failed'}`
    return { reply: line, accepted: false, note: login.outcome, via: 'smtp' }
  }
  return {
    ...(await smtpTransaction(login.upstream.socket, login.upstream.pending, m, o.timeoutMs ?? 60_000)),
    via: 'smtp',
  }
}

/** RFC 5321 §3.3: MAIL, RCPT for each recipient, DATA with dot-stuffing (§4.5.2), QUIT. */
async function smtpTransaction(
  socket: Socket | TLSSocket,
  pending: Buffer,
  m: OutgoingMessage,
  timeoutMs: number,
): Promise<SubmitResult> {
  // RFC 5321 §4.5.3.2: a server that does not answer is given up on (a cron job must not hang)
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)))
  const abort = (): void => void socket.destroy(new Error('interrupted'))
  m.signal?.addEventListener('abort', abort, { once: true })
  const lines = replyReader(socket, pending)
  const say = async (cmd: string): Promise<{ code: number; text: string }> => {
    socket.write(`${cmd}\r\n`)
    return await lines.next()
  }
  try {
    const mail = await say(`MAIL FROM:<${m.from}>`)
    if (mail.code !== 250) return refused(mail)
    let accepted = 0
    let lastRefusal: { code: number; text: string } | undefined
    for (const rcpt of m.to) {
      const r = await say(`RCPT TO:<${rcpt}>`)
      if (r.code === 250 || r.code === 251) accepted++
      else lastRefusal = r
    }
    if (accepted === 0) return refused(lastRefusal ?? { code: 554, text: '5.5.1 No valid recipients' })
    if (lastRefusal) return refused(lastRefusal) // all or nothing: a partial send is not what the caller asked for
    const data = await say('DATA')
    if (data.code !== 354) return refused(data)
    socket.write(dotStuffed(m.message))
    const done = await say('.')
    await say('QUIT').catch(() => undefined)
    if (done.code !== 250) return refused(done)
    return { reply: `250 ${cleanServerText(done.text)}`, accepted: true, note: 'accepted' }
  } catch (e) {
    return {
      reply: `451 4.4.2 The SMTP server went away (${(e as Error).message}); try again`,
      accepted: false,
      note: 'lost',
    }
  } finally {
    m.signal?.removeEventListener('abort', abort)
    socket.destroy()
  }
}

const refused = (r: { code: number; text: string }): SubmitResult => ({
  reply: `${r.code} ${cleanServerText(r.text)}`,
  accepted: false,
  note: 'refused',
})

/** RFC 5321 §4.5.2: a line starting with "." gets another; the message ends with CRLF. */
export function dotStuffed(message: Buffer): Buffer {
  let text = message.toString('latin1') // byte for byte
  if (!text.endsWith('\r\n')) text += '\r\n'
  return Buffer.from(text.replace(/^\./, '..').replace(/\r\n\./g, '\r\n..'), 'latin1')
}

/** Multi-line SMTP replies from a socket, one at a time (RFC 5321 §4.2.1), with bounded lines. */
function replyReader(socket: Socket, pending: Buffer): { next(): Promise<{ code: number; text: string }> } {
  let buf = pending.toString('latin1')
  let waiting: (() => void) | undefined
  let ended: Error | undefined
  socket.on('data', (c: Buffer) => {
    buf += c.toString('latin1')
    if (buf.length > 64 * 1024) ended = new Error('the SMTP server sent an over-long reply')
    waiting?.()
  })
  const stop = (): void => {
    ended ??= new Error('the connection closed')
    waiting?.()
  }
  socket.once('close', stop)
  socket.on('error', (e: Error) => {
    ended ??= e
    stop()
  })
  const take = (): { code: number; text: string } | undefined => {
    const lines: string[] = []
    let at = 0
    for (;;) {
      // CRLF, or a bare LF from a careless server (RFC 5321 §2.3.8 asks for CRLF)
      const nl = buf.indexOf('\n', at)
      if (nl < 0) return undefined
      const line = buf.slice(at, nl).replace(/\r$/, '')
      lines.push(line)
      at = nl + 1
      if (!/^\d{3}-/.test(line)) break
    }
    buf = buf.slice(at)
    const last = lines[lines.length - 1] as string
    return {
      code: Number(last.slice(0, 3)) || 0,
      text: lines
        .map((l) => l.slice(4))
        .join(' ')
        .slice(0, 300),
    }
  }
  return {
    async next() {
      for (;;) {
        const r = take()
        if (r) return r
        if (ended) throw ended
        await new Promise<void>((resolve) => (waiting = resolve))
        waiting = undefined
      }
    },
  }
}
