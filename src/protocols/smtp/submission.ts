/**
 * SMTP submission session *after* the client has authenticated, for accounts whose mail goes out
 * through Microsoft Graph (issue 16): there is no upstream SMTP server to splice to, so the proxy
 * itself receives each mail transaction (RFC 5321 §3.3: MAIL, RCPT, DATA) and hands the message on
 * as a `submit` action; the proxy answers with `submitted(reply)` once Graph has decided. Bytes in,
 * actions out, like the pre-auth session (smtp/session.ts), which has already sent the 235.
 *
 * This module frames the client's input: command lines (bounded; smtp/submission-commands.ts
 * answers them), message data (RFC 5321 §4.5.2: dot-stuffing removed, ended only by CRLF "." CRLF,
 * so a bare LF or CR "." line is data: the SMTP smuggling class, CVE-2023-51765), and input held
 * while a message is being submitted (RFC 2920 PIPELINING: answered in order once the verdict is in).
 * It also counts commands between messages. Every buffer is bounded: a command line by
 * maxLineBytes, a message by maxMessageBytes (the rest is read and dropped), held input by
 * MAX_QUEUED_BYTES.
 *
 * Owns: the post-auth SMTP dialogue. Must not: open sockets, use timers, talk to the broker or
 * Graph, log, or decide a message's fate.
 */
import { reply, splitCommand } from '../shared/command.js'
import { commandText, readLine } from '../shared/line-reader.js'
import {
  SUBMISSION_COMMANDS,
  type Envelope,
  type SubmissionAction,
  type SubmissionControl,
  type SubmissionOptions,
  type SubmissionState,
} from './submission-commands.js'

export type { Envelope, SubmissionAction, SubmissionOptions } from './submission-commands.js'

export interface SubmissionSession {
  /** bytes from the client (the first call gets whatever the client pipelined after AUTH) */
  feed(data: Buffer): SubmissionAction[]
  /** the verdict on the last 'submit': the full reply line(s) to send, e.g. '250 2.0.0 OK queued as Graph 202' */
  submitted(reply: string): SubmissionAction[]
}

/** Input held while a message is with the proxy; more and the session closes with 421. */
export const MAX_QUEUED_BYTES = 64 * 1024
const DEFAULT_MAX_LINE_BYTES = 4096
// RFC 5321 §4.5.3.1.4: a command line is at least 512 octets, CRLF included.
const MIN_LINE_BYTES = 512
const DEFAULT_MAX_COMMANDS = 100
// RFC 5321 §4.1.2, as createSmtpSession checks: the name goes into replies and must not break a line
const HOSTNAME = /^[\x21-\x7e]+$/
const CR = 0x0d
const LF = 0x0a
const DOT = 0x2e

type Phase = 'command' | 'data' | 'submitting' | 'closed'

interface SessionState extends SubmissionState {
  readonly maxLineBytes: number
  readonly maxCommands: number
  phase: Phase
  /** input not read yet: a partial command line, or the rest of the chunk that ended a message */
  input: Buffer
  /** chunks that arrived while a message is with the proxy, joined once the verdict is in */
  held: Buffer[]
  heldBytes: number
  /** an overlong command line is being skipped up to its LF (RFC 5321 §4.5.3.1.4: 500 then) */
  skipping: boolean
  /** commands since the last message that were not accepted transaction steps */
  commands: number
  /** the message being read after 354 */
  data: DataReader | undefined
  /**
   * the last command line ended in a bare LF: a client that writes LF line ends (a careless
   * script) gets its message ended by LF "." LF too, rather than a wait for a CRLF that never comes
   */
  bareLf: boolean
}

/**
 * The post-auth submission session for one client connection.
 *
 * @see [RFC 5321 §3.3 - Mail Transactions](https://www.rfc-editor.org/rfc/rfc5321.html#section-3.3)
 * @see [RFC 2920 §3.1 - Client use of pipelining](https://www.rfc-editor.org/rfc/rfc2920.html#section-3.1)
 */
export function createSubmissionSession(o: SubmissionOptions): SubmissionSession {
  const st: SessionState = {
    ...checkedOptions(o),
    tx: undefined,
    phase: 'command',
    input: Buffer.alloc(0),
    held: [],
    heldBytes: 0,
    skipping: false,
    commands: 0,
    data: undefined,
    bareLf: false,
  }
  return { feed: (data) => feed(st, data), submitted: (line) => submitted(st, line) }
}

function checkedOptions(
  o: SubmissionOptions,
): Omit<SessionState, 'tx' | 'phase' | 'input' | 'held' | 'heldBytes' | 'skipping' | 'commands' | 'data' | 'bareLf'> {
  if (!HOSTNAME.test(o.hostname)) throw new RangeError('SMTP hostname must be printable ASCII without spaces')
  const positive = (name: string, v: number, min = 1): number => {
    if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${name} must be an integer of at least ${min}`)
    return v
  }
  return {
    host: o.hostname,
    maxMessageBytes: positive('maxMessageBytes', o.maxMessageBytes),
    maxRecipients: positive('maxRecipients', o.maxRecipients),
    maxLineBytes: positive('maxLineBytes', o.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, MIN_LINE_BYTES),
    maxCommands: positive('maxCommands', o.maxCommands ?? DEFAULT_MAX_COMMANDS),
  }
}

function feed(st: SessionState, data: Buffer): SubmissionAction[] {
  if (st.phase === 'closed' || data.length === 0) return []
  const out: SubmissionAction[] = []
  if (st.phase === 'submitting') {
    st.held.push(data)
    st.heldBytes += data.length
  } else {
    st.input = st.input.length === 0 ? data : Buffer.concat([st.input, data])
    run(st, out)
  }
  return checkQueue(st, out)
}

/** While a message is with the proxy, input is held, but not without bound. */
function checkQueue(st: SessionState, out: SubmissionAction[]): SubmissionAction[] {
  if (st.phase === 'submitting' && st.input.length + st.heldBytes > MAX_QUEUED_BYTES) {
    close(st, out, `421 4.7.0 ${st.host} Too much input while a message is submitted, closing connection`)
  }
  return out
}

function close(st: SessionState, out: SubmissionAction[], line: string): void {
  out.push({ type: 'close', data: `${line}\r\n` })
  st.phase = 'closed'
  st.input = Buffer.alloc(0)
  st.held = []
  st.heldBytes = 0
  st.data = undefined
  st.tx = undefined
}

const control = (st: SessionState): SubmissionControl => ({
  startData: () => {
    st.phase = 'data'
    st.data = new DataReader(st.maxMessageBytes, st.bareLf)
  },
  close: (out, line) => close(st, out, line),
})

/** Read input until it runs out or the session waits for a verdict or has closed. */
function run(st: SessionState, out: SubmissionAction[]): void {
  const ctl = control(st)
  for (;;) {
    if (st.phase === 'data') {
      if (!readData(st, out)) return
      continue
    }
    if (st.phase !== 'command') return
    const line = nextLine(st)
    if (line === 'partial') return
    command(st, line, out, ctl)
  }
}

/** The next command line, 'too-long' once an overlong line has been skipped to its end, or 'partial'. */
function nextLine(st: SessionState): Buffer | 'too-long' | 'partial' {
  for (;;) {
    if (st.skipping) {
      const lf = st.input.indexOf(LF)
      if (lf < 0) {
        st.input = Buffer.alloc(0) // an overlong line is never buffered
        return 'partial'
      }
      st.input = st.input.subarray(lf + 1)
      st.skipping = false
      return 'too-long'
    }
    // A line ends in CRLF; a bare LF is tolerated as in the pre-auth session (shared/line-reader.ts).
    const r = readLine(st.input, st.maxLineBytes)
    if (r.kind === 'partial') return 'partial'
    if (r.kind === 'line') {
      st.bareLf = r.consumed < 2 || st.input[r.consumed - 2] !== CR
      st.input = st.input.subarray(r.consumed)
      return r.line
    }
    st.skipping = true
    st.input = st.input.subarray(st.maxLineBytes)
  }
}

/** Answer one command line, counting it unless it was an accepted transaction step. */
function command(st: SessionState, line: Buffer | 'too-long', out: SubmissionAction[], ctl: SubmissionControl): void {
  const answer: SubmissionAction[] = []
  const step = line === 'too-long' ? tooLong(answer) : dispatch(st, line, answer, ctl)
  if (step !== 'step' && st.phase !== 'closed') {
    st.commands += 1
    // RFC 5321 §3.8: a server that gives up on a client says 421 and closes. Counting only what
    // is not a transaction step bounds a session that never sends a message, not one that does.
    if (st.commands > st.maxCommands) {
      return close(st, out, `421 4.7.0 ${st.host} Too many commands, closing connection`)
    }
  }
  out.push(...answer)
}

function tooLong(out: SubmissionAction[]): void {
  // RFC 5321 §4.5.3.1.4 / §4.2.4: a line over the limit gets 500; RFC 3463: 5.5.2 syntax error.
  out.push(reply('500 5.5.2 Line too long'))
}

function dispatch(st: SessionState, line: Buffer, out: SubmissionAction[], ctl: SubmissionControl): 'step' | void {
  const text = commandText(line)
  // NUL, bare CR, other controls, invalid UTF-8: refused without echoing anything.
  if (text === undefined) return void out.push(reply('500 5.5.2 Invalid characters in command'))
  // RFC 5321 §2.4: verbs are case-insensitive; the verb ends at the first space.
  const { verb, args } = splitCommand(text)
  const handler = SUBMISSION_COMMANDS.get(verb)
  // RFC 5321 §4.2.4: 500 for a command the server does not recognise.
  if (!handler) return void out.push(reply('500 5.5.2 Command not recognized'))
  return handler({ st, args, out, ctl })
}

/** Feed held input to the message being read; true when the message ended (and was acted on). */
function readData(st: SessionState, out: SubmissionAction[]): boolean {
  const reader = st.data as DataReader
  if (st.input.length === 0) return false
  const consumed = reader.push(st.input)
  st.input = st.input.subarray(consumed)
  if (!reader.ended) return false
  st.data = undefined
  const message = reader.message()
  const envelope = st.tx?.envelope as Envelope
  if (message === undefined) {
    // RFC 1870 §4: a message over the fixed maximum is refused with 552, here once read to its end.
    endMessage(st)
    out.push(reply('552 5.3.4 Message size exceeds fixed maximum message size'))
    return true
  }
  st.phase = 'submitting'
  out.push({ type: 'submit', envelope: { ...envelope, to: [...envelope.to] }, message })
  return true
}

/** A transaction is over, whatever became of it (RFC 5321 §4.1.1.4): a new one may start. */
function endMessage(st: SessionState): void {
  st.tx = undefined
  st.commands = 0
  st.phase = 'command'
}

function submitted(st: SessionState, line: string): SubmissionAction[] {
  if (st.phase === 'closed') return []
  if (st.phase !== 'submitting') throw new Error('SMTP submission session has no message pending')
  const lines = replyLines(line)
  endMessage(st)
  st.input = Buffer.concat([st.input, ...st.held])
  st.held = []
  st.heldBytes = 0
  const out: SubmissionAction[] = []
  // RFC 5321 §3.8: after 421 the server closes the channel.
  if (/^421/.test(lines.at(-1) as string)) {
    close(st, out, lines.join('\r\n'))
    return out
  }
  out.push({ type: 'reply', data: `${lines.join('\r\n')}\r\n` })
  run(st, out)
  return checkQueue(st, out)
}

/**
 * The proxy's verdict as reply lines: each must start with a 2xx-5xx code (RFC 5321 §4.2); other
 * control characters are folded to spaces so no line can be injected.
 */
function replyLines(text: string): string[] {
  const lines = text
    .replace(/\r?\n$/, '')
    .split(/\r\n|\n/)
    .map((l) => l.replace(/[\x00-\x1f\x7f]/g, ' '))
  for (const l of lines) {
    if (!/^[2-5]\d\d(?:[ -]|$)/.test(l)) throw new RangeError('submitted() needs SMTP reply lines ("250 ...")')
  }
  return lines
}

type DotState = 'line-start' | 'dot' | 'dot-cr' | 'cr' | 'mid'

/**
 * Message data after 354 (RFC 5321 §4.5.2), read byte-exactly: a "." that starts a line (after
 * CRLF, or first) is dropped, and the data ends at CRLF "." CRLF, the first CRLF belonging to the
 * message. A bare CR or LF is data and starts no line, so "\n.\n", "\r.\r" and "\r\n.\n" end
 * nothing. At most one byte (a CR after a leading ".") is held back between pushes. Beyond
 * `max` bytes nothing more is stored; the data is still read to its end. The size counted is RFC
 * 1870 §5's: CRLFs included, the end line and the stuffing dots not.
 */
class DataReader {
  readonly #max: number
  /** an LF-only client (its DATA line ended in a bare LF): LF ends lines, LF "." LF the data */
  readonly #lf: boolean
  #state: DotState = 'line-start'
  #buf = Buffer.alloc(0)
  #length = 0
  #oversized = false
  ended = false

  constructor(max: number, lfOnly = false) {
    this.#max = max
    this.#lf = lfOnly
  }

  /** read from `chunk` up to the end of the data; the number of bytes read */
  push(chunk: Buffer): number {
    let i = 0
    while (i < chunk.length && !this.ended) i = this.#step(chunk, i)
    return i
  }

  /** the message, or undefined when it was larger than `max` */
  message(): Buffer | undefined {
    return this.#oversized ? undefined : this.#buf.subarray(0, this.#length)
  }

  /** act on the byte at `i` (or a run of plain bytes from it); where to continue */
  #step(chunk: Buffer, i: number): number {
    const b = chunk[i] as number
    switch (this.#state) {
      case 'mid': {
        // a run of bytes up to the next CR (LF for an LF-only client) is copied at once
        const cr = chunk.indexOf(this.#lf ? LF : CR, i)
        const end = cr < 0 ? chunk.length : cr + 1
        this.#write(chunk.subarray(i, end))
        if (cr >= 0) this.#state = this.#lf ? 'line-start' : 'cr'
        return end
      }
      case 'cr':
        this.#write(chunk.subarray(i, i + 1))
        if (b === LF) this.#state = 'line-start'
        else if (b !== CR) this.#state = 'mid'
        return i + 1
      case 'line-start':
        if (b !== DOT) {
          this.#state = 'mid'
          return i
        }
        this.#state = 'dot' // held: dropped as stuffing, or part of the end line
        return i + 1
      case 'dot':
        if (this.#lf && b === LF) {
          this.ended = true
          return i + 1
        }
        if (b === CR) {
          this.#state = 'dot-cr'
          return i + 1
        }
        this.#state = 'mid' // "." and more on the line: the "." was stuffing (RFC 5321 §4.5.2)
        return i
      case 'dot-cr':
        if (b === LF) {
          this.ended = true
          return i + 1
        }
        this.#write(Buffer.from([CR])) // ".\r" and not LF: the held CR is data after all
        this.#state = 'cr'
        return i
    }
  }

  #write(bytes: Buffer): void {
    if (this.#oversized) return
    if (this.#length + bytes.length > this.#max) {
      this.#oversized = true
      this.#buf = Buffer.alloc(0)
      return
    }
    if (this.#length + bytes.length > this.#buf.length) {
      const size = Math.min(this.#max, Math.max(64 * 1024, this.#buf.length * 2, this.#length + bytes.length))
      const grown = Buffer.alloc(size) // zeroed: no stale heap bytes behind the message
      this.#buf.copy(grown, 0, 0, this.#length)
      this.#buf = grown
    }
    bytes.copy(this.#buf, this.#length)
    this.#length += bytes.length
  }
}
