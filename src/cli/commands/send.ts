/**
 * `mailkey send`: a sendmail-style command (issue 16). The message comes on stdin; recipients are
 * the arguments (and, with -t, the message's To/Cc/Bcc); it goes out the way the account sends:
 * through Microsoft Graph, or over SMTP with the account's token. For msmtp-less setups, git
 * (`sendemail.sendmailcmd`), cron and scripts: quiet on success, the server's reply and the next
 * step on failure, sysexits codes (75: try again later; 77: sign in again; 69: refused).
 */
import { EXIT, UsageError } from '../../errors.js'
import { createMailkey } from '../../mailkey.js'
import { addressList, headerFields, withoutFields } from '../../protocols/smtp/mime-recipients.js'
import { addressProblem, quoted } from '../../core/address.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { describeFlags } from '../flags.js'

const HELP = `Usage: mailkey send [--account EMAIL] [-f FROM] [-t] [-i] [--] [RECIPIENT ...] < message

Sends the message on standard input, like sendmail. The account is --account, else the -f
address, else the message's From address, else the only account. Microsoft accounts whose
mailbox refuses SMTP AUTH ("mailkey add EMAIL --graph") send through Microsoft Graph, which
files the message in Sent Items; others send over SMTP with the account's token.

  --account EMAIL  the mailkey account to send with
  -f FROM          the envelope sender (default: the account)
  -t               also send to the message's To, Cc and Bcc
  -i, -oi          accepted (a line with one dot does not end the message here anyway)
  -v               say where the message went
Bcc fields are removed from the message; those recipients still get it (sendmail -t style).
-F, -o..., -od... and -bm are accepted and ignored; other -b modes (-bs, -bv, ...) are refused.

Exit status: 0 sent; 75 try again later; 77 sign in again; 69 refused; 64 usage.
`

/** The largest message read from stdin: Graph's limit is smaller; SMTP servers say their own. */
const MAX_STDIN = 64 * 1024 * 1024

interface SendArgs {
  account?: string
  from?: string
  headers: boolean
  verbose: boolean
  help: boolean
  to: string[]
}

/** sendmail's option syntax (-fADDR or -f ADDR, -oi, -t, ...), which parseArgs cannot read. */
export function parseSendArgs(args: string[]): SendArgs {
  describeFlags({ account: { type: 'string' }, help: { type: 'boolean', short: 'h' } })
  const out: SendArgs = { headers: false, verbose: false, help: false, to: [] }
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    const value = (flag: string): string => {
      if (a.length > flag.length) return a.slice(flag.length)
      const v = args[++i]
      if (v === undefined) throw new UsageError(`send: ${flag} needs a value`)
      return v
    }
    if (a === '--') {
      out.to.push(...args.slice(i + 1))
      break
    }
    if (a === '--help' || a === '-h') out.help = true
    else if (a === '--account' || a.startsWith('--account=')) out.account = a.includes('=') ? a.slice(10) : value(a)
    else if (a.startsWith('-f')) out.from = value('-f')
    else if (a.startsWith('-F'))
      value('-F') // the sender's full name: the From header says it
    else if (a === '-t') out.headers = true
    else if (a === '-v') out.verbose = true
    else if (a === '-i' || a === '-bm' || a.startsWith('-o') || a.startsWith('-d')) continue
    else if (a.startsWith('-b'))
      // -bs (SMTP on stdin), -bv (verify only), -bp, -bi, -bt: other jobs; taken as -bm they would send
      throw new UsageError(`send: ${a} is not supported (only -bm: read a message from stdin and send it)`)
    else if (a.startsWith('-'))
      throw new UsageError(`send: unknown option "${a}"`, { hint: 'Run "mailkey send --help".' })
    else out.to.push(a)
  }
  return out
}

export async function run(args: string[], io: CliIO): Promise<number> {
  const a = parseSendArgs(args)
  if (a.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  if (!io.readAll) throw new UsageError('send: no message on standard input')
  const raw = await io.readAll(MAX_STDIN).catch((e: Error) => {
    throw new UsageError(`send: ${e.message}`, { hint: 'Send messages of at most 64 MiB.' })
  })
  const message = crlf(raw)
  const fields = headerFields(message)
  if (a.headers && !fields)
    throw new UsageError('send -t: the message header cannot be read (a bare CR, or a line that is no field)')
  const to = [...a.to, ...(a.headers ? headerAddresses(fields ?? [], ['to', 'cc', 'bcc']) : [])]
  const recipients = [...new Map(to.map((r) => [r.toLowerCase(), r])).values()]
  if (recipients.length === 0)
    throw new UsageError('send: no recipients', { hint: 'Name them, or use -t to take them from To/Cc/Bcc.' })
  // an address from a script may come from anyone: one plain address each, nothing else
  for (const r of [...recipients, ...(a.from ? [a.from] : [])]) {
    const why = addressProblem(r)
    if (why) throw new UsageError(`send: ${quoted(r)} is not an e-mail address: ${why}`)
  }
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  const fromField = fields?.find(([n]) => n === 'from')?.[1]
  const account = await pickAccount(mk, a, fromField === undefined ? undefined : addressList(fromField)?.[0])
  const { sendMessage } = await import('../../proxy/send-message.js')
  const r = await sendMessage(mk, {
    account,
    from: a.from ?? account,
    to: recipients,
    message: withoutFields(message, 'bcc'),
    signal: io.signal,
  })
  if (r.accepted) {
    if (a.verbose)
      io.stderr(
        `mailkey: sent for ${account} to ${recipients.length} recipient(s) via ${r.via === 'graph' ? 'Microsoft Graph' : 'SMTP'}: ${r.reply}\n`,
      )
    return EXIT.OK
  }
  io.stderr(`mailkey send: ${account}: not sent: ${r.reply}\n`)
  const code = Number(r.reply.slice(0, 3))
  if (code >= 400 && code < 500) return EXIT.TEMPFAIL
  return code === 535 ? EXIT.NOPERM : EXIT.UNAVAILABLE
}

/** The account to send with (rule in the help text). */
async function pickAccount(
  mk: ReturnType<typeof createMailkey>,
  a: SendArgs,
  fromHeader: string | undefined,
): Promise<string> {
  if (a.account) return a.account
  for (const candidate of [a.from, fromHeader]) {
    if (candidate && (await mk.record(candidate).catch(() => undefined))) return candidate
  }
  const { accounts } = await mk.list()
  if (accounts.length === 1) return (accounts[0] as { email: string }).email
  throw new UsageError(
    accounts.length === 0 ? 'send: there is no account to send with' : 'send: which account sends this message?',
    {
      hint:
        accounts.length === 0
          ? 'Add one first: "mailkey add you@example.com".'
          : `Say it with --account (one of: ${accounts.map((x) => x.email).join(', ')}).`,
    },
  )
}

/** The addresses of these fields; a field that cannot be read is an error (its recipients would be lost). */
function headerAddresses(fields: [string, string][], names: string[]): string[] {
  return fields
    .filter(([n]) => names.includes(n))
    .flatMap(([n, v]) => {
      const list = addressList(v)
      if (!list) throw new UsageError(`send -t: the ${n} field cannot be read as addresses`)
      return list
    })
}

/** RFC 5322 §2.1: CRLF line ends; stdin from scripts and git has bare LF. */
export function crlf(b: Buffer): Buffer {
  return Buffer.from(b.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1')
}
