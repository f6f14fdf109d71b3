/**
 * `mailkey sweep`: one keep-alive pass over every account, for cron or a systemd timer on a host
 * that runs no proxy (broker/keep-alive.ts): grants near their idle limit are refreshed (spread
 * over days per account, spaced, capped per pass), grants that end soon and accounts that need a
 * sign-in are reported. On a shared store, sweeps on several hosts cost one refresh per account.
 * Exit 0 when all is well, 77 when an account needs a sign-in, 75 when a refresh failed for now.
 */
import { EXIT, UsageError } from '../../errors.js'
import { createMailkey } from '../../mailkey.js'
import type { KeepAliveNote } from '../../broker/keep-alive.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { COMMON_FLAGS, parse } from '../flags.js'
import { cleanServerText } from '../../core/server-text.js'
import { shArg } from '../../core/address.js'
import { jsonLine } from '../json.js'

const HELP = `Usage: mailkey sweep [--max-refreshes N] [--gap-ms MS] [--json]

One keep-alive pass over every account (run it daily from cron or a systemd timer when no
"mailkey proxy" runs): refreshes grants that are near their idle limit (Microsoft: 90 days
unused), at most N per pass (default 100), MS apart (default 1000); reports grants that end soon
and accounts that need a sign-in. Exit 0: all well; 77: an account needs "mailkey add"; 75: a
refresh failed for now (try again later).
`

function count(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number`)
  return n
}

export async function run(args: string[], io: CliIO): Promise<number> {
  const flags = { ...COMMON_FLAGS, 'max-refreshes': { type: 'string' }, 'gap-ms': { type: 'string' } } as const
  const { values } = parse('sweep', args, flags, 0)
  if (values.help) return (io.stdout(HELP), EXIT.OK)
  const maxRefreshes = count(values['max-refreshes'], 'max-refreshes', 100)
  const gapMs = count(values['gap-ms'], 'gap-ms', 1000)
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  const notes = await mk.keepAlive({ maxRefreshes, gapMs })
  for (const n of notes) report(n, io, values.json === true)
  if (values.json)
    io.stdout(
      jsonLine('swept', {
        refreshed_count: notes.filter((n) => n.refresh?.ok).length,
        failed_count: notes.filter((n) => n.refresh && !n.refresh.ok).length,
        needs_sign_in_count: notes.filter((n) => n.reauth).length,
        deferred_count: notes.filter((n) => n.deferred).length,
      }),
    )
  if (notes.some((n) => n.reauth)) return EXIT.NOPERM
  if (notes.some((n) => n.refresh && !n.refresh.ok)) return EXIT.TEMPFAIL
  return EXIT.OK
}

function report(n: KeepAliveNote, io: CliIO, json: boolean): void {
  if (json) {
    io.stdout(jsonLine('sweep', sweepJson(n)))
    return
  }
  const say = (s: string): void => io.stderr(`${n.account}: ${cleanServerText(s)}\n`)
  if (n.reauth) say(`needs a sign-in: ${n.reauth}`)
  if (n.refresh?.ok) say('kept alive (refreshed)')
  else if (n.refresh) say(`keep-alive refresh failed: ${n.refresh.message}`)
  if (n.deferred) say('due for a keep-alive, left for the next pass (--max-refreshes reached)')
  if (n.ending) say(n.ending)
}

/**
 * A note in the --json convention: the sign-in message is `reauth_message` (a string), so that
 * `reauth` keeps one type, the boolean in `refresh`; `next` when a sign-in is needed.
 */
function sweepJson(n: KeepAliveNote): Record<string, unknown> {
  const { reauth, ...rest } = n
  return reauth === undefined ? rest : { ...rest, reauth_message: reauth, next: `mailkey add ${shArg(n.account)}` }
}
