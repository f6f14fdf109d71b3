/**
 * Turns any thrown value into what a person (or a script with --json) reads on stderr/stdout.
 *
 * Owns: error presentation. Must not: set the exit code (main.ts does).
 */
import { InternalError, MailkeyError } from '../errors.js'
import type { CliIO } from './io.js'
import { cliHint } from './hints.js'

export function reportError(e: unknown, io: CliIO, opts: { debug: boolean; json: boolean; command?: string }): void {
  const err =
    e instanceof MailkeyError
      ? e
      : new InternalError(`unexpected error: ${(e as Error)?.message ?? String(e)}`, {
          cause: e,
          hint: 'This is a bug in mailkey. Please report it with the output of the same command run with --debug.',
        })
  const next = cliHint(err, opts.command)
  if (opts.json) {
    io.stdout(
      JSON.stringify({
        event: 'error',
        code: err.code,
        message: err.message,
        ...(err.hint ? { advice: err.hint } : {}),
        ...(next ? { next } : {}),
        exit_code: err.exitCode,
        ...(err.oauthError ? { oauth_error: err.oauthError } : {}),
        ...(err.providerCodes.length ? { provider_codes: err.providerCodes } : {}),
      }) + '\n',
    )
  }
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
