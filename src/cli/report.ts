/**
 * Turns any thrown value into what a person (or a script with --json) reads on stderr/stdout.
 *
 * Owns: error presentation. Must not: set the exit code (main.ts does).
 */
import type { CliIO } from './io.js'
import { cliHint } from './hints.js'
import { asMailkeyError, errorLine } from './json.js'

/**
 * With --json the error is also one `error` line on stdout (docs/json.md); the human text always
 * goes to stderr, so a script may show it or drop it.
 */
export function reportError(e: unknown, io: CliIO, opts: { debug: boolean; json: boolean; command?: string }): void {
  const err = asMailkeyError(e)
  const next = cliHint(err, opts.command)
  if (opts.json) io.stdout(errorLine(err, next))
  let text = `mailkey: ${err.message}\n`
  if (err.hint) text += `  ${err.hint}\n`
  if (next && next !== err.hint) text += `  ${next}\n`
  if (opts.debug) {
    let cause = (err as { cause?: unknown }).cause
    for (let depth = 0; cause !== undefined && depth < 6; depth++) {
      const c = cause as { name?: string; message?: string; code?: string; cause?: unknown }
      text += `  caused by: ${c.name ?? 'Error'}${c.code ? ` [${c.code}]` : ''}: ${c.message ?? String(cause)}\n`
      cause = c.cause
    }
  }
  io.stderr(text)
}
