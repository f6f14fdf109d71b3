/**
 * What a CLI command is, and how the command table (table.ts) describes one: the names a user
 * types, what the words after them are, a line of summary. The shapes only, so that modules the
 * table loads (completion.ts) can use them without importing the table.
 *
 * Owns: the command and table types. Must not: hold commands or their data.
 */
import type { CliIO } from './io.js'

export interface Command {
  run(args: string[], io: CliIO): Promise<number | void>
}

/**
 * What a positional argument names, for completion: an account set up here, a mail client of
 * `mailkey config`, a command (`help`), a shell (`completion`), or anything else (`text`: a new
 * address, a key's name).
 */
export type ArgKind = 'account' | 'client' | 'command' | 'shell' | 'text'

export interface SubEntry {
  name: string
  summary: string
  /** the positionals after the name, in order */
  args?: ArgKind[]
  /** its own subcommands (serve key add|remove|list) */
  subcommands?: SubEntry[]
  /** a subcommand must follow (serve key): the entry alone only prints its usage */
  needsSub?: boolean
}

export interface CommandEntry extends SubEntry {
  load: () => Promise<Command>
}
