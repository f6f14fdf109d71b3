/**
 * `mailkey config <client> <email> [--via proxy]`: print a configuration for a mail client that
 * works as printed (stdout: the file; stderr: where it goes and how to use it). `mailkey config`
 * alone lists the clients.
 */
import { EXIT, UsageError } from '../../errors.js'
import { createMailkey, type Mailkey } from '../../mailkey.js'
import { unknownAccount } from '../../broker/broker.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { COMMON_FLAGS, parse } from '../flags.js'
import { notOnPathNote, selfCommand, thisInstallation } from '../self.js'
import { spawnSync } from 'node:child_process'
import { quoted, shArg } from '../../core/address.js'
import { accountId } from '../../domain/account.js'
import { mechanismsFor } from '../../domain/provider-rules.js'
import { presetNamed } from '../../providers/registry.js'
import type { ClientRecipe, MailServer, RecipeInput } from '../../recipes/index.js'
import type { AccountSettings } from '../../domain/account.js'
import { jsonLine } from '../json.js'

const HELP = `Usage: mailkey config <client> <email> [--via proxy] [--token-command CMD] [--password-command CMD] [--client-version V]
       mailkey config                 (lists the clients)

Prints a configuration for <client> that works as printed, with the account's own servers, TLS,
CA and SASL mechanism, and "mailkey token <email>" as the credential command. Redirect it into
the client's file; where it goes and how to use it is printed on stderr.

  --via proxy           through "mailkey proxy" (for clients without OAuth; fetchmail and generic
                        always go this way): 127.0.0.1, the ports
                        of [[proxy.listeners]] in config.toml or 1143/1110/1587, the local password
  --token-command CMD   the command that prints a token (default: mailkey token <email>, by
                        full path when no mailkey is on PATH, as after "npx mailkey")
  --password-command C  the command that prints the local proxy password
                        (default: cat the file "mailkey proxy password <email> --save" writes:
                        \${XDG_CONFIG_HOME:-$HOME/.config}/mailkey/proxy-passwords/<email>, 0600)
  --client-version V    write for that version of the client (aerc 0.15 and himalaya 2 changed theirs);
                        default: the version of the client on PATH, else its newest dialect
`

const CONFIG_FLAGS = {
  ...COMMON_FLAGS,
  via: { type: 'string' },
  'token-command': { type: 'string' },
  'password-command': { type: 'string' },
  'client-version': { type: 'string' },
} as const

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('config', args, CONFIG_FLAGS, 2)
  const { RECIPES } = await import('../../recipes/index.js')
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const [client, email] = positionals
  if (client === undefined) {
    if (values.json)
      return (
        io.stdout(
          jsonLine('clients', { clients: [...RECIPES.values()].map((r) => ({ name: r.name, summary: r.summary })) }),
        ),
        EXIT.OK
      )
    io.stdout(`Clients:\n${[...RECIPES.values()].map((r) => `  ${r.name.padEnd(10)} ${r.summary}`).join('\n')}\n`)
    return EXIT.OK
  }
  const recipe = RECIPES.get(client)
  if (!recipe)
    throw new UsageError(`no recipe for "${client}"`, {
      hint: `Run "mailkey config" for the list: ${[...RECIPES.keys()].join(', ')}.`,
    })
  if (email === undefined)
    throw new UsageError(`which account? mailkey config ${client} <email>`, {
      hint: 'Run "mailkey list" to see the accounts.',
    })
  if (values.via !== undefined && values.via !== 'proxy') throw new UsageError('--via takes only "proxy"')
  // a client that cannot do OAuth at all (fetchmail, password-only apps) has only the proxy way: print it
  let via = values.via === 'proxy' || !recipe.direct
  if (values.via === undefined && !recipe.direct)
    io.stderr(
      `# through "mailkey proxy", as with --via proxy: ${client} cannot use OAuth itself (${recipe.whyNotDirect ?? 'no support'})\n`,
    )
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  const rec = await mk.record(email)
  if (!rec) throw unknownAccount(email) // the usual "no account" error, with its hint
  const graph = (await mk.sendMode(email)) === 'graph'
  if (graphViaProxy(graph, via, client, email, io)) via = true
  const { clientVersion, found } = chooseClientVersion(recipe, client, email, via, values['client-version'], io.env)
  const self = selfCommand(await thisInstallation(), io.env)
  const input = await recipeInput(mk, rec.settings, {
    via,
    graph,
    clientVersion,
    tokenCommand: values['token-command'],
    passwordCommand: values['password-command'],
    self: self.argv,
  })
  let made
  try {
    made = recipe.make(input)
  } catch (e) {
    throw new UsageError(`cannot write a ${client} configuration for ${quoted(email)}: ${(e as Error).message}`, {
      hint: `Run "mailkey status ${shArg(email)}" to see its servers; "mailkey add ${shArg(email)} --smtp-url ..." sets them.`,
    })
  }
  if (values.json)
    io.stdout(
      jsonLine('config', {
        client,
        account: email,
        via: via ? 'proxy' : 'direct',
        ...(clientVersion !== undefined ? { client_version: clientVersion } : {}),
        text: made.text,
        usage: made.usage,
      }),
    )
  else io.stdout(made.text)
  for (const u of made.usage) io.stderr(`# ${u}\n`)
  // the config calls mailkey itself: say so when that is by full path, and why
  const note = made.text.includes(input.tokenCommand)
    ? notOnPathNote(self, self.absolute.map(shArg).join(' '))
    : undefined
  if (values['token-command'] === undefined && note) io.stderr(`# ${note}\n`)
  if (found !== undefined)
    io.stderr(`# written for the ${client} on PATH (${found}); --client-version chooses another\n`)
  return EXIT.OK
}

/**
 * The client version to write for: --client-version, else the one on PATH (found). A client that
 * cannot use OAuth itself in that version is refused with the --via proxy command (one that cannot
 * at all never comes here without via: run() takes the proxy way for it).
 */
function chooseClientVersion(
  recipe: ClientRecipe,
  client: string,
  email: string,
  via: boolean,
  flag: unknown,
  env: NodeJS.ProcessEnv,
): { clientVersion: string | undefined; found: string | undefined } {
  const found = typeof flag === 'string' ? undefined : installedVersion(recipe.version, env)
  const clientVersion = typeof flag === 'string' ? flag : found
  if (clientVersion !== undefined && !/^\d+(\.\d+){0,2}$/.test(clientVersion))
    throw new UsageError(`--client-version takes a version such as 0.14 or 0.14.0, not "${clientVersion}"`)
  const notDirect = via ? undefined : recipe.notDirect?.(clientVersion)
  if (notDirect)
    throw new UsageError(`${client} ${clientVersion} cannot use OAuth itself (${notDirect})`, {
      hint: `Run "mailkey config ${client} ${shArg(email)} --via proxy".`,
    })
  return { clientVersion, found }
}

/** What a recipe needs: the account's servers, TLS, CA and SASL, and the commands that print secrets. */
async function recipeInput(
  mk: Mailkey,
  s: AccountSettings,
  o: {
    via: boolean
    graph: boolean
    clientVersion: string | undefined
    tokenCommand: unknown
    passwordCommand: unknown
    self: string[]
  },
): Promise<RecipeInput> {
  const { shCommand } = await import('../../recipes/shell.js')
  const { passwordFileCommand } = await import('../../proxy/password-file.js')
  const { parseServer } = await import('../../upstream/transport.js')
  const server = (
    key: 'imap' | 'pop' | 'smtp',
    url: string | undefined,
  ): Partial<Record<'imap' | 'pop' | 'smtp', MailServer>> => {
    if (!url) return {}
    const a = parseServer(url)
    return { [key]: { host: a.host, port: a.port, tls: a.implicitTls ? 'implicit' : 'starttls' } }
  }
  return {
    email: s.email,
    user: s.mailbox ?? s.email,
    provider: s.provider,
    // RFC 7628 is the standard; some servers take only XOAUTH2 (Microsoft: docs/providers.md)
    sasl: mechanismsFor(s, presetNamed(s.provider))[0] ?? s.sasl,
    ...server('imap', s.servers.imap),
    ...server('pop', s.servers.pop),
    ...server('smtp', s.servers.smtp),
    ...(s.ca ? { ca: s.ca } : {}),
    ...(o.graph ? { graph: true } : {}),
    ...(o.clientVersion !== undefined ? { clientVersion: o.clientVersion } : {}),
    tokenCommand: typeof o.tokenCommand === 'string' ? o.tokenCommand : shCommand([...o.self, 'token', s.email]),
    ...(o.via
      ? {
          proxy: await proxyPorts(
            mk,
            s.email,
            typeof o.passwordCommand === 'string' ? o.passwordCommand : passwordFileCommand(s.email),
          ),
        }
      : {}),
  }
}

/** Clients whose configuration sends mail (SMTP): for a Graph account they go through the proxy. */
const SENDING_CLIENTS = new Set(['msmtp', 'git-send-email', 'neomutt', 'aerc', 'himalaya'])

/**
 * Issue 16: an account that sends through Microsoft Graph has no SMTP server a client can log in
 * to; the proxy's SMTP listener relays to Graph, so a client that sends mail goes through it. True
 * when that turns a direct configuration into one through the proxy (and says so).
 */
function graphViaProxy(graph: boolean, via: boolean, client: string, email: string, io: CliIO): boolean {
  if (!graph || via || !SENDING_CLIENTS.has(client)) return false
  io.stderr(
    `# through "mailkey proxy": ${email} sends through Microsoft Graph, and the proxy's SMTP listener relays to it (or use "mailkey send" as a sendmail command)\n`,
  )
  return true
}

/** The version of the client on PATH (`aerc -v`), when the recipe cares and it answers within 3 s. */
function installedVersion(probe: ClientRecipe['version'], env: NodeJS.ProcessEnv): string | undefined {
  if (!probe) return undefined
  const r = spawnSync(probe.command, probe.args, {
    encoding: 'utf8',
    timeout: 3000,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (r.error || typeof r.stdout !== 'string') return undefined
  return probe.pattern.exec(r.stdout + r.stderr)?.[1]
}

/** The proxy's plain loopback listeners for this account from config.toml, else the usual ports. */
async function proxyPorts(
  mk: Mailkey,
  email: string,
  passwordCommand: string,
): Promise<NonNullable<RecipeInput['proxy']>> {
  const cfg = await mk.config()
  const usable = (cfg?.proxy?.listeners ?? []).filter(
    (l) => l.tls === 'none' && (!l.accounts || l.accounts.includes(accountId(email))),
  )
  const port = (p: 'imap' | 'pop3' | 'smtp'): number | undefined => usable.find((l) => l.protocol === p)?.port
  const fromConfig = usable.length > 0
  return {
    host: usable[0]?.host ?? '127.0.0.1',
    ...(fromConfig ? {} : { imapPort: 1143, popPort: 1110, smtpPort: 1587 }),
    ...(port('imap') !== undefined ? { imapPort: port('imap') as number } : {}),
    ...(port('pop3') !== undefined ? { popPort: port('pop3') as number } : {}),
    ...(port('smtp') !== undefined ? { smtpPort: port('smtp') as number } : {}),
    passwordCommand,
  }
}
