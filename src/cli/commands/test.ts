/**
 * `mailkey test <email>`: log in to the account's IMAP, POP3 and SMTP servers with its token, go
 * one step past AUTH, and say what is wrong and how to fix it when something fails.
 */
import { EXIT, UsageError } from '../../errors.js'
import { createMailkey } from '../../mailkey.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { arrow } from '../format.js'
import { COMMON_FLAGS, needEmail, parse } from '../flags.js'
import { jsonLine } from '../json.js'
import type { TestReport } from '../../probe/types.js'
import type { Mailkey } from '../../mailkey.js'
import { shArg } from '../../core/address.js'

const HELP = `Usage: mailkey test <email> [--protocol imap|pop|smtp|graph]... [--mailbox M] [--json] [--timeout SEC]

Logs in to the account's servers with its OAuth token: IMAP AUTHENTICATE + SELECT INBOX,
POP3 AUTH + STAT, SMTP EHLO + STARTTLS + AUTH + MAIL FROM/RSET (no mail is sent). Tests all three
(and Microsoft Graph when the sign-in has it: a sendMail with no message, which Graph refuses
after checking the token may send) unless --protocol picks some. A token the server refuses is refreshed once and tried again.
Exit 0 only when every tested protocol passed; otherwise 77 (sign in again), 78 (settings or
server configuration), 75 (network; try again later) or 76 (the server misbehaved).

  --mailbox M     open mailbox M (a shared mailbox) instead of the account's own
  --timeout SEC   per-step network timeout (default 15)
`

const EXIT_OF = { reauth: EXIT.NOPERM, config: EXIT.CONFIG, transient: EXIT.TEMPFAIL, protocol: EXIT.PROTOCOL } as const
const NAMES = { imap: 'IMAP', pop: 'POP3', smtp: 'SMTP', graph: 'Graph' } as const

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse(
    'test',
    args,
    {
      ...COMMON_FLAGS,
      protocol: { type: 'string', multiple: true },
      mailbox: { type: 'string' },
      timeout: { type: 'string' },
    },
    1,
  )
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const email = needEmail('test', positionals)
  const protocols = ((values.protocol as string[] | undefined) ?? []).map((p) => {
    const v = p.toLowerCase()
    if (v === 'imap') return 'imap' as const
    if (v === 'pop' || v === 'pop3') return 'pop' as const
    if (v === 'smtp') return 'smtp' as const
    if (v === 'graph') return 'graph' as const
    throw new UsageError(`--protocol must be imap, pop, smtp or graph, not "${p}"`)
  })
  const timeout = values.timeout
  if (
    timeout !== undefined &&
    !(typeof timeout === 'string' && /^\d+$/.test(timeout) && Number(timeout) >= 1 && Number(timeout) <= 300)
  ) {
    throw new UsageError('--timeout must be a whole number of seconds from 1 to 300')
  }
  const mk = createMailkey({
    env: io.env,
    ...passphrasePrompt(io),
    onWarning: (m) => io.stderr(`mailkey: warning: ${m}\n`),
  })
  const { testAccount } = await import('../../probe/run.js')
  const report = await testAccount(mk, email, {
    ...(protocols.length ? { protocols: [...new Set(protocols)] } : {}),
    ...(typeof values.mailbox === 'string' ? { mailbox: values.mailbox } : {}),
    ...(typeof timeout === 'string' ? { timeoutMs: Number(timeout) * 1000 } : {}),
    signal: io.signal,
  })
  if (values.json) {
    io.stdout(jsonLine('test', reportJson(report)))
  } else {
    let text = `mailkey test ${report.account}${report.mailbox !== report.account ? ` (mailbox ${report.mailbox})` : ''}\n`
    for (const w of report.warnings) text += `  warning: ${w}\n`
    for (const r of report.results) {
      const head = `  ${NAMES[r.protocol].padEnd(5)} ${r.server}`
      if (r.ok) {
        text += `${head}  ok${r.retriedWithFreshToken ? ' (after refreshing the token)' : ''}\n        ${r.steps.join(` ${arrow(io.env)} `)}\n`
      } else {
        text += `${head}  FAILED${r.error?.stage ? ` at ${r.error.stage}` : ''}\n`
        if (r.steps.length) text += `        ${r.steps.join(` ${arrow(io.env)} `)}\n`
        text += `        what happened: ${r.error?.message ?? 'unknown'}\n        cause: ${r.error?.cause ?? '-'}\n        fix:   ${r.error?.fix ?? '-'}\n`
      }
    }
    io.stdout(text)
  }
  const firstFailure = report.results.find((r) => !r.ok)
  if (!values.json && (await offerGraph(io, mk, report))) return EXIT.OK
  return firstFailure?.error ? EXIT_OF[firstFailure.error.kind] : EXIT.OK
}

/**
 * Issue 16, "offered when a 5.7.139 is seen": on a terminal, SMTP refused with 5.7.139 (Microsoft's
 * answer) and a sign-in without Graph, ask whether to sign in again with Graph now; yes runs
 * `mailkey add <account> --graph` here. True when that sign-in succeeded.
 */
async function offerGraph(io: CliIO, mk: Mailkey, report: TestReport): Promise<boolean> {
  const smtp = report.results.find((r) => r.protocol === 'smtp')
  if (!smtp?.error || !/5\.7\.139/.test(smtp.error.cause) || !io.stdinIsTTY || !io.stderrIsTTY) return false
  const rec = await mk.record(report.account)
  if (!rec || rec.settings.resources?.graph) return false
  const answer = await io.readLine(
    `SMTP AUTH is off for ${report.account}; mail can go through Microsoft Graph instead. Sign in again with Graph now ("mailkey add ${shArg(report.account)} --graph")? [y/N] `,
    io.signal,
  )
  if (!/^\s*y(es)?\s*$/i.test(answer ?? '')) return false
  const { run } = await import('./add.js')
  return (await run([report.account, '--graph'], io)) === EXIT.OK
}

/** The words of every --json `kind` (docs/json.md): the token service's, with the exit code beside. */
const KIND_OF = { reauth: 'needs-sign-in', transient: 'unavailable', config: 'failed', protocol: 'failed' } as const

/** The report in the --json convention: each failure's kind as elsewhere, and its exit code. */
function reportJson(report: TestReport): Record<string, unknown> {
  return {
    ...report,
    results: report.results.map((r) =>
      r.error ? { ...r, error: { ...r.error, kind: KIND_OF[r.error.kind], exit_code: EXIT_OF[r.error.kind] } } : r,
    ),
  }
}
