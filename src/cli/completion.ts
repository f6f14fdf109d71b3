/**
 * `mailkey completion bash|zsh|fish`: a shell completion script made from the command table
 * (table.ts) and the flags each command really parses (learnt by running its --help: flags.ts
 * flagsSeenBy), so a command or flag added to mailkey completes without anyone editing a list here.
 *
 * The script completes commands, subcommands, flags and their fixed values, files for flags that
 * name a file, mail clients for `config`, and account addresses by running `mailkey list` (stdin
 * from /dev/null so it can never ask for a passphrase, stderr dropped, at most 3 s where timeout(1)
 * exists). `list` prints addresses and states, never a token or secret.
 *
 * Owns: the scripts. Must not: print anything but the script on stdout.
 */
import { EXIT, UsageError } from '../errors.js'
import type { ArgKind, CommandEntry, SubEntry } from './command.js'
import type { CliIO } from './io.js'
import { COMMON_FLAGS, flagsSeenBy, parse } from './flags.js'
import { closest } from './suggest.js'
import { bashScript, fishScript, zshScript, type CompletionSpec, type PathSpec } from './completion-scripts.js'

const HELP = `Usage: mailkey completion bash|zsh|fish

Prints a completion script for the shell: commands, subcommands, flags and their values, files,
mail clients, and the accounts set up here (by running "mailkey list", which never prints a
token). Load it from the shell's start-up file, or save it where the shell looks:

  bash   echo 'source <(mailkey completion bash)' >> ~/.bashrc
         (or: mailkey completion bash > ~/.local/share/bash-completion/completions/mailkey)
  zsh    mailkey completion zsh > "\${fpath[1]}/_mailkey"   (compinit must run in ~/.zshrc)
         (or, after compinit in ~/.zshrc: source <(mailkey completion zsh))
  fish   mailkey completion fish > ~/.config/fish/completions/mailkey.fish
`

export const SHELLS = ['bash', 'zsh', 'fish'] as const

/** flags mailkey passes itself and nobody types (`unlock` starts `agent --keys-on-stdin`) */
export const HIDDEN_FLAGS: readonly string[] = ['keys-on-stdin']

/** values a flag takes from a fixed set, by flag name; '@files' for a flag that names a file */
export const FLAG_VALUES: Readonly<Record<string, readonly string[]>> = {
  sasl: ['xoauth2', 'oauthbearer'],
  tenant: ['common', 'organizations', 'consumers'],
  'client-auth': ['post', 'basic'],
  protocol: ['imap', 'pop', 'smtp'],
  via: ['proxy'],
  to: ['file', 'keyring', 'passphrase'],
  tls: ['implicit', 'starttls'],
  ca: ['@files'],
  'client-secret-file': ['@files'],
  'refresh-token-file': ['@files'],
  'tls-cert': ['@files'],
  'tls-key': ['@files'],
  'new-key': ['@files'],
}

export async function run(args: string[], io: CliIO, table: readonly CommandEntry[]): Promise<number> {
  const { values, positionals } = parse('completion', args, COMMON_FLAGS, 1)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const shell = positionals[0]
  if (shell === undefined || !(SHELLS as readonly string[]).includes(shell)) {
    const near = shell === undefined ? undefined : closest(shell, SHELLS)
    throw new UsageError(
      shell === undefined ? 'completion needs a shell: bash, zsh or fish' : `no completion for the shell "${shell}"`,
      { hint: near ? `Did you mean "mailkey completion ${near}"?` : 'Run "mailkey completion bash" (or zsh, fish).' },
    )
  }
  const spec = await completionSpec(table, io.env)
  const make = { bash: bashScript, zsh: zshScript, fish: fishScript }[shell as (typeof SHELLS)[number]]
  io.stdout(make(spec))
  return EXIT.OK
}

/** A CliIO that swallows what a command's --help prints. */
function silentIO(env: CliIO['env']): CliIO {
  return {
    env,
    stdout: () => undefined,
    stderr: () => undefined,
    stderrIsTTY: false,
    stdinIsTTY: false,
    readLine: async () => undefined,
    signal: new AbortController().signal,
  }
}

/** Each command path's flags, as the command parses them (its --help, run in this process). */
async function pathFlags(entry: CommandEntry, path: string[], env: CliIO['env']): Promise<PathSpec> {
  const cmd = await entry.load()
  const options = await flagsSeenBy(() => cmd.run([...path.slice(1), '--help'], silentIO(env)))
  const flags: string[] = []
  const valued: string[] = []
  for (const [name, o] of Object.entries(options)) {
    if (HIDDEN_FLAGS.includes(name)) continue
    flags.push(`--${name}`)
    if (o.type === 'string') valued.push(`--${name}`)
  }
  return { path: path.join(' '), children: [], flags: flags.sort(), valued: valued.sort(), args: [] }
}

async function describePaths(
  entry: CommandEntry,
  sub: SubEntry,
  path: string[],
  env: CliIO['env'],
): Promise<PathSpec[]> {
  const here = await pathFlags(entry, path, env)
  here.children = (sub.subcommands ?? []).map((s) => s.name)
  here.args = sub.args ?? []
  const out = [here]
  // one at a time: flagsSeenBy listens to one command at once
  for (const s of sub.subcommands ?? []) out.push(...(await describePaths(entry, s, [...path, s.name], env)))
  return out
}

export async function completionSpec(table: readonly CommandEntry[], env: CliIO['env']): Promise<CompletionSpec> {
  const root: PathSpec = {
    path: '',
    children: [...table.map((e) => e.name), 'help'],
    flags: ['--help', '--version'],
    valued: [],
    args: [],
  }
  const paths = [root]
  for (const e of table) paths.push(...(await describePaths(e, e, [e.name], env)))
  const [{ BUILTIN_PROVIDERS }, { RECIPES }] = await Promise.all([
    import('../providers/registry.js'),
    import('../recipes/index.js'),
  ])
  const values = new Map<string, readonly string[]>(Object.entries(FLAG_VALUES).map(([k, v]) => [`--${k}`, v]))
  values.set('--provider', [...BUILTIN_PROVIDERS.keys()])
  return { paths, values, clients: [...RECIPES.keys()] }
}
