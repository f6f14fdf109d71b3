/**
 * Argument parsing shared by the commands (node:util parseArgs, strict: unknown flags are errors).
 *
 * Owns: flag tables and their conversion into library options. Must not: do I/O beyond reading
 * files named by flags.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { UsageError } from '../errors.js'
import { addressProblem, quoted } from '../core/address.js'
import type { AccountOptions } from '../providers/resolve.js'
import { closest } from './suggest.js'

export type Options = NonNullable<ParseArgsConfig['options']>

export const COMMON_FLAGS: Options = {
  help: { type: 'boolean', short: 'h' },
  debug: { type: 'boolean' },
  json: { type: 'boolean' },
}

export const PROVIDER_FLAGS: Options = {
  provider: { type: 'string' },
  issuer: { type: 'string' },
  'authorize-url': { type: 'string' },
  'token-url': { type: 'string' },
  'device-url': { type: 'string' },
  'revocation-url': { type: 'string' },
  'client-id': { type: 'string' },
  'client-secret': { type: 'string' },
  'client-secret-file': { type: 'string' },
  'client-auth': { type: 'string' },
  tenant: { type: 'string' },
  scope: { type: 'string' },
  'imap-url': { type: 'string' },
  'pop-url': { type: 'string' },
  'smtp-url': { type: 'string' },
  ca: { type: 'string' },
  sasl: { type: 'string' },
  mailbox: { type: 'string' },
  'sign-in-as': { type: 'string' },
  graph: { type: 'boolean' },
  'graph-url': { type: 'string' },
  send: { type: 'string' },
}

export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>

export function parse(
  command: string,
  args: string[],
  options: Options,
  maxPositionals: number,
): { values: Values; positionals: string[] } {
  describing?.(options)
  let parsed
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (e) {
    const msg = (e as Error).message
      .replace(/^Unknown option '([^']+)'.*$/s, 'unknown option "$1"')
      .replace(/\. To specify a positional.*$/s, '')
    const unknown = /^Unknown option '([^']+)'/.exec((e as Error).message)?.[1]
    const near = unknown === undefined ? undefined : nearFlag(unknown, args, options)
    throw new UsageError(`${command}: ${msg}`, {
      hint: `${near ? `Did you mean "${near}"? ` : ''}Run "mailkey ${command} --help" for the options.`,
    })
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`${command}: unexpected argument "${parsed.positionals[maxPositionals]}"`, {
      hint: `Run "mailkey ${command} --help" for the usage.`,
    })
  }
  return { values: parsed.values as Values, positionals: parsed.positionals }
}

/**
 * The flag a mistyped one was meant to be: "--min-valdity" -> "--min-validity"; a long flag given
 * with one dash ("-json", which parseArgs reads as -j -s -o -n) -> "--json".
 */
function nearFlag(unknown: string, args: string[], options: Options): string | undefined {
  const longs = Object.keys(options)
  if (!unknown.startsWith('--')) {
    const oneDash = args.find((a) => a.startsWith(`${unknown}`) && longs.includes(a.slice(1).split('=')[0] ?? ''))
    return oneDash === undefined ? undefined : `-${oneDash.split('=')[0]}`
  }
  const near = closest(unknown.slice(2), longs)
  return near === undefined ? undefined : `--${near}`
}

let describing: ((options: Options) => void) | undefined

/** For a command that reads its arguments itself (send: sendmail's syntax): its long flags, for completion and the help test. */
export function describeFlags(options: Options): void {
  describing?.(options)
}

/**
 * The flags a command parses, learnt by running it (its --help: parse() is told each flag table it
 * parses with): for shell completion and the help test, so neither keeps a list of its own.
 */
export async function flagsSeenBy(run: () => Promise<unknown>): Promise<Options> {
  const seen: Options = {}
  describing = (o) => Object.assign(seen, o)
  try {
    await run()
  } finally {
    describing = undefined
  }
  return seen
}

const str = (v: Values, k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined)

export function accountOptions(email: string, v: Values): AccountOptions {
  const o: AccountOptions = { email }
  const map: [string, keyof AccountOptions][] = [
    ['provider', 'provider'],
    ['issuer', 'issuer'],
    ['authorize-url', 'authorizeUrl'],
    ['token-url', 'tokenUrl'],
    ['device-url', 'deviceUrl'],
    ['revocation-url', 'revocationUrl'],
    ['client-id', 'clientId'],
    ['tenant', 'tenant'],
    ['imap-url', 'imapUrl'],
    ['pop-url', 'popUrl'],
    ['smtp-url', 'smtpUrl'],
    ['graph-url', 'graphUrl'],
  ]
  for (const [flag, key] of map) {
    const val = str(v, flag)
    if (val !== undefined) {
      if (val.trim() === '') throw new UsageError(`--${flag} needs a value`)
      ;(o as unknown as Record<string, string>)[key] = val.trim()
    }
  }
  if (v.graph === true) o.graph = true
  const send = str(v, 'send')
  if (send !== undefined) {
    if (send !== 'smtp' && send !== 'graph' && send !== 'auto')
      throw new UsageError('--send must be "smtp", "graph" (Microsoft Graph) or "auto" (SMTP until it answers 5.7.139)')
    o.send = send
  }
  const clientSecret = clientSecretFlag(v)
  if (clientSecret !== undefined) o.clientSecret = clientSecret
  const auth = str(v, 'client-auth')
  if (auth !== undefined) {
    if (auth !== 'post' && auth !== 'basic')
      throw new UsageError('--client-auth must be "post" (client_secret_post) or "basic" (client_secret_basic)')
    o.clientAuth = auth
  }
  const scope = str(v, 'scope')
  if (scope !== undefined) {
    const scopes = scope.split(/[\s,]+/).filter(Boolean)
    if (scopes.length === 0) throw new UsageError('--scope needs at least one scope')
    o.scopes = scopes
  }
  const ca = str(v, 'ca')
  if (ca !== undefined) {
    const path = resolve(ca)
    const pem = readSmallFile(path, '--ca')
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca "${ca}" holds no PEM certificate`)
    o.ca = path
  }
  const sasl = str(v, 'sasl')
  if (sasl !== undefined) o.sasl = saslFlag(sasl)
  Object.assign(o, mailboxFlags(v))
  return o
}

/** --client-secret or --client-secret-file (a file, or - for stdin); never both */
function clientSecretFlag(v: Values): string | undefined {
  const secret = str(v, 'client-secret')
  const secretFile = str(v, 'client-secret-file')
  if (secret !== undefined && secretFile !== undefined)
    throw new UsageError('give --client-secret or --client-secret-file, not both')
  // --client-secret S stays for scripts, but argv is visible to every user in `ps`: the help,
  // the README and the hints point to --client-secret-file F, or - for stdin
  let clientSecret = secret
  if (secretFile === '-') {
    // stdin can carry one thing: the secret, or the token/address another flag reads from it
    if (v['refresh-token-file'] === '-')
      throw new UsageError(
        '--client-secret-file - and --refresh-token-file - both read stdin: put one of them in a file',
      )
    if (v.paste === true)
      throw new UsageError(
        '--client-secret-file - reads stdin, where --paste takes the address back: put the secret in a file',
      )
    clientSecret = readStdin('--client-secret-file -')
  } else if (secretFile !== undefined) {
    clientSecret = readSmallFile(secretFile, '--client-secret-file')
  }
  if (clientSecret !== undefined && clientSecret.trim() === '')
    throw new UsageError(
      `${secretFile === undefined ? '--client-secret' : `--client-secret-file ${secretFile === '-' ? '- (stdin)' : `"${secretFile}"`}`} gives an empty secret`,
    )
  return clientSecret
}

/** --mailbox (a shared mailbox) and --sign-in-as, checked as addresses */
function mailboxFlags(v: Values): Pick<AccountOptions, 'mailbox' | 'signInAs'> {
  const o: Pick<AccountOptions, 'mailbox' | 'signInAs'> = {}
  const mailbox = str(v, 'mailbox')
  if (mailbox !== undefined) {
    const why = addressProblem(mailbox.trim())
    if (why !== undefined)
      throw new UsageError(`--mailbox ${quoted(mailbox.trim())} is not an e-mail address: ${why}`, {
        hint: "Give the shared mailbox's address, for example --mailbox team@example.com.",
      })
    o.mailbox = mailbox.trim()
  }
  const signInAs = str(v, 'sign-in-as')
  if (signInAs !== undefined) {
    if (!/^[^\s@]+@[^\s@]+$/.test(signInAs.trim()))
      throw new UsageError(`--sign-in-as "${signInAs}" is not an e-mail address`)
    o.signInAs = signInAs.trim()
  }
  return o
}

export function saslFlag(v: string): 'XOAUTH2' | 'OAUTHBEARER' {
  const m = v.toUpperCase()
  if (m !== 'XOAUTH2' && m !== 'OAUTHBEARER') throw new UsageError(`--sasl must be xoauth2 or oauthbearer, not "${v}"`)
  return m
}

export function readSmallFile(path: string, flag: string): string {
  try {
    const text = readFileSync(path, 'utf8')
    if (text.length > 1024 * 1024) throw new UsageError(`${flag} "${path}" is larger than 1 MiB`)
    return text.trim()
  } catch (e) {
    if (e instanceof UsageError) throw e
    throw new UsageError(
      `${flag}: cannot read "${path}" (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    )
  }
}

/** All of stdin (a pipe, a file, or a terminal until Ctrl-D), trimmed, at most 1 MiB. */
function readStdin(flag: string): string {
  let text: string
  try {
    text = readFileSync(0, 'utf8')
  } catch (e) {
    throw new UsageError(`${flag}: cannot read stdin (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`)
  }
  if (text.length > 1024 * 1024) throw new UsageError(`${flag}: stdin holds more than 1 MiB`)
  return text.trim()
}

export function needEmail(command: string, positionals: string[]): string {
  const email = positionals[0]
  if (!email)
    throw new UsageError(`${command} needs the account's e-mail address`, {
      hint: `Run "mailkey ${command} you@example.com".`,
    })
  return email
}
