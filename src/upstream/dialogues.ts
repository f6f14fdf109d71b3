/**
 * The three login dialogues with a real mail server, over a LineTransport (no sockets here):
 * the full ones for `mailkey test` (probe/), the login-only ones for the proxy (proxy/upstream.ts).
 * - IMAP (RFC 9051/3501): greeting, [STARTTLS], CAPABILITY, AUTHENTICATE (RFC 4959 SASL-IR when
 *   offered), SELECT INBOX, LOGOUT.
 * - POP3 (RFC 1939/2449/5034): greeting, [STLS], CAPA, AUTH, STAT, QUIT.
 * - SMTP submission (RFC 5321/4954/3207): greeting, EHLO, [STARTTLS, EHLO], AUTH, MAIL FROM,
 *   RSET, QUIT. Nothing is sent.
 *
 * A failure throws ProbeFailure with the stage it happened in and the server's words, for
 * diagnose.ts. The SASL initial response is a Secret; it is revealed only onto the wire.
 *
 * Owns: dialogue logic. Must not: open sockets, print, or decide what a failure means.
 */
import type { Secret } from '../core/secret.js'
import { cleanServerText } from '../core/server-text.js'
import type { SaslMechanism } from '../providers/types.js'
import {
  decodeOauthbearerErrorChallenge,
  decodeXoauth2ErrorChallenge,
  saslErrorAcknowledgement,
} from '../sasl/index.js'
import type { LineTransport } from './transport.js'

export type Stage = 'greeting' | 'starttls' | 'capability' | 'auth' | 'mailbox' | 'command'

export class ProbeFailure extends Error {
  readonly stage: Stage
  /** the server's reply line (never contains our secrets: servers do not echo them) */
  readonly reply: string
  /** the decoded SASL error challenge (RFC 7628 §3.2.2 JSON), when the server sent one */
  readonly challenge: Record<string, unknown> | undefined
  constructor(stage: Stage, message: string, reply: string, challenge?: Record<string, unknown>) {
    super(message)
    this.name = 'ProbeFailure'
    this.stage = stage
    this.reply = reply
    this.challenge = challenge
  }
}

export interface DialogueOptions {
  /** plain connection that must be upgraded with STARTTLS/STLS before anything else */
  starttls: boolean
  /** SASL mechanisms mailkey may use, preferred first */
  mechanisms: SaslMechanism[]
  /** the initial client response for a mechanism (base64) */
  saslResponse: (mech: SaslMechanism) => Secret
  /** MAIL FROM address (SMTP) */
  from?: string
  /** EHLO name (SMTP) */
  ehloName?: string
}

export interface DialogueResult {
  mechanism: SaslMechanism
  /** steps that succeeded, in order, for the report */
  steps: string[]
  /** IMAP: messages in INBOX; POP3: messages in the maildrop */
  messages?: number
  /** bytes in the maildrop (POP3) */
  octets?: number
}

function pickMechanism(offered: string[], wanted: SaslMechanism[], stage: Stage, reply: string): SaslMechanism {
  const up = offered.map((m) => m.toUpperCase())
  const m = wanted.find((w) => up.includes(w))
  if (!m) {
    throw new ProbeFailure(
      stage,
      `the server offers no OAuth mechanism mailkey can use (it offers: ${offered.join(' ') || 'none'}; mailkey needs ${wanted.join(' or ')})`,
      reply,
    )
  }
  return m
}

/**
 * The server's error challenge, decoded: its strings are server text like any reply line, so they
 * are cleaned here (the line was cleaned before decoding, but base64 hides escapes from that).
 */
function decodeChallenge(mech: SaslMechanism, b64: string): Record<string, unknown> | undefined {
  const c = mech === 'XOAUTH2' ? decodeXoauth2ErrorChallenge(b64) : decodeOauthbearerErrorChallenge(b64)
  if (!c) return undefined
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, typeof v === 'string' ? cleanServerText(v) : v]))
}

/** One server turn during SASL: success, a challenge ("+ data" / "334 data"), or a refusal. */
type SaslTurn =
  | { kind: 'ok' }
  | { kind: 'challenge'; data: string }
  | { kind: 'fail'; message: string; reply: string }
  | { kind: 'other' }

/**
 * The client side of a SASL exchange (RFC 4422 §3), shared by the three protocols: send the
 * response after the first challenge unless it went inline, answer an error challenge with the
 * mechanism's dummy response (RFC 7628 §3.2.3), and keep the decoded challenge for diagnosis.
 */
async function saslExchange(
  t: LineTransport,
  mech: SaslMechanism,
  response: string,
  sentInline: boolean,
  next: () => Promise<SaslTurn>,
): Promise<void> {
  let sent = sentInline
  let challenge: Record<string, unknown> | undefined
  for (;;) {
    const turn = await next()
    if (turn.kind === 'ok') return
    if (turn.kind === 'other') continue
    if (turn.kind === 'fail') throw new ProbeFailure('auth', turn.message, turn.reply, challenge)
    if (!sent) {
      await t.write(response)
      sent = true
    } else {
      challenge = decodeChallenge(mech, turn.data)
      await t.write(saslErrorAcknowledgement(mech))
    }
  }
}

// ---------------------------------------------------------------------------------------- IMAP

/** Read until the tagged reply; collects untagged lines. RFC 9051 §7.1: "tag OK|NO|BAD text". */
async function imapUntilTagged(
  t: LineTransport,
  tag: string,
  onLine?: (l: string) => void,
): Promise<{ status: string; line: string }> {
  for (;;) {
    const line = await t.readLine()
    if (line.startsWith(tag + ' ')) {
      const status =
        line
          .slice(tag.length + 1)
          .split(' ', 1)[0]
          ?.toUpperCase() ?? ''
      return { status, line }
    }
    if (line.startsWith('* BYE'))
      throw new ProbeFailure('command', `the server closed the session: ${line.slice(6)}`, line)
    onLine?.(line)
  }
}

function capsFrom(line: string): string[] | undefined {
  const m = /\[CAPABILITY ([^\]]*)\]|^\* CAPABILITY (.*)$/i.exec(line)
  const list = m?.[1] ?? m?.[2]
  return list ? list.trim().split(/\s+/) : undefined
}

/** Greeting, [STARTTLS], CAPABILITY, AUTHENTICATE: what the proxy needs before it splices. */
export async function imapLogin(
  t: LineTransport,
  o: DialogueOptions,
): Promise<DialogueResult & { nextTag: () => string }> {
  const steps: string[] = []
  const greeting = await t.readLine()
  if (!/^\* (OK|PREAUTH)\b/i.test(greeting))
    throw new ProbeFailure('greeting', `unexpected IMAP greeting: ${greeting}`, greeting)
  steps.push('greeting')
  let caps = capsFrom(greeting)
  let n = 0
  const tag = (): string => `mk${++n}`
  const capability = async (): Promise<string[]> => {
    const tg = tag()
    await t.write(`${tg} CAPABILITY`)
    let found: string[] = []
    const r = await imapUntilTagged(t, tg, (l) => (found = capsFrom(l) ?? found))
    if (r.status !== 'OK') throw new ProbeFailure('capability', `CAPABILITY failed: ${r.line}`, r.line)
    return found
  }
  if (o.starttls) {
    caps ??= await capability()
    if (!caps.some((c) => c.toUpperCase() === 'STARTTLS')) {
      throw new ProbeFailure(
        'starttls',
        'the server does not offer STARTTLS, and mailkey will not log in without TLS',
        greeting,
      )
    }
    const tg = tag()
    await t.write(`${tg} STARTTLS`)
    const r = await imapUntilTagged(t, tg)
    if (r.status !== 'OK') throw new ProbeFailure('starttls', `STARTTLS was refused: ${r.line}`, r.line)
    // Anything after the OK and before the handshake was injected by a man in the middle.
    if (t.buffered() > 0)
      throw new ProbeFailure(
        'starttls',
        'the server sent data after agreeing to STARTTLS (STARTTLS injection); refusing to go on',
        r.line,
      )
    await t.startTls()
    steps.push('STARTTLS')
    caps = undefined // RFC 9051 §6.2.1: capabilities must be asked for again after TLS
  }
  caps ??= await capability()
  const offered = caps.filter((c) => /^AUTH=/i.test(c)).map((c) => c.slice(5))
  const mech = pickMechanism(offered, o.mechanisms, 'capability', caps.join(' '))
  steps.push(`CAPABILITY (${offered.join(' ')})`)

  const response = o.saslResponse(mech).reveal()
  const tg = tag()
  const saslIr = caps.some((c) => c.toUpperCase() === 'SASL-IR')
  await t.write(saslIr ? `${tg} AUTHENTICATE ${mech} ${response}` : `${tg} AUTHENTICATE ${mech}`)
  await saslExchange(t, mech, response, saslIr, async () => {
    const line = await t.readLine()
    if (line.startsWith('+')) return { kind: 'challenge', data: line.slice(1).trim() }
    if (line.startsWith(tg + ' ')) {
      return /^\S+ OK\b/i.test(line)
        ? { kind: 'ok' }
        : { kind: 'fail', message: `AUTHENTICATE ${mech} failed: ${line.slice(tg.length + 1)}`, reply: line }
    }
    if (line.startsWith('* BYE'))
      return { kind: 'fail', message: `the server closed the session: ${line.slice(6)}`, reply: line }
    return { kind: 'other' }
  })
  steps.push(`AUTHENTICATE ${mech}`)
  return { mechanism: mech, steps, nextTag: tag }
}

export async function imapDialogue(t: LineTransport, o: DialogueOptions): Promise<DialogueResult> {
  const { mechanism: mech, steps, nextTag: tag } = await imapLogin(t, o)
  const sel = tag()
  await t.write(`${sel} SELECT INBOX`)
  let exists: number | undefined
  const r = await imapUntilTagged(t, sel, (l) => {
    const m = /^\* (\d+) EXISTS\b/i.exec(l)
    if (m) exists = Number(m[1])
  })
  if (r.status !== 'OK')
    throw new ProbeFailure('mailbox', `SELECT INBOX failed: ${r.line.slice(sel.length + 1)}`, r.line)
  steps.push(`SELECT INBOX (${exists ?? '?'} messages)`)
  const out = tag()
  await t.write(`${out} LOGOUT`)
  await imapUntilTagged(t, out).catch(() => undefined)
  return { mechanism: mech, steps, ...(exists !== undefined ? { messages: exists } : {}) }
}

// ---------------------------------------------------------------------------------------- POP3

async function popCommand(t: LineTransport, cmd: string, stage: Stage): Promise<string> {
  await t.write(cmd)
  const line = await t.readLine()
  if (!line.startsWith('+OK')) throw new ProbeFailure(stage, `${cmd.split(' ', 1)[0]} failed: ${line}`, line)
  return line
}

async function popMultiline(t: LineTransport): Promise<string[]> {
  const out: string[] = []
  for (;;) {
    const l = await t.readLine()
    if (l === '.') return out
    out.push(l.startsWith('..') ? l.slice(1) : l) // RFC 1939 §3 byte-stuffing
  }
}

/** Greeting, [STLS], CAPA, AUTH. */
export async function pop3Login(t: LineTransport, o: DialogueOptions): Promise<DialogueResult> {
  const steps: string[] = []
  const greeting = await t.readLine()
  if (!greeting.startsWith('+OK')) throw new ProbeFailure('greeting', `unexpected POP3 greeting: ${greeting}`, greeting)
  steps.push('greeting')
  const capa = async (): Promise<string[]> => {
    await t.write('CAPA')
    const first = await t.readLine()
    if (!first.startsWith('+OK')) throw new ProbeFailure('capability', `CAPA failed: ${first}`, first)
    return popMultiline(t)
  }
  if (o.starttls) {
    const caps = await capa()
    if (!caps.some((c) => c.toUpperCase() === 'STLS'))
      throw new ProbeFailure(
        'starttls',
        'the server does not offer STLS, and mailkey will not log in without TLS',
        caps.join(' '),
      )
    const ok = await popCommand(t, 'STLS', 'starttls')
    if (t.buffered() > 0)
      throw new ProbeFailure(
        'starttls',
        'the server sent data after agreeing to STLS (STARTTLS injection); refusing to go on',
        ok,
      )
    await t.startTls()
    steps.push('STLS')
  }
  const caps = await capa()
  const saslLine = caps.find((c) => /^SASL\b/i.test(c)) ?? ''
  const offered = saslLine.split(/\s+/).slice(1)
  const mech = pickMechanism(offered, o.mechanisms, 'capability', caps.join(' | '))
  steps.push(`CAPA (SASL ${offered.join(' ')})`)
  const response = o.saslResponse(mech).reveal()
  // RFC 5034 §4: an initial response that would push the line past 255 octets goes after a "+".
  const withIr = `AUTH ${mech} ${response}`
  const inline = withIr.length + 2 <= 255
  await t.write(inline ? withIr : `AUTH ${mech}`)
  await saslExchange(t, mech, response, inline, async () => {
    const line = await t.readLine()
    if (line.startsWith('+OK')) return { kind: 'ok' }
    if (line.startsWith('+')) return { kind: 'challenge', data: line.slice(1).trim() }
    return { kind: 'fail', message: `AUTH ${mech} failed: ${line}`, reply: line }
  })
  steps.push(`AUTH ${mech}`)
  return { mechanism: mech, steps }
}

export async function pop3Dialogue(t: LineTransport, o: DialogueOptions): Promise<DialogueResult> {
  const { mechanism: mech, steps } = await pop3Login(t, o)
  const stat = await popCommand(t, 'STAT', 'mailbox')
  const m = /^\+OK (\d+) (\d+)/.exec(stat)
  steps.push(`STAT (${m ? m[1] : '?'} messages)`)
  await popCommand(t, 'QUIT', 'command').catch(() => undefined)
  return { mechanism: mech, steps, ...(m ? { messages: Number(m[1]), octets: Number(m[2]) } : {}) }
}

// ---------------------------------------------------------------------------------------- SMTP

interface SmtpReply {
  code: number
  lines: string[]
  /** the whole reply on one line, for messages */
  text: string
}

async function smtpReply(t: LineTransport): Promise<SmtpReply> {
  const lines: string[] = []
  for (;;) {
    const l = await t.readLine()
    lines.push(l)
    // RFC 5321 §4.2.1: "250-" continues, "250 " (or a bare code) ends the reply.
    if (!/^\d{3}-/.test(l)) {
      const code = Number(l.slice(0, 3))
      return { code: Number.isInteger(code) ? code : 0, lines, text: lines.map((x) => x.slice(4)).join(' ') }
    }
  }
}

async function smtpExpect(t: LineTransport, cmd: string, ok: (c: number) => boolean, stage: Stage): Promise<SmtpReply> {
  await t.write(cmd)
  const r = await smtpReply(t)
  if (!ok(r.code))
    throw new ProbeFailure(stage, `${cmd.split(' ', 1)[0]} failed: ${r.code} ${r.text}`, `${r.code} ${r.text}`)
  return r
}

/** Greeting, EHLO, [STARTTLS, EHLO], AUTH. */
export async function smtpLogin(t: LineTransport, o: DialogueOptions): Promise<DialogueResult> {
  const steps: string[] = []
  const greeting = await smtpReply(t)
  if (greeting.code !== 220)
    throw new ProbeFailure('greeting', `unexpected SMTP greeting: ${greeting.code} ${greeting.text}`, greeting.text)
  steps.push('greeting')
  const ehloName = o.ehloName ?? 'mailkey.localhost'
  let ehlo = await smtpExpect(t, `EHLO ${ehloName}`, (c) => c === 250, 'capability')
  if (o.starttls) {
    if (!ehlo.lines.some((l) => /^250[- ]STARTTLS\b/i.test(l)))
      throw new ProbeFailure(
        'starttls',
        'the server does not offer STARTTLS, and mailkey will not log in without TLS',
        ehlo.text,
      )
    const r = await smtpExpect(t, 'STARTTLS', (c) => c === 220, 'starttls')
    if (t.buffered() > 0)
      throw new ProbeFailure(
        'starttls',
        'the server sent data after agreeing to STARTTLS (STARTTLS injection); refusing to go on',
        r.text,
      )
    await t.startTls()
    steps.push('STARTTLS')
    // RFC 3207 §4.2: forget everything learned before TLS and say EHLO again.
    ehlo = await smtpExpect(t, `EHLO ${ehloName}`, (c) => c === 250, 'capability')
  }
  const authLine = ehlo.lines.map((l) => l.slice(4)).find((l) => /^AUTH[ =]/i.test(l)) ?? ''
  const offered = authLine.slice(5).trim().split(/\s+/).filter(Boolean)
  const mech = pickMechanism(offered, o.mechanisms, 'capability', ehlo.text)
  steps.push(`EHLO (AUTH ${offered.join(' ')})`)
  const response = o.saslResponse(mech).reveal()
  // RFC 4954 §4: no initial response if it would push the command past 512 octets (RFC 5321 §4.5.3.1.4).
  const withIr = `AUTH ${mech} ${response}`
  const inline = withIr.length + 2 <= 512
  await t.write(inline ? withIr : `AUTH ${mech}`)
  await saslExchange(t, mech, response, inline, async () => {
    const r = await smtpReply(t)
    if (r.code === 235) return { kind: 'ok' }
    if (r.code === 334) return { kind: 'challenge', data: r.lines[0]?.slice(4).trim() ?? '' }
    return { kind: 'fail', message: `AUTH ${mech} failed: ${r.code} ${r.text}`, reply: `${r.code} ${r.text}` }
  })
  steps.push(`AUTH ${mech}`)
  return { mechanism: mech, steps }
}

export async function smtpDialogue(t: LineTransport, o: DialogueOptions): Promise<DialogueResult> {
  const { mechanism: mech, steps } = await smtpLogin(t, o)
  if (o.from) {
    await smtpExpect(t, `MAIL FROM:<${o.from}>`, (c) => c === 250, 'command')
    steps.push('MAIL FROM')
    await smtpExpect(t, 'RSET', (c) => c === 250, 'command')
    steps.push('RSET (nothing sent)')
  }
  await smtpExpect(t, 'QUIT', (c) => c === 221, 'command').catch(() => undefined)
  return { mechanism: mech, steps }
}

/**
 * One message over an SMTP session that has logged in (`mailkey send`): RFC 5321 §3.3 MAIL, RCPT
 * for each recipient, DATA with the data dot-stuffed (§4.5.2), QUIT. All or nothing: a refused
 * recipient ends the transaction before DATA. The reply that decided it is returned (250 when
 * the server took the message).
 */
export async function smtpSend(
  t: LineTransport,
  m: { from: string; to: readonly string[]; message: Buffer },
): Promise<{ code: number; text: string }> {
  const say = async (cmd: string): Promise<SmtpReply> => {
    await t.write(cmd)
    return await smtpReply(t)
  }
  const mail = await say(`MAIL FROM:<${m.from}>`)
  if (mail.code !== 250) return mail
  for (const rcpt of m.to) {
    const r = await say(`RCPT TO:<${rcpt}>`)
    if (r.code !== 250 && r.code !== 251) return r
  }
  const data = await say('DATA')
  if (data.code !== 354) return data
  await t.writeBytes(dotStuffed(m.message))
  const done = await say('.')
  await say('QUIT').catch(() => undefined)
  return done
}

/** RFC 5321 §4.5.2: a line starting with "." gets another; the data ends with CRLF. */
export function dotStuffed(message: Buffer): Buffer {
  let text = message.toString('latin1') // byte for byte
  if (!text.endsWith('\r\n')) text += '\r\n'
  return Buffer.from(text.replace(/^\./, '..').replace(/\r\n\./g, '\r\n..'), 'latin1')
}
