/**
 * The recipients a message names in its own header (To, Cc, Bcc; RFC 5322 §3.6.3), and the
 * message Microsoft Graph is given for an SMTP envelope. Graph's MIME sendMail takes its
 * recipients from these header fields, not from an envelope (learn.microsoft.com/graph/api/
 * user-sendmail: "provide the MIME content with the applicable Internet message headers (To, CC,
 * BCC, Subject)"), while an SMTP client says who gets the message in RCPT TO and usually leaves
 * Bcc recipients out of the header (msmtp, smtplib, nodemailer, git send-email all strip Bcc). So:
 * - envelope recipients the header does not name are added in one Bcc field put before the
 *   message's first line (Exchange delivers to Bcc recipients without showing them); the
 *   message itself follows byte for byte;
 * - header recipients the envelope does not name are refused: Graph would send to them although
 *   the client did not ask (a message sent to some of its header's recipients, a resent message).
 *
 * Owns: header-field address extraction and that rule. Must not: do I/O.
 */

export interface GraphMessagePlan {
  kind: 'ok'
  /** the message to submit (the original, or a Bcc field and the original) */
  mime: Buffer
  /** envelope recipients added as Bcc */
  addedBcc: string[]
}

export type GraphMessageVerdict =
  | GraphMessagePlan
  /** header recipients the envelope does not have */
  | { kind: 'extra-header-recipients'; addresses: string[] }
  /** the header cannot be read as RFC 5322 (no header/body split, or an unreadable address list) */
  | { kind: 'unreadable-header'; why: string }
  /** an envelope recipient that is no plain address (`<postmaster>` without a domain, a line break) */
  | { kind: 'bad-recipient'; address: string }

const RECIPIENT_FIELDS = new Set(['to', 'cc', 'bcc'])

/** The longest header block read (RFC 5322 sets no limit; a real one is a few KiB). */
const MAX_HEADER_BYTES = 1024 * 1024

/** The header block's bytes: everything before the first empty line (RFC 5322 §2.1), or undefined past the cap. */
function headerBytes(mime: Buffer): Buffer | undefined {
  const crlf = mime.indexOf('\r\n\r\n')
  const lf = mime.indexOf('\n\n')
  const ends = [crlf, lf].filter((i) => i >= 0)
  const end = ends.length ? Math.min(...ends) : mime.length // a message that is all header
  return end > MAX_HEADER_BYTES ? undefined : mime.subarray(0, end)
}

/**
 * Header fields, unfolded (RFC 5322 §2.2.3), as [lower-case name, value]; undefined when the
 * header is not plainly RFC 5322: a bare CR, a line that is neither a field nor a continuation,
 * or the obsolete space before the colon (RFC 5322 §4.5). Another reader (Exchange) could read
 * such a header differently from us, and the recipients must be the ones we see.
 */
export function headerFields(mime: Buffer): [string, string][] | undefined {
  const head = headerBytes(mime)
  if (!head) return undefined
  const text = head.toString('utf8') // RFC 6532: UTF-8 in header fields
  if (/\r(?!\n)/.test(text)) return undefined
  const out: [string, string][] = []
  for (const line of text.split(/\r?\n/)) {
    if (line === '') continue
    if (/^[ \t]/.test(line)) {
      const last = out[out.length - 1]
      if (!last) return undefined
      last[1] += line
      continue
    }
    const m = /^([\x21-\x39\x3b-\x7e]+):/.exec(line)
    if (!m) return undefined
    out.push([(m[1] as string).toLowerCase(), line.slice(m[0].length)])
  }
  return out
}

/**
 * The message without its `name` fields (lower-case), folded lines included, the body untouched:
 * sendmail -t and msmtp remove Bcc fields before sending (the recipients still get the message).
 */
export function withoutFields(mime: Buffer, name: string): Buffer {
  const block = headerBytes(mime)
  if (!block) return mime
  // the header's lines with their own line ends (the last one's too), the empty line not
  const eol = mime[block.length] === 0x0d ? 2 : mime[block.length] === 0x0a ? 1 : 0
  const head = mime.subarray(0, block.length + eol)
  const lines = head.toString('latin1').split(/(?<=\n)/) // keep each line's own end
  let dropping = false
  const kept = lines.filter((line) => {
    if (/^[ \t]/.test(line)) return !dropping
    dropping = line.slice(0, line.indexOf(':')).trim().toLowerCase() === name
    return !dropping
  })
  return Buffer.concat([Buffer.from(kept.join(''), 'latin1'), mime.subarray(head.length)])
}

/**
 * The addr-specs of an address-list (RFC 5322 §3.4): mailboxes, angle addresses, groups; quoted
 * strings and (nested) comments skipped. Undefined when the list cannot be read.
 */
export function addressList(value: string): string[] | undefined {
  const out: string[] = []
  let word = ''
  let angle: string | undefined
  let depth = 0
  let quoted = false
  let bad = false
  const flush = (): void => {
    const a = (angle ?? word).trim()
    // a word that is no address (an alias, an encoded word): another reader may resolve it
    if (a.includes('@')) out.push(a)
    else if (a !== '') bad = true
    word = ''
    angle = undefined
  }
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string
    if (quoted) {
      // kept as written: a quoted local part ("john doe"@example.com) is part of the address
      let t = c
      if (c === '\\') t += value[++i] ?? ''
      else if (c === '"') quoted = false
      if (angle !== undefined) angle += t
      else word += t
      continue
    }
    if (depth > 0) {
      if (c === '\\') i++
      else if (c === '(') depth++
      else if (c === ')') depth--
      continue
    }
    if (c === '(') depth++
    else if (c === '"') {
      quoted = true
      if (angle !== undefined) angle += c
      else word += c
    } else if (c === '<') angle = ''
    else if (c === '>') {
      if (angle === undefined) return undefined
      const a = angle
      angle = undefined
      word = ''
      if (a.includes('@'))
        out.push(a.replace(/^@[^:]*:/, '').trim()) // RFC 5322 §4.4 obs-route
      else bad = true
    } else if (angle !== undefined) angle += c
    else if (c === ',' || c === ';') flush()
    else if (c === ':')
      word = '' // a group's display name ends (RFC 5322 §3.4 group)
    else word += /\s/.test(c) ? '' : c
  }
  if (quoted || depth > 0 || angle !== undefined) return undefined
  flush()
  return bad ? undefined : out
}

/** To, Cc and Bcc of a message, or undefined when its header cannot be read. */
export function headerRecipients(mime: Buffer): string[] | undefined {
  const fields = headerFields(mime)
  if (!fields) return undefined
  const all: string[] = []
  for (const [name, value] of fields) {
    if (!RECIPIENT_FIELDS.has(name)) continue
    const list = addressList(value)
    if (!list) return undefined
    all.push(...list)
  }
  return all
}

/**
 * One plain address, as it may go between < > in MAIL FROM / RCPT TO or into a header field we
 * write: no controls or spaces (no line break to inject a field or a command), no list or route
 * separators, no brackets; one "@".
 */
export function isPlainAddress(a: string): boolean {
  return /^[^\x00-\x20\x7f<>()[\],;\\]+@[^\x00-\x20\x7f<>()[\],;:\\"@]+$/.test(a)
}

const key = (a: string): string => a.toLowerCase()

/** The message Graph is to send for these envelope recipients (rule above). */
export function graphMessageFor(mime: Buffer, envelopeTo: readonly string[]): GraphMessageVerdict {
  // what goes into our Bcc field must be one address each: no line breaks, no list separators
  const odd = envelopeTo.find((a) => !isPlainAddress(a))
  if (odd !== undefined) return { kind: 'bad-recipient', address: odd }
  const named = headerRecipients(mime)
  if (!named) return { kind: 'unreadable-header', why: 'its To, Cc or Bcc field cannot be read as addresses' }
  const wanted = new Set(envelopeTo.map(key))
  const extra = [...new Set(named.filter((a) => !wanted.has(key(a))))]
  if (extra.length > 0) return { kind: 'extra-header-recipients', addresses: extra }
  const have = new Set(named.map(key))
  const addedBcc = envelopeTo.filter((a) => !have.has(key(a)))
  if (addedBcc.length === 0) return { kind: 'ok', mime, addedBcc }
  // the line end of the message's own first line
  const nl = mime.indexOf('\n')
  const eol = nl > 0 && mime[nl - 1] === 0x0d ? '\r\n' : nl >= 0 ? '\n' : '\r\n'
  const field = Buffer.from(`Bcc: ${addedBcc.join(',' + eol + ' ')}${eol}`, 'utf8')
  return { kind: 'ok', mime: Buffer.concat([field, mime]), addedBcc }
}
