/**
 * Bounded line framing for the pre-auth phase of the line-based mail protocols (IMAP, POP3, SMTP):
 * bytes in, complete lines out, and the unread rest kept for whoever comes next (an IMAP literal,
 * or the upstream connection once the client has logged in).
 *
 * A line ends in CRLF; a bare LF is tolerated too. RFC 5321 §2.3.8 recognises only CRLF, but
 * scripts send bare LF, and before login it cannot change what a line means (the bytes after the
 * login go upstream untouched, framed by the upstream server).
 * A line longer than `maxLineBytes` (terminator included) is reported as 'too-long' as soon as
 * that many bytes have arrived without a LF, so a client can never make us buffer more than
 * `maxLineBytes` plus one socket chunk.
 *
 * Owns: framing and the "is this a clean command line" check. Must not: interpret commands, log,
 * or know which protocol it serves.
 */

export type LineReadResult =
  /** a complete line; `line` excludes the terminator, `crlf` says whether it ended in CRLF */
  | { kind: 'line'; line: Buffer; crlf: boolean }
  /** no complete line yet: push more bytes */
  | { kind: 'partial' }
  /** `maxLineBytes` bytes arrived without a LF; the reader stays in this state */
  | { kind: 'too-long' }

const LF = 0x0a
const CR = 0x0d
const HTAB = 0x09
const DEL = 0x7f

/**
 * Pure form: the first line of `buf`. A line is complete when a LF occurs within the first
 * `maxLineBytes` bytes; if none does and `buf` already holds `maxLineBytes` bytes, the line is too
 * long whatever comes next. On 'line', the caller continues at `buf.subarray(consumed)`.
 */
export function readLine(buf: Buffer, maxLineBytes: number): LineReadResult & { consumed: number } {
  const lf = buf.subarray(0, maxLineBytes).indexOf(LF)
  if (lf < 0) return buf.length >= maxLineBytes ? { kind: 'too-long', consumed: 0 } : { kind: 'partial', consumed: 0 }
  const crlf = lf > 0 && buf[lf - 1] === CR
  return { kind: 'line', line: buf.subarray(0, crlf ? lf - 1 : lf), crlf, consumed: lf + 1 }
}

/**
 * Stateful form over a growing buffer.
 *
 *   const r = new LineReader(8192)
 *   r.push(chunk)
 *   for (let x = r.next(); x.kind === 'line'; x = r.next()) handle(x.line)
 *   r.take(n)     // n raw bytes (an IMAP literal), or undefined until they have arrived
 *   r.drain()     // every unread byte, e.g. the leftover to forward upstream; the reader is emptied
 *   r.clear()     // forget unread bytes (after STARTTLS: plaintext must not be read as TLS-protected)
 *
 * Returned lines are views into the reader's memory; they stay valid (pushing never writes into
 * old buffers) but keep that memory alive, so copy a line you store for long.
 */
export class LineReader {
  readonly maxLineBytes: number
  #buf: Buffer = Buffer.alloc(0)
  #tooLong = false

  constructor(maxLineBytes: number) {
    if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 2) {
      throw new RangeError('maxLineBytes must be an integer of at least 2')
    }
    this.maxLineBytes = maxLineBytes
  }

  /** bytes received and not yet read */
  get size(): number {
    return this.#buf.length
  }

  push(chunk: Buffer): void {
    // After 'too-long' nothing is kept: the caller is closing the connection.
    if (chunk.length === 0 || this.#tooLong) return
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk])
  }

  next(): LineReadResult {
    if (this.#tooLong) return { kind: 'too-long' }
    const r = readLine(this.#buf, this.maxLineBytes)
    if (r.kind === 'too-long') {
      // Nothing after an unframed line can be trusted to start at a command boundary.
      this.#tooLong = true
      this.#buf = Buffer.alloc(0)
      return { kind: 'too-long' }
    }
    if (r.kind === 'partial') return { kind: 'partial' }
    this.#buf = this.#buf.subarray(r.consumed)
    return { kind: 'line', line: r.line, crlf: r.crlf }
  }

  /** exactly `n` raw bytes (no framing, no limit check: the caller bounds `n`), or undefined */
  take(n: number): Buffer | undefined {
    if (this.#buf.length < n) return undefined
    const out = this.#buf.subarray(0, n)
    this.#buf = this.#buf.subarray(n)
    return out
  }

  drain(): Buffer {
    const out = this.#buf
    this.#buf = Buffer.alloc(0)
    return out
  }

  clear(): void {
    this.#buf = Buffer.alloc(0)
  }
}

/**
 * Index of the first byte that has no place in a command line, or -1: NUL, CR (a bare CR inside a
 * line; RFC 5321 §2.3.8, RFC 1939 §3 lines end only in CRLF), the other C0 controls and DEL. HTAB is
 * allowed, since a POP3 password may contain one. Bytes >= 0x80 are left to the caller's UTF-8 check.
 */
export function findControlByte(line: Buffer): number {
  for (let i = 0; i < line.length; i++) {
    const b = line[i] as number
    if ((b < 0x20 && b !== HTAB) || b === DEL) return i
  }
  return -1
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * A command line as text, or undefined when it holds a byte findControlByte() rejects or is not
 * valid UTF-8. Callers answer undefined with a fixed error reply: never echo the line, which may
 * hold a password.
 */
export function commandText(line: Buffer): string | undefined {
  if (findControlByte(line) >= 0) return undefined
  try {
    return utf8.decode(line)
  } catch {
    return undefined
  }
}
