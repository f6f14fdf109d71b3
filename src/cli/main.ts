/**
 * The CLI entry: picks the command from the command table (table.ts), lazy-loads its module
 * (startup matters: mail clients run `mailkey token` per connection), and is the ONLY place that
 * sets the exit code. Errors become `mailkey: <message>` plus the next command to run, on stderr;
 * a mistyped command or subcommand names the nearest one. `mailkey help <command> [<sub>]` is
 * `mailkey <command> [<sub>] --help`.
 *
 * Owns: dispatch, --help/--version/help, the exit code, top-level error printing. Must not: hold
 * command logic.
 */
import { EXIT, MailkeyError, UsageError, exitCodeOf } from '../errors.js'
import type { CliIO } from './io.js'
import type { SubEntry } from './command.js'
import { TABLE, entryNamed } from './table.js'
import { closest } from './suggest.js'
import { mailkeyVersion } from './version.js'

export type { Command } from './command.js'

export const USAGE = `mailkey: OAuth 2.0 sign-in for IMAP, POP3 and SMTP

Usage:
  mailkey add <email> [--device | --browser | --paste] [provider flags] [--json]
  mailkey import <email> --refresh-token-file F [provider flags]
  mailkey token [<email>] [--sasl xoauth2|oauthbearer] [--json] [--force-refresh]
  mailkey list [--json]
  mailkey status [<email>] [--json]
  mailkey remove <email> [--no-revoke]
  mailkey send [--account EMAIL] [-t] [RECIPIENT ...] < message   (sendmail-style; Graph or SMTP)
  mailkey test <email> [--protocol imap|pop|smtp|graph]... [--mailbox M] [--json]
  mailkey proxy [--imap-port N] [--pop-port N] [--smtp-port N]  |  mailkey proxy password <email>
  mailkey config [<client> <email> [--via proxy]]   (a ready configuration for msmtp, ...)
  mailkey sweep [--json]                 (keep idle grants alive; for cron or a systemd timer)
  mailkey serve [--listen ADDR:PORT]  |  mailkey serve key add NAME --accounts A,B | --all
                                         (a token service for many hosts)
  mailkey store [status | migrate --to file|keyring|passphrase | passphrase]
  mailkey store init [--new-key FILE] | migrate --to postgres://...   (a shared store for many hosts)
  mailkey unlock [--for 8h]  |  mailkey lock      (an encrypted store's key in a background agent)
  mailkey agent [--for 8h]               (that agent in the foreground)
  mailkey completion bash|zsh|fish       (a shell completion script)
  mailkey help <command> [<subcommand>]  (the same as "mailkey <command> [<subcommand>] --help")
  mailkey --version

Provider flags:
  --provider microsoft|google|yahoo|aol|fastmail|NAME   (NAME: [providers.NAME] in config.toml)
  --issuer URL | --authorize-url U --token-url U --device-url U --revocation-url U
  --client-auth post|basic   how a client secret is sent (client_secret_post or client_secret_basic)
  --client-id ID  --client-secret-file F (- for stdin)  --tenant common|organizations|consumers|ID
  --client-secret S   (also works, but other users see it in "ps": prefer --client-secret-file)
  --scope "S1 S2 ..."  --imap-url imaps://host:993  --pop-url pop3s://host:995
  --smtp-url smtp://host:587  --ca FILE  --sasl xoauth2|oauthbearer  --mailbox SHARED@X
  --sign-in-as USER@X   the provider signs this account in as USER@X (an alias); any other user is refused
  --graph [--graph-url URL]   Microsoft: also send through Microsoft Graph (Mail.Send), for mailboxes
                        that refuse SMTP AUTH (535 5.7.139)   --send smtp|graph|auto   how mail goes out

Secrets are never read from the command line (but for --client-secret S): a client secret from
--client-secret-file F (- for stdin), a refresh token from --refresh-token-file F (- for stdin),
the proxy's local password and the store's passphrase from the terminal without echo, else one
line on stdin ([store] passphrase_command first, for the passphrase). Each command's help says.

Run "mailkey <command> --help" for details. Exit codes: 0 ok, 64 usage, 75 try again later,
77 sign-in needed, 78 configuration, 74 token store, 76 protocol, 130 interrupted.
`

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv
  try {
    if (name === undefined || name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
      io.stdout(USAGE)
      return name === undefined ? EXIT.USAGE : EXIT.OK
    }
    if (name === '--version' || name === '-V') {
      io.stdout(`${mailkeyVersion()}\n`)
      return EXIT.OK
    }
    // `mailkey help proxy password` is `mailkey proxy password --help`
    if (name === 'help') return await main([...helpPath(rest), '--help'], io)
    const entry = entryNamed(name)
    if (!entry) throw unknownWord(name, TABLE, 'mailkey')
    checkSubcommand(entry, rest)
    const cmd = await entry.load()
    return (await cmd.run(rest, io)) ?? EXIT.OK
  } catch (e) {
    const { reportError } = await import('./report.js')
    reportError(e, io, {
      debug: rest.includes('--debug'),
      // every command's failure is an `error` line on stdout with --json (docs/json.md), token's too
      json: rest.includes('--json'),
      command: name,
    })
    return e instanceof MailkeyError ? e.exitCode : exitCodeOf(e)
  } finally {
    io.close?.()
  }
}

/** "unknown command", with the nearest known one when the word looks like a typo of it */
function unknownWord(word: string, known: readonly SubEntry[], above: string): UsageError {
  const near = closest(
    word,
    known.map((e) => e.name),
  )
  const w = JSON.stringify(word.slice(0, 40))
  return new UsageError(above === 'mailkey' ? `unknown command ${w}` : `${above.slice(8)}: unknown command ${w}`, {
    hint: near
      ? `Did you mean "${above} ${near}"?`
      : `Run "${above} --help" for the list of ${above === 'mailkey' ? 'commands' : 'subcommands'}.`,
  })
}

/**
 * A command whose first word must be a subcommand (proxy, serve, store, serve key) refuses any
 * other word here, with a suggestion, before its module loads.
 */
function checkSubcommand(entry: SubEntry, rest: string[], above = `mailkey ${entry.name}`): void {
  const subs = entry.subcommands
  const word = rest[0]
  if (!subs || word === undefined || word.startsWith('-')) return
  const sub = subs.find((s) => s.name === word)
  if (sub) return checkSubcommand(sub, rest.slice(1), `${above} ${sub.name}`)
  if ((entry.args ?? []).length === 0) throw unknownWord(word, subs, above)
}

/** the words after `help`, checked: a command and its subcommands */
function helpPath(words: string[]): string[] {
  if (words[0] === 'help') return []
  let known: readonly SubEntry[] = TABLE
  let above = 'mailkey'
  const path: string[] = []
  for (const word of words) {
    const e = known.find((k) => k.name === word)
    if (!e) {
      if (path.length > 0 && known.length === 0) break // `help token you@example.com`: the command's own help
      throw unknownWord(word, known, above)
    }
    path.push(word)
    above += ` ${word}`
    known = e.subcommands ?? []
  }
  return path
}
