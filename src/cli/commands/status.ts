/**
 * `mailkey status [<email>]` and `mailkey list`: what is set up, whether it works, and what to
 * do when it does not. Never prints a token.
 */
import { ERR, EXIT } from '../../errors.js'
import { createMailkey } from '../../mailkey.js'
import type { AccountStatus } from '../../broker/accounts.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { COMMON_FLAGS, parse } from '../flags.js'
import { formatDuration, formatTime } from '../format.js'
import { shArg } from '../../core/address.js'
import { accountStatusJson, jsonLine } from '../json.js'

const STATUS_HELP = `Usage: mailkey status [<email>] [--json]

Shows each account's provider, tenant, client id, sign-in flow, token expiry, refresh-token age,
the last refresh error and what it means. Never prints a token.
`
const LIST_HELP = `Usage: mailkey list [--json]

One line per account: address, provider, state, access-token expiry.
`

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('status', args, COMMON_FLAGS, 1)
  if (values.help) {
    io.stdout(STATUS_HELP)
    return EXIT.OK
  }
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  const email = positionals[0]
  if (email) {
    const s = await mk.status(email)
    io.stdout(values.json ? jsonLine('account', statusJson(s)) : describe(s))
    return EXIT.OK
  }
  const { accounts, broken } = await mk.list()
  if (values.json) {
    io.stdout(jsonLine('accounts', { accounts: accounts.map(statusJson), broken }))
  } else {
    if (accounts.length === 0 && broken.length === 0)
      io.stdout('No accounts yet. Run "mailkey add you@example.com" to sign in.\n')
    io.stdout(accounts.map(describe).join('\n'))
    for (const b of broken) io.stderr(`mailkey: ${b.message}\n`)
  }
  return listExit(broken)
}

export async function runList(args: string[], io: CliIO): Promise<number> {
  const { values } = parse('list', args, COMMON_FLAGS, 0)
  if (values.help) {
    io.stdout(LIST_HELP)
    return EXIT.OK
  }
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  const { accounts, broken } = await mk.list()
  if (values.json) {
    io.stdout(
      jsonLine('list', {
        accounts: accounts.map((a) => ({
          account: a.email,
          provider: a.provider,
          ...(a.tenant ? { tenant: a.tenant } : {}),
          state: a.state,
          access_token: { expires_at: a.accessToken.expiresAt ?? null },
          ...signInNext(a),
        })),
        broken,
      }),
    )
  } else {
    if (accounts.length === 0 && broken.length === 0)
      io.stdout('No accounts yet. Run "mailkey add you@example.com" to sign in.\n')
    for (const a of accounts) {
      const state =
        a.state === 'reauth'
          ? 'needs sign-in'
          : a.accessToken.valid
            ? `token valid ${formatDuration(a.accessToken.expiresInSec ?? 0)}`
            : 'token expired (refreshes on next use)'
      io.stdout(`${a.email}\t${a.provider}${a.tenant ? `/${a.tenant}` : ''}\t${state}\n`)
    }
    for (const b of broken) io.stderr(`mailkey: ${b.message}\n`)
  }
  return listExit(broken)
}

/**
 * A record refused because others can read it (or it is not ours) is a refusal, as for "mailkey
 * token": the listing is printed, but the exit code says something is wrong (a script must not read
 * success). A record that merely does not parse stays a warning: the other accounts are fine.
 */
function listExit(broken: { code: string }[]): number {
  return broken.some((b) => b.code === ERR.STORE_PERMISSIONS) ? EXIT.IOERR : EXIT.OK
}

/** An account that needs a sign-in says the command, as `next` (docs/json.md). */
const signInNext = (s: AccountStatus): { next?: string } =>
  s.state === 'reauth' ? { next: `mailkey add ${shArg(s.email)}` } : {}

/** AccountStatus in the --json convention (cli/json.ts), and `next` when a sign-in is needed. */
const statusJson = (s: AccountStatus): Record<string, unknown> => ({ ...accountStatusJson(s), ...signInNext(s) })

function describe(s: AccountStatus): string {
  const rows: [string, string][] = []
  rows.push(['provider', `${s.provider}${s.tenant ? ` (tenant ${s.tenant})` : ''}`])
  rows.push(['client id', `${s.clientId}${s.clientLabel ? ` (${s.clientLabel})` : ''}`])
  rows.push([
    'signed in',
    `${formatTime(s.grantedAt)} via ${s.flow}${s.identity?.email ? ` as ${s.identity.email}` : ''}`,
  ])
  if (s.state === 'reauth') {
    rows.push(['state', `NEEDS SIGN-IN: run "mailkey add ${shArg(s.email)}"`])
  } else {
    rows.push(['state', 'active'])
  }
  const at = s.accessToken
  rows.push([
    'access token',
    !at.present
      ? 'none'
      : s.state === 'reauth'
        ? 'not usable: the server refused the grant (sign in again)'
        : at.valid
          ? `valid for ${formatDuration(at.expiresInSec ?? 0)} (until ${formatTime(at.expiresAt)})`
          : `expired ${formatTime(at.expiresAt)}; refreshed on next use`,
  ])
  const rt = s.refreshToken
  rows.push([
    'refresh token',
    rt.present
      ? `received ${rt.ageDays} days ago${rt.idleLimitDays ? ` (the provider drops it after ${rt.idleLimitDays} days unused)` : ''}`
      : 'none (sign in again when the access token expires)',
  ])
  if (s.refreshedAt) rows.push(['last refresh', formatTime(s.refreshedAt)])
  if (s.grantHorizon) {
    const h = s.grantHorizon
    rows.push([
      'grant ends',
      h.warn
        ? `WARNING: ${h.message}`
        : `${formatTime(h.at)} at the latest (${h.kind === 'idle' ? `${h.days} days after its last use` : `${h.days} days after sign-in`})`,
    ])
  }
  rows.push(['scopes', s.grantedScope ?? s.scopes.join(' ')])
  const servers = [s.servers.imap, s.servers.pop, s.servers.smtp].filter(Boolean).join('  ')
  rows.push(['servers', servers || '-'])
  if (s.graph || (s.send && s.send !== 'smtp')) rows.push(['sending', sendingText(s)])
  rows.push(['SASL', s.sasl])
  if (s.lastError) {
    rows.push(['last error', `${formatTime(s.lastError.atIso)}: ${s.lastError.message}`])
    if (s.lastError.meaning) rows.push(['meaning', s.lastError.meaning])
  }
  rows.push(['stored in', storedIn(s.storage)])
  const w = Math.max(...rows.map(([k]) => k.length))
  return `${s.email}\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')}\n`
}

/** Issue 16: how mail goes out, and the Graph token when the grant has Graph. */
function sendingText(s: AccountStatus): string {
  const how =
    s.send === 'graph'
      ? 'through Microsoft Graph'
      : s.send === 'smtp'
        ? 'over SMTP'
        : 'over SMTP, Microsoft Graph after 5.7.139'
  if (!s.graph) return how
  const t = s.graph.accessToken
  const token = t.present ? `Graph token until ${t.expiresAt ? formatTime(t.expiresAt) : '?'}` : 'no Graph token yet'
  return `${how} (${s.servers.graph ?? 'Graph'}; ${token})`
}

function storedIn(st: AccountStatus['storage']): string {
  if (st.kind === 'shared') return `${st.store} (shared store, sealed with the store key)`
  if (st.kind === 'service') return `${st.service} (token service${st.store ? ` over ${st.store}` : ''})`
  const key = st.protection === 'keyring' ? 'in the OS keyring' : 'under a passphrase'
  return `${st.path} (file mode 0600, ${st.encrypted ? `tokens encrypted, key ${key}` : 'not encrypted'})`
}
