/**
 * `mailkey send` as a library call (issue 16): one message for one account, submitted the way
 * the account sends (broker/send-mode.ts): through Microsoft Graph, or over SMTP with the
 * account's own token (and, for an `auto` account whose server answers 535 5.7.139, switched to
 * Graph for good when the grant has it). The result is an SMTP-style reply either way, so a
 * caller tells the user the same thing a mail client would hear.
 *
 * Owns: the choice per message (the SMTP transaction is upstream/dialogues.ts smtpSend). Must not:
 * print, read stdin, or exit.
 */
import { submitViaGraph, type GraphSubmitOptions, type SubmitResult } from './graph-submit.js'
import { routeSmtpLogin } from './send-route.js'
import type { TokenSource } from './token-source.js'
import { cleanServerText } from '../core/server-text.js'
import { isPlainAddress } from '../protocols/smtp/mime-recipients.js'
import { loginUpstream } from './upstream.js'
import { smtpSend } from '../upstream/dialogues.js'
import type { LineTransport } from '../upstream/transport.js'

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
  const login = await routeSmtpLogin(route, () =>
    loginUpstream(tokens, 'smtp', m.account, signal, undefined, { keepTransport: true }),
  )
  if (login.graph) return { ...(await submitViaGraph(tokens, m.account, m, m.message, o)), via: 'graph' }
  if (login.outcome !== 'ok' || !login.transport) {
    login.upstream?.socket.destroy()
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
  return { ...(await overSmtp(login.transport, m)), via: 'smtp' }
}

/**
 * The message over the logged-in session (upstream/dialogues.ts smtpSend), each reply within the
 * session's deadline; an abort closes the connection. The server's text is cleaned for the caller.
 */
async function overSmtp(t: LineTransport, m: OutgoingMessage): Promise<SubmitResult> {
  const abort = (): void => t.close()
  m.signal?.addEventListener('abort', abort, { once: true })
  try {
    const r = await smtpSend(t, m)
    const reply = `${r.code} ${cleanServerText(r.text)}`
    return { reply, accepted: r.code === 250, note: r.code === 250 ? 'accepted' : 'refused' }
  } catch (e) {
    return {
      reply: `451 4.4.2 The SMTP server went away (${cleanServerText((e as Error).message)}); try again`,
      accepted: false,
      note: 'lost',
    }
  } finally {
    m.signal?.removeEventListener('abort', abort)
    t.close()
  }
}
