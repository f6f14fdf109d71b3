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

const RECIPIENT_FIELDS = new Set(['to', 'cc', 'bcc'])

/** The header block: everything before the first empty line (RFC 5322 §2.1). */
function headerBlock(mime: Buffer): string | undefined {
  const text = mime.toString('utf8') // RFC 6532: UTF-8 in header fields
  const m = /\r?\n\r?\n/.exec(text)
  if (m) return text.slice(0, m.index)
  return /^[\x21-\x39\x3b-\x7e]+:/.test(text) ? text : undefined // a message that is all header
}

/** Header fields, unfolded (RFC 5322 §2.2.3), as [lower-case name, value]. */
export function headerFields(mime: Buffer): [string, string][] | undefined {
  const block = headerBlock(mime)
  if (block === undefined) return undefined
  const out: [string, string][] = []
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && out.length > 0) {
      const last = out[out.length - 1] as [string, string]
      last[1] += line
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    out.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1)])
  }
  return out
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
  const flush = (): void => {
    const a = (angle ?? word).trim()
    if (a.includes('@')) out.push(a)
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
      if (a.includes('@')) out.push(a.replace(/^@[^:]*:/, '').trim()) // RFC 5322 §4.4 obs-route
    } else if (angle !== undefined) angle += c
    else if (c === ',' || c === ';') flush()
    else if (c === ':')
      word = '' // a group's display name ends (RFC 5322 §3.4 group)
    else word += /\s/.test(c) ? '' : c
  }
  if (quoted || depth > 0 || angle !== undefined) return undefined
  flush()
  return out
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

const key = (a: string): string => a.toLowerCase()

/** The message Graph is to send for these envelope recipients (rule above). */
export function graphMessageFor(mime: Buffer, envelopeTo: readonly string[]): GraphMessageVerdict {
  const named = headerRecipients(mime)
  if (!named) return { kind: 'unreadable-header', why: 'its To, Cc or Bcc field cannot be read as addresses' }
  const wanted = new Set(envelopeTo.map(key))
  const extra = [...new Set(named.filter((a) => !wanted.has(key(a))))]
  if (extra.length > 0) return { kind: 'extra-header-recipients', addresses: extra }
  const have = new Set(named.map(key))
  const addedBcc = envelopeTo.filter((a) => !have.has(key(a)))
  if (addedBcc.length === 0) return { kind: 'ok', mime, addedBcc }
  const eol = /\r\n/.test(mime.subarray(0, 4096).toString('latin1')) ? '\r\n' : '\n'
  const field = Buffer.from(`Bcc: ${addedBcc.join(',' + eol + ' ')}${eol}`, 'utf8')
  return { kind: 'ok', mime: Buffer.concat([field, mime]), addedBcc }
}
