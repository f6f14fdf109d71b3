/**
 * The codec step of the IMAP pre-auth session: client bytes framed into commands (RFC 9051 §4.3
 * lines and literals, RFC 7888 LITERAL+), a command's head split into tag, verb and arguments, and
 * the arguments into astrings. It enforces the line, literal and command limits as the bytes
 * arrive, so a client can never make it buffer more than a limit and one socket chunk.
 *
 * Owns: IMAP framing and argument syntax. Must not: answer commands, keep session state beyond the
 * command being assembled, or put any byte of the input into an event it did not frame.
 */
import type { SessionLimits } from '../shared/session.js'

/** A piece of a command: text from a line, or the bytes of a literal. */
export type Part = { text: string } | { literal: Buffer }

export type FrameEvent =
  /** no complete command or line yet: push more bytes */
  | { kind: 'more' }
  /** a complete command; the first part is text, literals (if any) follow their announcing line */
  | { kind: 'command'; parts: Part[] }
  /** a line read as a SASL response (RFC 9051 §6.2.2), trimmed */
  | { kind: 'sasl-line'; line: string }
  /** a synchronizing literal was announced: the client waits for a continuation request */
  | { kind: 'literal-ready' }
  /** the input breaks a limit or the syntax: send `reply`, then close with `* BYE <bye>` */
  | { kind: 'fatal'; reply: string; bye: string }

const MORE: FrameEvent = { kind: 'more' }
const LINE_TOO_LONG: FrameEvent = { kind: 'fatal', reply: '* BAD Line too long', bye: 'Line too long' }
const COMMAND_TOO_LONG: FrameEvent = { kind: 'fatal', reply: '* BAD Command too long', bye: 'Command too long' }
const NUL_IN_COMMAND: FrameEvent = { kind: 'fatal', reply: '* BAD NUL in command', bye: 'Protocol error' }

/**
 * Frames one connection's input into commands (RFC 9051 §4.3, RFC 7888).
 *
 *   const f = new ImapFramer(limits)
 *   f.push(chunk)
 *   for (let e = f.next(false); e.kind !== 'more'; e = f.next(false)) handle(e)
 *
 * `next(saslLine)` reads the next line as a SASL response when `saslLine` is true (no literals).
 */
export class ImapFramer {
  readonly #limits: SessionLimits
  #buf: Buffer = Buffer.alloc(0)
  /** the command being assembled: text and literal parts */
  #parts: Part[] = []
  /** bytes of the command so far, its lines and literals together */
  #partsBytes = 0
  /** bytes still expected for the current literal */
  #literalLeft = 0
  #literalChunks: Buffer[] = []

  constructor(limits: SessionLimits) {
    this.#limits = limits
  }

  push(data: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, data]) : data
  }

  next(saslLine: boolean): FrameEvent {
    for (;;) {
      if (this.#literalLeft > 0) {
        if (!this.#takeLiteral()) return MORE
        continue
      }
      const nl = this.#buf.indexOf(0x0a)
      if (nl < 0) return this.#unterminated()
      if (nl >= this.#limits.maxLineBytes) return LINE_TOO_LONG
      const line = this.#buf.subarray(0, nl).toString('utf8').replace(/\r$/, '')
      this.#buf = this.#buf.subarray(nl + 1)
      this.#partsBytes += nl + 1
      if (this.#partsBytes > this.#limits.maxCommandBytes) return COMMAND_TOO_LONG
      if (/[\x00]/.test(line)) return NUL_IN_COMMAND
      if (saslLine) {
        this.#endCommand()
        return { kind: 'sasl-line', line: line.trim() }
      }
      const lit = /\{(\d{1,10})(\+?)\}$/.exec(line)
      if (lit) {
        const event = this.#announceLiteral(line, lit)
        if (event) return event
        continue
      }
      this.#parts.push({ text: line })
      return { kind: 'command', parts: this.#endCommand() }
    }
  }

  /** forget unread input (STARTTLS: nothing before the TLS negotiation is trusted) */
  clearInput(): void {
    this.#buf = Buffer.alloc(0)
  }

  /** forget everything read so far: the connection is closing */
  discard(): void {
    this.#buf = Buffer.alloc(0)
    this.#parts = []
    this.#literalChunks = []
  }

  /** a copy of the unread input (bytes pipelined after a login, for the upstream), if any */
  leftover(): Buffer | undefined {
    return this.#buf.length ? Buffer.from(this.#buf) : undefined
  }

  /** the command assembled so far, and a fresh one begun */
  #endCommand(): Part[] {
    const parts = this.#parts
    this.#parts = []
    this.#partsBytes = 0
    return parts
  }

  /** Move buffered bytes into the current literal; false when there were none. */
  #takeLiteral(): boolean {
    if (this.#buf.length === 0) return false
    const take = this.#buf.subarray(0, this.#literalLeft)
    this.#literalChunks.push(take)
    this.#literalLeft -= take.length
    // RFC 9051 §4.3: a literal is part of its command; its bytes count against the command's limit
    this.#partsBytes += take.length
    this.#buf = this.#buf.subarray(take.length)
    if (this.#literalLeft === 0) {
      this.#parts.push({ literal: Buffer.concat(this.#literalChunks) })
      this.#literalChunks = []
    }
    return true
  }

  /** No LF buffered: wait, unless the line or the command is already past its limit. */
  #unterminated(): FrameEvent {
    if (this.#buf.length >= this.#limits.maxLineBytes) return LINE_TOO_LONG
    if (this.#partsBytes + this.#buf.length > this.#limits.maxCommandBytes) return COMMAND_TOO_LONG
    return MORE
  }

  /** A line ending in {n} or {n+}: accept the literal, or refuse it before its bytes arrive. */
  #announceLiteral(line: string, lit: RegExpExecArray): FrameEvent | undefined {
    const n = Number(lit[1])
    const head = line.slice(0, lit.index)
    if (n > this.#limits.maxLiteralBytes || this.#partsBytes + n > this.#limits.maxCommandBytes) {
      // RFC 7888 §4: a non-synchronizing literal we refuse must still be skipped; close instead.
      // A chain of literals is refused as soon as the next one would take the command past its
      // limit, before its bytes arrive (issue 11: 1,600 chained 8 KiB literals in one LOGIN).
      const first = this.#parts.length ? ((this.#parts[0] as { text?: string }).text ?? '') : head
      const tag = /^(\S+)/.exec(first)?.[1] ?? '*'
      const what = n > this.#limits.maxLiteralBytes ? 'Literal too large' : 'Command too long'
      return { kind: 'fatal', reply: `${tag} BAD ${what}`, bye: what }
    }
    this.#parts.push({ text: head })
    this.#literalLeft = n
    if (n === 0) this.#parts.push({ literal: Buffer.alloc(0) })
    return lit[2] !== '+' ? { kind: 'literal-ready' } : undefined
  }
}

export interface CommandHead {
  tag: string
  /** upper-cased */
  verb: string
  /** the text after the verb, then the command's other parts */
  args: Part[]
}

/**
 * A command's tag, verb and arguments (RFC 9051 §2.2.1). On a syntax error: the tag to answer BAD
 * with, or "*" when there is none.
 */
export function parseCommand(parts: Part[]): CommandHead | { invalid: true; tag: string } {
  const first = parts[0]
  const head = first && 'text' in first ? first.text : ''
  const m = /^([^\s(){%*"\\\]]+) ([A-Za-z]+)(?: (.*))?$/s.exec(head)
  if (!m) return { invalid: true, tag: /^(\S+)/.exec(head)?.[1] ?? '*' }
  return { tag: m[1] as string, verb: (m[2] as string).toUpperCase(), args: [{ text: m[3] ?? '' }, ...parts.slice(1)] }
}

/**
 * Split command arguments into astrings (RFC 9051 §9: atom / quoted / literal). Returns undefined
 * on a syntax error.
 */
export function tokenize(parts: Part[]): Buffer[] | undefined {
  const out: Buffer[] = []
  for (const p of parts) {
    if ('literal' in p) {
      out.push(p.literal)
      continue
    }
    const s = p.text
    let i = 0
    while (i < s.length) {
      const c = s[i]
      if (c === ' ') {
        i++
        continue
      }
      if (c === '"') {
        let v = ''
        i++
        for (;;) {
          if (i >= s.length) return undefined
          const ch = s[i] as string
          if (ch === '\\') {
            const nx = s[i + 1]
            if (nx !== '"' && nx !== '\\') return undefined // RFC 9051 §4.3: only \" and \\ are quoted-specials
            v += nx
            i += 2
            continue
          }
          if (ch === '"') {
            i++
            break
          }
          v += ch
          i++
        }
        out.push(Buffer.from(v, 'utf8'))
        continue
      }
      let j = i
      while (j < s.length && s[j] !== ' ') j++
      const atom = s.slice(i, j)
      if (/[(){%*"\\]/.test(atom)) return undefined
      out.push(Buffer.from(atom, 'utf8'))
      i = j
    }
  }
  return out
}
