/**
 * `mailkey token [<email>]`: print an access token for a mail client's credential command
 * (mbsync PassCmd, msmtp passwordeval, aerc *-cred-cmd, neomutt, offlineimap).
 *
 * stdout carries ONLY the token (or the SASL string, or --json) and a newline; anything else
 * goes to stderr. This is the hot path: it loads no OAuth code unless it must refresh.
 */
import { EXIT, UsageError } from '../../errors.js'
import { createMailkey, type Mailkey } from '../../mailkey.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { parse, saslFlag, type Values } from '../flags.js'
import { presetNamed } from '../../providers/registry.js'
import { jsonLine } from '../json.js'

const HELP = `Usage: mailkey token [<email>] [--sasl xoauth2|oauthbearer] [--json] [--force-refresh]

Prints a valid access token and a newline on stdout, refreshing it first when it expires within
the refresh margin (5 minutes by default). With no <email>, uses MAILKEY_EMAIL.

  --sasl M          print the base64 SASL initial response for mechanism M instead
  --host H --port P host and port to put in an OAUTHBEARER response (RFC 7628 §3.1)
  --json            print one JSON line: {"schema":1,"event":"token","access_token":...}, or an
                    "error" line when it fails (docs/json.md)
  --force-refresh   get a new token even if the cached one looks valid (the server rejected it)
  --min-validity S  refresh unless the token is valid for at least S more seconds. A provider's
                    token lives what the provider says (Microsoft, Google: about an hour), and
                    mailkey asks at most half of that: a longer S gets a fresh token with less
                    left, and says so on stderr

Secrets: none are read from the command line or stdin. An encrypted store's key comes from the
agent ("mailkey unlock"), the OS keyring, [store] passphrase_command, or a prompt on the terminal
only when stdin and stderr are both terminals (a mail client is never asked).
`

const TOKEN_FLAGS = {
  help: { type: 'boolean', short: 'h' },
  debug: { type: 'boolean' },
  json: { type: 'boolean' },
  sasl: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'force-refresh': { type: 'boolean' },
  'min-validity': { type: 'string' },
} as const

type GetOptions = NonNullable<Parameters<Mailkey['getAccessToken']>[1]>

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('token', args, TOKEN_FLAGS, 1)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const email = positionals[0] ?? io.env.MAILKEY_EMAIL
  if (!email)
    throw new UsageError("token needs the account's e-mail address (or MAILKEY_EMAIL)", {
      hint: 'Run "mailkey token you@example.com".',
    })
  const minValidity = values['min-validity']
  if (
    minValidity !== undefined &&
    !(typeof minValidity === 'string' && /^\d+$/.test(minValidity) && Number(minValidity) <= 86_400)
  ) {
    throw new UsageError('--min-validity must be a whole number of seconds up to 86400')
  }
  const mk = createMailkey({
    env: io.env,
    ...passphrasePrompt(io),
    onWarning: (m) => io.stderr(`mailkey: warning: ${m}\n`),
  })
  const getOpts: GetOptions = {
    forceRefresh: values['force-refresh'] === true,
    signal: io.signal,
    ...(typeof minValidity === 'string' ? { minValiditySec: Number(minValidity) } : {}),
  }
  if (typeof values.sasl === 'string') return await printSasl(mk, email, values, getOpts, io)
  return await printToken(mk, email, values, getOpts, io)
}

/** --sasl: the base64 SASL initial response (or --json with it) */
async function printSasl(mk: Mailkey, email: string, values: Values, getOpts: GetOptions, io: CliIO): Promise<number> {
  const mechanism = saslFlag(values.sasl as string)
  const port = typeof values.port === 'string' ? Number(values.port) : undefined
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536))
    throw new UsageError('--port must be a port number')
  const rec = await mk.record(email)
  const preset = rec ? presetNamed(rec.settings.provider) : undefined
  if (preset && !preset.sasl.includes(mechanism)) {
    const only = preset.sasl
    throw new UsageError(
      `${preset.shortName ?? preset.displayName}'s mail servers accept only ${only.join(' or ')}; use ${only.map((m) => `--sasl ${m.toLowerCase()}`).join(' or ')}`,
      { account: email },
    )
  }
  const r = await mk.getSaslResponse(email, {
    ...getOpts,
    mechanism,
    ...(typeof values.host === 'string' ? { host: values.host } : {}),
    ...(port !== undefined ? { port } : {}),
  })
  await warnNearHorizon(mk, email, io)
  noteShortLife(r.token.expiresAt, getOpts.minValiditySec, io)
  io.stdout(
    values.json
      ? jsonLine('sasl', {
          account: r.token.account,
          mechanism: r.mechanism,
          response: r.response.reveal(),
          expires_at: iso(r.token.expiresAt),
        })
      : r.response.reveal() + '\n',
  )
  return EXIT.OK
}

/** the access token alone, or --json with its expiry, scope and SASL mechanism */
async function printToken(mk: Mailkey, email: string, values: Values, getOpts: GetOptions, io: CliIO): Promise<number> {
  const t = await mk.getAccessToken(email, getOpts)
  await warnNearHorizon(mk, email, io)
  noteShortLife(t.expiresAt, getOpts.minValiditySec, io)
  if (values.json) {
    io.stdout(
      jsonLine('token', {
        account: t.account,
        access_token: t.token.reveal(),
        token_type: 'Bearer',
        ...(t.expiresAt !== undefined
          ? { expires_at: iso(t.expiresAt), expires_in: Math.max(0, Math.round((t.expiresAt - Date.now()) / 1000)) }
          : {}),
        ...(t.scope !== undefined ? { scope: t.scope } : {}),
        sasl_mechanism: t.sasl,
        refreshed: t.refreshed,
      }),
    )
  } else {
    io.stdout(t.token.reveal() + '\n')
  }
  return EXIT.OK
}

/**
 * A grant near its end (broker/horizon.ts) is said on stderr, never stdout (a mail client reads
 * stdout as the token). The fast path never gets here: it prints only tokens refreshed within the
 * hour, whose idle clock has just restarted, and it steps aside whenever config.toml exists (the
 * only place a max-age is set).
 */
async function warnNearHorizon(mk: ReturnType<typeof createMailkey>, email: string, io: CliIO): Promise<void> {
  try {
    const h = (await mk.status(email)).grantHorizon
    if (h?.warn) io.stderr(`mailkey: warning: ${h.message}\n`)
  } catch {
    // a warning must never cost the caller its token
  }
}

/** --min-validity asked more than the token has (capped at half its life): say so, on stderr. */
function noteShortLife(expiresAt: number | undefined, minSec: number | undefined, io: CliIO): void {
  if (minSec === undefined || expiresAt === undefined) return
  const left = Math.round((expiresAt - Date.now()) / 1000)
  if (left >= minSec) return
  io.stderr(
    `mailkey: note: this token is valid for ${left} s, less than --min-validity ${minSec}: the provider's tokens do not live long enough, and mailkey asks at most half a token's life.\n`,
  )
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString()
}
