/**
 * The command table: every command and subcommand mailkey has, with what its positionals name and
 * a one-line summary. main.ts dispatches from it; `help`, "did you mean", shell completion
 * (completion.ts) and the help test read it, so a command added here has help, suggestions and
 * completion, and one missing here cannot be run.
 *
 * Owns: the names and their loaders. Must not: load a command's module before it runs (mail
 * clients start `mailkey token` per connection).
 */
import type { CommandEntry, SubEntry } from './command.js'

export const TABLE: readonly CommandEntry[] = [
  {
    name: 'add',
    summary: 'sign in to an account and store the grant',
    args: ['text'],
    load: () => import('./commands/add.js'),
  },
  {
    name: 'import',
    summary: 'store a refresh token obtained elsewhere',
    args: ['text'],
    load: () => import('./commands/import.js'),
  },
  {
    name: 'token',
    summary: "print an access token (a mail client's credential command)",
    args: ['account'],
    load: () => import('./commands/token.js'),
  },
  {
    name: 'list',
    summary: 'one line per account',
    load: () => import('./commands/status.js').then((m) => ({ run: m.runList })),
  },
  {
    name: 'status',
    summary: "an account's state, grant and servers",
    args: ['account'],
    load: () => import('./commands/status.js'),
  },
  {
    name: 'remove',
    summary: 'forget an account (and revoke its grant)',
    args: ['account'],
    load: () => import('./commands/remove.js'),
  },
  {
    name: 'send',
    summary: 'send the message on stdin, like sendmail (through Graph or SMTP)',
    args: ['text'],
    load: () => import('./commands/send.js'),
  },
  {
    name: 'test',
    summary: "log in to the account's mail servers with a token",
    args: ['account'],
    load: () => import('./commands/test.js'),
  },
  {
    name: 'proxy',
    summary: 'the local IMAP/POP3/SMTP proxy for clients without OAuth',
    subcommands: [
      { name: 'password', summary: 'set the local password a client gives the proxy', args: ['account'] },
      { name: 'install-service', summary: 'write a systemd user unit for the proxy' },
    ],
    load: () => import('./commands/proxy.js'),
  },
  {
    name: 'config',
    summary: 'print a ready configuration for a mail client',
    args: ['client', 'account'],
    load: () => import('./commands/config.js'),
  },
  {
    name: 'sweep',
    summary: 'keep idle grants alive (cron, systemd timer)',
    load: () => import('./commands/sweep.js'),
  },
  {
    name: 'serve',
    summary: 'the token service for many hosts',
    subcommands: [
      {
        name: 'key',
        summary: "the token service's API keys",
        needsSub: true,
        subcommands: [
          { name: 'add', summary: 'make an API key (printed once)', args: ['text'] },
          { name: 'remove', summary: 'stop an API key', args: ['text'] },
          { name: 'list', summary: 'the API keys (never the keys themselves)' },
        ],
      },
    ],
    load: () => import('./commands/serve.js'),
  },
  {
    name: 'store',
    summary: "the token store's protection; a shared store",
    subcommands: [
      { name: 'status', summary: 'how the store is protected' },
      { name: 'migrate', summary: 'move to another protection or a shared store' },
      { name: 'passphrase', summary: 'change the passphrase' },
      { name: 'init', summary: "create or upgrade a shared store's schema" },
      { name: 'rotate-key', summary: 'a new key for a shared store' },
    ],
    load: () => import('./commands/store.js'),
  },
  {
    name: 'unlock',
    summary: "keep an encrypted store's key in a background agent",
    load: () => import('./commands/store.js').then((m) => ({ run: m.runUnlock })),
  },
  {
    name: 'lock',
    summary: 'stop that agent',
    load: () => import('./commands/store.js').then((m) => ({ run: m.runLock })),
  },
  {
    name: 'agent',
    summary: 'the agent in the foreground',
    load: () => import('./commands/store.js').then((m) => ({ run: m.runAgent })),
  },
  {
    name: 'completion',
    summary: 'print a shell completion script (bash, zsh, fish)',
    args: ['shell'],
    load: () => import('./completion.js').then((m) => ({ run: (args, io) => m.run(args, io, TABLE) })),
  },
]

export function entryNamed(name: string): CommandEntry | undefined {
  return TABLE.find((e) => e.name === name)
}

/** every command path with its own help: ["add"], ["proxy", "password"], ["serve", "key", "add"], ... */
export function commandPaths(entries: readonly SubEntry[] = TABLE, above: string[] = []): string[][] {
  return entries.flatMap((e) => [[...above, e.name], ...commandPaths(e.subcommands ?? [], [...above, e.name])])
}
