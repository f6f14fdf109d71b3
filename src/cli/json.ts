/**
 * The one shape of every `--json` output (docs/json.md, checked by docs/json-schema.json): stdout
 * holds JSON Lines, one object per line, each with `schema` (this format's version) and `event`
 * (what the line is); field names are snake_case; a failure is one `error` line whose `kind` uses
 * the words of the token service's problem documents (serve/problem.ts), and whose `next` is the
 * exact command to run next, when there is one.
 *
 * Owns: the envelope, key case, the error object. Must not: decide what a command reports.
 */
import { InternalError, MailkeyError } from '../errors.js'
import { problemOf } from '../serve/problem.js'
import type { AccountStatus } from '../broker/accounts.js'

/** Bumped only when a field changes meaning or goes away; new fields and events keep it. */
export const JSON_SCHEMA_VERSION = 1

/** `fooBarBaz` -> `foo_bar_baz` (keys already in snake_case stay as they are) */
export const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/**
 * A value with every object key in snake_case, for library objects (AccountStatus, TestReport ...)
 * whose keys are names, never data (no map keyed by an address goes through here). Undefined
 * fields are dropped, as JSON.stringify would.
 */
export function snakeKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(snakeKeys)
  if (v === null || typeof v !== 'object') return v
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[snake(k)] = snakeKeys(x)
  return out
}

/**
 * AccountStatus in the --json convention: snake_case keys, the address as `account` and the access
 * token's remaining life as `expires_in` (whole seconds, 0 once expired, as in the `token` event): the
 * names every other event uses for them.
 */
export function accountStatusJson(s: AccountStatus): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(snakeKeys(s) as Record<string, unknown>)) {
    if (k === 'email') out.account = v
    else if (k === 'access_token') out.access_token = withExpiresIn(v as Record<string, unknown>)
    else out[k] = v
  }
  return out
}

const withExpiresIn = (at: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(
    Object.entries(at).map(([k, v]) => (k === 'expires_in_sec' ? ['expires_in', Math.max(0, v as number)] : [k, v])),
  )

/** One line of --json output: `{"schema":1,"event":...,...fields}` and a newline. */
export function jsonLine(event: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ schema: JSON_SCHEMA_VERSION, event, ...(snakeKeys(fields) as object) }) + '\n'
}

// A quoted command in a hint sentence: `Run "mailkey add 'a b'@x" to ...` (shArg quotes an address
// with single quotes and \' inside them, never with double quotes).
const QUOTED_COMMAND = /"(mailkey (?:[^"'\\\n]|\\.|'[^'\n]*')+)"/

/** The first command quoted in these sentences (the CLI's hints always quote the command to run). */
export function nextCommand(...texts: (string | undefined)[]): string | undefined {
  for (const t of texts) {
    const m = t === undefined ? null : QUOTED_COMMAND.exec(t)
    if (m) return m[1]
  }
  return undefined
}

/**
 * The `error` line for a failure: `kind` as the token service would say it (needs-sign-in,
 * unavailable, unknown-account, bad-request, failed ...), the MailkeyError `code`, the exit code,
 * `hint` (the sentences a person reads under the message) and `next` (the command in them).
 */
export function errorLine(e: unknown, cliHintText: string | undefined): string {
  const err = asMailkeyError(e)
  const p = problemOf(err, err.account)
  const hint = [err.hint, cliHintText].filter((h, i, all): h is string => !!h && all.indexOf(h) === i).join('\n')
  const next = p.command ?? nextCommand(cliHintText, err.hint)
  return jsonLine('error', {
    error: {
      kind: p.kind,
      code: err.code,
      message: err.message,
      ...(err.account !== undefined ? { account: err.account } : {}),
      exit_code: err.exitCode,
      ...(hint ? { hint } : {}),
      ...(next ? { next } : {}),
      ...(p.retry_after !== undefined ? { retry_after: p.retry_after } : {}),
      ...(err.oauthError ? { oauth_error: err.oauthError } : {}),
      ...(err.providerCodes.length ? { provider_codes: err.providerCodes } : {}),
    },
  })
}

/** Anything thrown, as the MailkeyError the CLI reports (a bare Error is a bug: InternalError). */
export function asMailkeyError(e: unknown): MailkeyError {
  return e instanceof MailkeyError
    ? e
    : new InternalError(`unexpected error: ${(e as Error)?.message ?? String(e)}`, {
        cause: e,
        hint: 'This is a bug in mailkey. Please report it with the output of the same command run with --debug.',
      })
}
