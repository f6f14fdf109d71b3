/**
 * The CLI entry: picks the command, lazy-loads its module (startup matters: mail clients run
 * `mailkey token` per connection), and is the ONLY place that sets the exit code. Errors become
 * `mailkey: <message>` plus the next command to run, on stderr.
 *
 * Owns: dispatch, the exit code, top-level error printing. Must not: hold command logic.
 */
import { EXIT, MailkeyError, UsageError, exitCodeOf } from '../errors.js'
import type { CliIO } from './io.js'

export interface Command {
  run(args: string[], io: CliIO): Promise<number | void>
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  add: () => import('./commands/add.js'),
  import: () => import('./commands/import.js'),
  token: () => import('./commands/token.js'),
  list: () => import('./commands/status.js').then((m) => ({ run: m.runList })),
  status: () => import('./commands/status.js'),
  remove: () => import('./commands/remove.js'),
  test: () => import('./commands/test.js'),
  proxy: () => import('./commands/proxy.js'),
  sweep: () => import('./commands/sweep.js'),
  serve: () => import('./commands/serve.js'),
  config: () => import('./commands/config.js'),
  store: () => import('./commands/store.js'),
  unlock: () => import('./commands/store.js').then((m) => ({ run: m.runUnlock })),
  lock: () => import('./commands/store.js').then((m) => ({ run: m.runLock })),
  agent: () => import('./commands/store.js').then((m) => ({ run: m.runAgent })),
}

export const USAGE = `mailkey: OAuth 2.0 sign-in for IMAP, POP3 and SMTP

Usage:
  mailkey add <email> [--device | --browser | --paste] [provider flags] [--json]
  mailkey import <email> --refresh-token-file F [provider flags]
  mailkey token [<email>] [--sasl xoauth2|oauthbearer] [--json] [--force-refresh]
  mailkey list [--json]
  mailkey status [<email>] [--json]
  mailkey remove <email> [--no-revoke]
  mailkey test <email> [--protocol imap|pop|smtp]... [--mailbox M] [--json]
  mailkey proxy [--imap-port N] [--pop-port N] [--smtp-port N]  |  mailkey proxy password <email>
  mailkey config [<client> <email> [--via proxy]]   (a ready configuration for msmtp, ...)
  mailkey sweep [--json]                 (keep idle grants alive; for cron or a systemd timer)
  mailkey serve [--listen ADDR:PORT]  |  mailkey serve key add NAME --accounts A,B | --all
                                         (a token service for many hosts)
  mailkey store [status | migrate --to file|keyring|passphrase | passphrase]
  mailkey store init [--new-key FILE] | migrate --to postgres://...   (a shared store for many hosts)
  mailkey unlock [--for 8h]  |  mailkey lock      (an encrypted store's key in a background agent)

Provider flags:
  --provider microsoft|google|yahoo|aol|fastmail|NAME   (NAME: [providers.NAME] in config.toml)
  --issuer URL | --authorize-url U --token-url U --device-url U
  --client-id ID  --client-secret-file F (- for stdin)  --tenant common|organizations|consumers|ID
  --client-secret S   (also works, but other users see it in "ps": prefer --client-secret-file)
  --scope "S1 S2 ..."  --imap-url imaps://host:993  --pop-url pop3s://host:995
  --smtp-url smtp://host:587  --ca FILE  --sasl xoauth2|oauthbearer  --mailbox SHARED@X
  --sign-in-as USER@X   the provider signs this account in as USER@X (an alias); any other user is refused

Run "mailkey <command> --help" for details. Exit codes: 0 ok, 64 usage, 75 try again later,
77 sign-in needed, 78 configuration, 74 token store, 76 protocol, 130 interrupted.
`

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv
  try {
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      io.stdout(USAGE)
      return name === undefined ? EXIT.USAGE : EXIT.OK
    }
    if (name === '--version' || name === '-V') {
      const { createRequire } = await import('node:module')
      io.stdout(`${(createRequire(import.meta.url)('../../package.json') as { version: string }).version}\n`)
      return EXIT.OK
    }
    const load = COMMANDS[name]
    if (!load)
      throw new UsageError(`unknown command "${name}"`, { hint: 'Run "mailkey --help" for the list of commands.' })
    const cmd = await load()
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
