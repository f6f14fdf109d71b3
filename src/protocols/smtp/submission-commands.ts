/**
 * The SMTP commands of the post-auth submission session (smtp/submission.ts): one handler per verb,
 * the mail transaction they build (RFC 5321 §3.3: MAIL, RCPT, DATA), and the parsing of the
 * reverse- and forward-paths and their parameters (RFC 5321 §4.1.2, RFC 1870 SIZE, RFC 6152
 * 8BITMIME, RFC 6531 SMTPUTF8, RFC 4954 §5 AUTH=).
 *
 * Owns: each command's replies and its effect on the transaction. Must not: frame lines, read
 * message data, count commands (smtp/submission.ts does), open sockets or submit anything.
 */
import { reply } from '../shared/command.js'

export interface SubmissionOptions {
  /** printable ASCII, no spaces (as createSmtpSession checks) */
  hostname: string
  /** advertised as SIZE; bigger messages get 552 5.3.4 */
  maxMessageBytes: number
  /** e.g. 500 (Exchange Online's per-message limit); more: 452 4.5.3 */
  maxRecipients: number
  /** command lines, CRLF included (default 4096; RFC 5321 §4.5.3.1.4 min 512) */
  maxLineBytes?: number
  /** non-transaction commands between messages before 421 (default 100) */
  maxCommands?: number
}

export interface Envelope {
  /** reverse-path without <>, '' for the null sender <> */
  from: string
  /** forward-paths without <>, in RCPT order, duplicates removed (case-insensitively), as given */
  to: string[]
  /** MAIL FROM SIZE= (RFC 1870) */
  size?: number
  /** MAIL FROM BODY= (RFC 6152), default 7BIT */
  body: '7BIT' | '8BITMIME'
  /** MAIL FROM SMTPUTF8 (RFC 6531) */
  smtputf8: boolean
}

export type SubmissionAction =
  /** write this to the client (CRLF included) */
  | { type: 'reply'; data: string }
  /** write `data` (if any) and close the client connection */
  | { type: 'close'; data?: string }
  /** hand this message on; answer with `submitted()`. `message` is the unstuffed data, CRLFs included */
  | { type: 'submit'; envelope: Envelope; message: Buffer }

/** A transaction after an accepted MAIL (RFC 5321 §3.3). */
export interface Transaction {
  envelope: Envelope
  /** the recipients accepted so far, lower-cased, to drop duplicates */
  seen: Set<string>
  /** RCPT commands refused in this transaction: DATA then says 554 rather than 503 (RFC 2920 §3.1) */
  refused: number
  /** well-formed RCPT commands in this transaction, repeats and those over the limit included */
  rcpts: number
}

/** What the submission session knows between command lines. */
export interface SubmissionState {
  readonly host: string
  readonly maxMessageBytes: number
  readonly maxRecipients: number
  tx: Transaction | undefined
}

/** What a handler may make the session do. */
export interface SubmissionControl {
  /** DATA was accepted (354 sent): what follows is message data */
  startData(): void
  /** write `line` and close */
  close(out: SubmissionAction[], line: string): void
}

export interface SubmissionCommand {
  st: SubmissionState
  /** the rest of the line after the verb and its space; undefined without a space */
  args: string | undefined
  out: SubmissionAction[]
  ctl: SubmissionControl
}

/**
 * 'step' when the command was an accepted step of a mail transaction (MAIL, a new RCPT, DATA):
 * those do not count toward the limit of commands between messages.
 */
type Handler = (cmd: SubmissionCommand) => 'step' | void

// RFC 5321 §4.1.2 Atom = 1*atext (RFC 5322 §3.2.3); RFC 6531 §3.3 adds UTF8-non-ascii. C1 controls
// and the Unicode line separators stay out: an address goes on into a Graph request.
const U = '\\u00a0-\\u2027\\u202a-\\u{10ffff}'
const ATEXT = `[A-Za-z0-9!#$%&'*+/=?^_\`{|}~\\-${U}]`
// RFC 5321 §4.1.2 Quoted-string: qtextSMTP (%d32-33 / %d35-91 / %d93-126) or quoted-pairSMTP (\ %d32-126)
const QUOTED = `"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e${U}]|\\\\[\\x20-\\x7e])*"`
// RFC 5321 §4.1.2 sub-domain = Let-dig [Ldh-str]; RFC 6531 §3.3: U-labels too
const LET_DIG = `[A-Za-z0-9${U}]`
const SUB_DOMAIN = `${LET_DIG}(?:[A-Za-z0-9\\-${U}]*${LET_DIG})?`
const DOMAIN = `${SUB_DOMAIN}(?:\\.${SUB_DOMAIN})*`
// RFC 5321 §4.1.3 address-literal: "[" and dcontent (%d33-90 / %d94-126) "]", not checked further
const LITERAL = '\\[[\\x21-\\x5a\\x5e-\\x7e]+\\]'
const MAILBOX = new RegExp(`^(?:${ATEXT}+(?:\\.${ATEXT}+)*|${QUOTED})@(?:${DOMAIN}|${LITERAL})$`, 'u')
// RFC 5321 §4.1.2 A-d-l = At-domain *( "," At-domain ), then ":": a source route, to be ignored (§C)
const SOURCE_ROUTE = new RegExp(`^@${DOMAIN}(?:,@${DOMAIN})*:`, 'u')
// RFC 5321 §4.1.2 esmtp-keyword and esmtp-value (RFC 6531 §3.3: UTF-8 allowed in values)
const PARAM = new RegExp(`^([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\\x21-\\x3c\\x3e-\\x7e${U}]+))?$`, 'u')
const NON_ASCII = /[^\x00-\x7f]/

/** `<path> params` split at the path's closing ">" (a quoted local part may hold one), or undefined. */
function splitPath(text: string): { path: string; params: string } | undefined {
  if (!text.startsWith('<')) return undefined
  let quoted = false
  for (let i = 1; i < text.length; i++) {
    const c = text[i]
    if (quoted && c === '\\') i++
    else if (c === '"') quoted = !quoted
    else if (!quoted && c === '>') {
      const after = text.slice(i + 1)
      // RFC 5321 §4.1.1.2: parameters follow the path after a space
      if (after !== '' && !after.startsWith(' ')) return undefined
      return { path: text.slice(1, i), params: after.trim() }
    }
  }
  return undefined
}

/** The mailbox of a path (a source route dropped, RFC 5321 §C / §4.1.1.3), or undefined if malformed. */
function pathMailbox(path: string): string | undefined {
  const route = SOURCE_ROUTE.exec(path)
  const mailbox = route ? path.slice(route[0].length) : path
  return MAILBOX.test(mailbox) ? mailbox : undefined
}

/** esmtp parameters by upper-cased keyword (value '' when none), or the reply refusing them. */
function parseParams(params: string): Map<string, string> | string {
  const out = new Map<string, string>()
  for (const p of params.split(' ').filter((x) => x.length > 0)) {
    const m = PARAM.exec(p)
    if (!m) return '501 5.5.4 Syntax error in parameters'
    const key = (m[1] as string).toUpperCase()
    if (out.has(key)) return `501 5.5.4 Duplicate parameter ${key}`
    out.set(key, m[2] ?? '')
  }
  return out
}

/** The envelope MAIL's parameters describe, or the reply refusing them. */
function mailParams(st: SubmissionState, params: Map<string, string>): Omit<Envelope, 'from' | 'to'> | string {
  const env: Omit<Envelope, 'from' | 'to'> = { body: '7BIT', smtputf8: false }
  for (const [key, value] of params) {
    if (key === 'SIZE') {
      // RFC 1870 §3 (4): SIZE=size-value, 1*20DIGIT; §6.1: over the fixed maximum, 552 at MAIL
      if (!/^\d{1,20}$/.test(value)) return '501 5.5.4 Syntax: SIZE=<bytes>'
      const size = Number(value)
      if (size > st.maxMessageBytes) return '552 5.3.4 Message size exceeds fixed maximum message size'
      env.size = size
    } else if (key === 'BODY') {
      // RFC 6152 §2: BODY=7BIT or BODY=8BITMIME; BINARYMIME (RFC 3030) needs CHUNKING, not offered
      const body = value.toUpperCase()
      if (body === '') return '501 5.5.4 Syntax: BODY=7BIT or BODY=8BITMIME'
      if (body !== '7BIT' && body !== '8BITMIME') return '555 5.5.4 BODY value not supported'
      env.body = body
    } else if (key === 'SMTPUTF8') {
      // RFC 6531 §3.4: the parameter has no value
      if (value !== '') return '501 5.5.4 SMTPUTF8 takes no value'
      env.smtputf8 = true
    } else if (key !== 'AUTH') {
      // RFC 4954 §5: AUTH=<mailbox> may be ignored, so it is (the client is the account itself).
      // RFC 5321 §4.1.1.11: 555 for a parameter the server does not recognise or implement.
      return `555 5.5.4 MAIL FROM parameter ${key} not supported`
    }
  }
  return env
}

/** The text after "FROM:" or "TO:" (a space after the colon tolerated), or undefined. */
function afterKeyword(args: string | undefined, keyword: 'FROM:' | 'TO:'): string | undefined {
  if (args === undefined || args.slice(0, keyword.length).toUpperCase() !== keyword) return undefined
  return args.slice(keyword.length).replace(/^ +/, '')
}

function mail({ st, args, out }: SubmissionCommand): 'step' | void {
  // RFC 5321 §4.1.4: MAIL inside a transaction is out of sequence (RSET first).
  if (st.tx) return void out.push(reply('503 5.5.1 Sender already given'))
  const split = splitPath(afterKeyword(args, 'FROM:') ?? '')
  if (!split) return void out.push(reply('501 5.5.4 Syntax: MAIL FROM:<address> [parameters]'))
  const params = parseParams(split.params)
  if (typeof params === 'string') return void out.push(reply(params))
  const env = mailParams(st, params)
  if (typeof env === 'string') return void out.push(reply(env))
  // RFC 5321 §4.1.1.2: the null reverse-path <> (bounces); else a mailbox, a source route dropped
  const from = split.path === '' ? '' : pathMailbox(split.path)
  if (from === undefined) return void out.push(reply('501 5.1.7 Bad sender address syntax'))
  // RFC 6531 §3.5: a MAIL that needs SMTPUTF8 and lacks it gets 550 ("mailbox unavailable") with
  // X.6.7 (RFC 6531 §4.2: non-ASCII addresses not permitted); a RCPT gets 553, below.
  if (!env.smtputf8 && NON_ASCII.test(from)) {
    return void out.push(reply('550 5.6.7 Non-ASCII address requires SMTPUTF8'))
  }
  st.tx = { envelope: { from, to: [], ...env }, seen: new Set(), refused: 0, rcpts: 0 }
  out.push(reply('250 2.1.0 Sender OK'))
  return 'step'
}

/** The recipient of a RCPT's path, or the reply refusing it. */
function recipient(tx: Transaction, args: string | undefined): string | { refuse: string } {
  const split = splitPath(afterKeyword(args, 'TO:') ?? '')
  if (!split) return { refuse: '501 5.5.4 Syntax: RCPT TO:<address>' }
  // No RCPT parameters are offered (no DSN, RFC 3461): RFC 5321 §4.1.1.11 says 555.
  if (split.params !== '') return { refuse: '555 5.5.4 RCPT TO parameters not supported' }
  // RFC 5321 §4.1.1.3: "<Postmaster>" without a domain is a valid forward-path.
  const to = split.path.toLowerCase() === 'postmaster' ? split.path : pathMailbox(split.path)
  if (to === undefined) return { refuse: '501 5.1.3 Bad recipient address syntax' }
  // RFC 6531 §3.5: 553 ("mailbox name not allowed") with X.6.7 for a RCPT
  if (!tx.envelope.smtputf8 && NON_ASCII.test(to)) return { refuse: '553 5.6.7 Non-ASCII address requires SMTPUTF8' }
  return to
}

function rcpt({ st, args, out }: SubmissionCommand): 'step' | void {
  const tx = st.tx
  // RFC 5321 §4.1.4: RCPT before MAIL is a bad sequence.
  if (!tx) return void out.push(reply('503 5.5.1 Need MAIL command'))
  const to = recipient(tx, args)
  if (typeof to !== 'string') {
    tx.refused += 1
    return void out.push(reply(to.refuse))
  }
  // A pipelining client sends all its RCPTs before it reads a reply: repeats and those over the
  // limit are transaction steps too, up to as many again as the limit (as Postfix's
  // smtpd_recipient_overshoot_limit); past that they count as commands, so RCPTs cannot go on forever.
  tx.rcpts += 1
  const step = tx.rcpts <= 2 * st.maxRecipients ? 'step' : undefined
  const key = to.toLowerCase()
  // The same recipient twice is accepted once.
  if (tx.seen.has(key)) {
    out.push(reply('250 2.1.5 Recipient OK'))
    return step
  }
  // RFC 5321 §4.5.3.1.10: past the limit, 452 (not 552), so the client sends the rest in another
  // transaction (RFC 3463 §3.6: 4.5.3 too many recipients).
  if (tx.envelope.to.length >= st.maxRecipients) {
    tx.refused += 1
    out.push(reply('452 4.5.3 Too many recipients'))
    return step
  }
  tx.seen.add(key)
  tx.envelope.to.push(to)
  out.push(reply('250 2.1.5 Recipient OK'))
  return 'step'
}

function data({ st, args, out, ctl }: SubmissionCommand): 'step' | void {
  // RFC 5321 §4.1.1.4: DATA takes no argument.
  if (args !== undefined) return void out.push(reply('501 5.5.4 Syntax: DATA'))
  if (!st.tx) return void out.push(reply('503 5.5.1 Need MAIL command'))
  if (st.tx.envelope.to.length === 0) {
    // RFC 5321 §3.3 / RFC 2920 §3.1: 554 when every RCPT was refused, 503 when none was given.
    return void out.push(reply(st.tx.refused > 0 ? '554 5.5.1 No valid recipients' : '503 5.5.1 Need RCPT command'))
  }
  // RFC 5321 §4.3.2 / §4.5.2: 354, then data up to CRLF "." CRLF. RFC 2034: no enhanced code on 3xx.
  out.push(reply('354 Start mail input; end with <CRLF>.<CRLF>'))
  ctl.startData()
  return 'step'
}

function ehlo({ st, args, out }: SubmissionCommand): void {
  // RFC 5321 §4.1.1.1: EHLO takes a domain; §4.1.4: it resets any transaction, as RSET does.
  if (args === undefined || args.trim().length === 0) return void out.push(reply('501 5.5.4 Syntax: EHLO domain'))
  st.tx = undefined
  // SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531, PIPELINING RFC 2920, ENHANCEDSTATUSCODES
  // RFC 2034. Not AUTH (RFC 4954 §4: done), STARTTLS (RFC 3207: settled before AUTH), CHUNKING or DSN.
  const lines = [st.host, `SIZE ${st.maxMessageBytes}`, '8BITMIME', 'SMTPUTF8', 'PIPELINING', 'ENHANCEDSTATUSCODES']
  out.push({ type: 'reply', data: lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('') })
}

function helo({ st, args, out }: SubmissionCommand): void {
  if (args === undefined || args.trim().length === 0) return void out.push(reply('501 5.5.4 Syntax: HELO domain'))
  st.tx = undefined
  out.push(reply(`250 ${st.host}`))
}

function rset({ st, out }: SubmissionCommand): void {
  // RFC 5321 §4.1.1.5: RSET aborts the transaction; the greeting stays.
  st.tx = undefined
  out.push(reply('250 2.0.0 OK'))
}

function quit({ st, out, ctl }: SubmissionCommand): void {
  // RFC 5321 §4.1.1.10: 221, then close; an unfinished transaction is dropped.
  ctl.close(out, `221 2.0.0 ${st.host} closing connection`)
}

/** A fixed answer, whatever the arguments. */
const fixed =
  (line: string): Handler =>
  ({ out }) =>
    void out.push(reply(line))

/** Verb -> handler. A Map: a verb such as "constructor" must find nothing. */
export const SUBMISSION_COMMANDS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ['EHLO', ehlo],
  ['HELO', helo],
  ['MAIL', mail],
  ['RCPT', rcpt],
  ['DATA', data],
  ['RSET', rset],
  ['QUIT', quit],
  // RFC 5321 §4.1.1.9: NOOP ignores any argument.
  ['NOOP', fixed('250 2.0.0 OK')],
  ['HELP', fixed('214 2.0.0 mailkey proxy: MAIL FROM, RCPT TO, DATA, as usual')],
  // RFC 4954 §4: after a successful AUTH, another AUTH is refused with 503.
  ['AUTH', fixed('503 5.5.1 Already authenticated')],
  // RFC 3207 §4: STARTTLS comes before AUTH; the session is past that point.
  ['STARTTLS', fixed('503 5.5.1 STARTTLS not available after authentication')],
  // RFC 3030 §2: BDAT needs CHUNKING, which is not offered; RFC 5321 §4.2.4: 502 not implemented.
  ['BDAT', fixed('502 5.5.1 CHUNKING not offered')],
  // RFC 5321 §3.5.3: 252 when the server will not verify but will accept mail for the address.
  ['VRFY', fixed('252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery')],
  // RFC 5321 §3.5.3 / §7.3: EXPN may be left unimplemented (502).
  ['EXPN', fixed('502 5.5.1 EXPN not implemented')],
])
