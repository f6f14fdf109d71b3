/**
 * `mailkey test`: prove that the account's tokens open its real mailboxes. For each protocol:
 * connect (implicit TLS or STARTTLS, certificate verified), authenticate with the account's token,
 * go one step past AUTH (SELECT INBOX / STAT / MAIL FROM + RSET), and explain any failure.
 *
 * A token the server refuses although mailkey believed it valid (suspend, password change,
 * revocation) is force-refreshed once and tried again before anything is reported.
 *
 * Owns: orchestration of probes. Must not: print.
 */
import { MailkeyError } from '../errors.js'
import type { Mailkey } from '../mailkey.js'
import { accountId, type AccountRecord, type SendMode } from '../domain/account.js'
import { presetNamed } from '../providers/registry.js'
import { mechanismsFor } from '../domain/provider-rules.js'
import { encodeSasl } from '../sasl/index.js'
import { cleanServerText } from '../core/server-text.js'
import type { Secret } from '../core/secret.js'
import type { SaslMechanism } from '../providers/types.js'
import { ProbeFailure, imapDialogue, pop3Dialogue, smtpDialogue, type DialogueResult } from '../upstream/dialogues.js'
import { diagnose } from '../upstream/diagnose.js'
import { openTransport, parseServer, type LineTransport, type ServerAddress } from '../upstream/transport.js'
import type { FailureKind } from '../upstream/types.js'
import { PROTOCOLS, type Protocol, type ProtocolReport, type TestReport } from './types.js'
import { shArg } from '../core/address.js'

export interface TestOptions {
  protocols?: (Protocol | 'graph')[]
  /** open this mailbox instead of the account's own (shared mailboxes) */
  mailbox?: string
  timeoutMs?: number
  signal?: AbortSignal
}

/**
 * A mail server's replies are server text: they enter `mailkey test` here, cleaned of controls
 * and of the token and SASL response sent (core/server-text.ts), before a dialogue parses them
 * into steps, failures and diagnoses that are printed and put in --json.
 */
function cleanedReplies(t: LineTransport, secrets: string[]): LineTransport {
  return {
    readLine: async () => cleanServerText(await t.readLine(), secrets),
    write: (line) => t.write(line),
    writeBytes: (data) => t.writeBytes(data),
    startTls: () => t.startTls(),
    buffered: () => t.buffered(),
    close: () => t.close(),
    detach: () => t.detach(),
    get secure() {
      return t.secure
    },
  }
}

const DIALOGUES = { imap: imapDialogue, pop: pop3Dialogue, smtp: smtpDialogue } as const

export async function testAccount(mk: Mailkey, account: string, opts: TestOptions = {}): Promise<TestReport> {
  const id = accountId(account)
  const rec = await mk.record(id)
  if (!rec) {
    await mk.getAccessToken(account) // throws the usual "no account" error (or seeds an env account)
  }
  const record = (rec ?? (await mk.record(id))) as AccountRecord
  const settings = record.settings
  const mailbox = opts.mailbox ?? settings.mailbox ?? settings.email
  const signedInAs = record.grant?.identity?.email
  const warnings: string[] = []
  if (signedInAs && signedInAs.toLowerCase() !== mailbox.toLowerCase()) {
    warnings.push(
      `the provider says you signed in as ${signedInAs}, but mailkey opens the mailbox ${mailbox}; unless ${signedInAs} has access to it, servers will answer "authenticated but not connected"`,
    )
  }
  const results: ProtocolReport[] = []
  // Graph is tested when the grant has it (issue 16), or when asked
  const all = settings.resources?.graph ? [...PROTOCOLS, 'graph' as const] : PROTOCOLS
  for (const protocol of opts.protocols ?? all) {
    if (protocol === 'graph') results.push(await (await import('./graph.js')).probeGraph(mk, record, opts))
    else results.push(await probeOne(mk, record, protocol, mailbox, signedInAs, opts))
  }
  graphAdvice(record, results, await mk.sendMode(settings.email).catch(() => 'smtp' as const))
  return {
    account: settings.email,
    mailbox,
    ...(signedInAs ? { signedInAs } : {}),
    warnings,
    results,
    ok: results.every((r) => r.ok),
  }
}

async function probeOne(
  mk: Mailkey,
  rec: AccountRecord,
  protocol: Protocol,
  mailbox: string,
  signedInAs: string | undefined,
  opts: TestOptions,
): Promise<ProtocolReport> {
  const settings = rec.settings
  const server = settings.servers[protocol]
  const report: ProtocolReport = { protocol, server: server ?? '-', ok: false, steps: [], retriedWithFreshToken: false }
  if (!server) {
    report.error = noServerError(settings.email, protocol)
    return report
  }
  const addr = parseServer(server)
  // the account's own first, then the other one the provider allows
  const mechanisms = mechanismsFor(settings, presetNamed(settings.provider))

  for (let attempt = 0; attempt < 2; attempt++) {
    const forceRefresh = attempt === 1
    let token
    try {
      token = await mk.getAccessToken(settings.email, { forceRefresh, ...(opts.signal ? { signal: opts.signal } : {}) })
    } catch (e) {
      report.error = tokenFailure(e as MailkeyError, settings.email)
      return report
    }
    let transport: LineTransport | undefined
    try {
      transport = await openTransport(addr, {
        ...(settings.ca ? { caFile: settings.ca } : {}),
        timeoutMs: opts.timeoutMs ?? 15_000,
        ...(opts.signal ? { signal: opts.signal } : {}),
      })
      const result = await runDialogue(protocol, transport, addr, { mechanisms, mailbox, token: token.token })
      report.ok = true
      report.steps = result.steps
      report.mechanism = result.mechanism
      if (result.messages !== undefined) report.messages = result.messages
      delete report.error
      return report
    } catch (e) {
      const refused = e instanceof ProbeFailure && e.stage === 'auth'
      const d = diagnose(e, {
        protocol,
        account: settings.email,
        mailbox,
        server,
        freshTokenRefused: refused && forceRefresh,
        provider: settings.provider,
        ...(rec.grant?.scope ? { grantedScope: rec.grant.scope } : {}),
        // Without an id_token, the account's own address is the best guess of who signed in.
        signedInAs: signedInAs ?? settings.email,
      })
      report.error = failureReport(e, d)
      // Refused, but we believed the token valid: force a refresh and try once more.
      if (refused && !forceRefresh && d.kind === 'reauth') {
        report.retriedWithFreshToken = true
        continue
      }
      return report
    } finally {
      transport?.close()
    }
  }
  return report
}

/** The protocol's login dialogue with this token; every secret sent is kept out of the replies it reports. */
async function runDialogue(
  protocol: Protocol,
  transport: LineTransport,
  addr: ServerAddress,
  o: { mechanisms: SaslMechanism[]; mailbox: string; token: Secret },
): Promise<DialogueResult> {
  const sent: string[] = [o.token.reveal()]
  return await DIALOGUES[protocol](cleanedReplies(transport, sent), {
    starttls: !addr.implicitTls,
    mechanisms: o.mechanisms,
    saslResponse: (mech) => {
      const r = encodeSasl(mech, { user: o.mailbox, token: o.token, host: addr.host, port: addr.port })
      sent.push(r.reveal())
      return r
    },
    from: o.mailbox,
  })
}

function noServerError(email: string, protocol: Protocol): NonNullable<ProtocolReport['error']> {
  const example = protocol === 'imap' ? 'imaps://host:993' : protocol === 'pop' ? 'pop3s://host:995' : 'smtp://host:587'
  return {
    message: `no ${protocol.toUpperCase()} server is set for ${email}`,
    kind: 'config',
    cause: `the account has no ${protocol} server`,
    fix: `Give one: "mailkey add ${shArg(email)} --${protocol}-url ${example}".`,
  }
}

/** No token to log in with: the grant is dead (sign in again) or the token endpoint is out of reach. */
function tokenFailure(err: MailkeyError, email: string): NonNullable<ProtocolReport['error']> {
  const kind: FailureKind = err.reauthRequired ? 'reauth' : err.transient ? 'transient' : 'config'
  return {
    stage: 'token',
    message: err.message,
    kind,
    cause:
      kind === 'reauth'
        ? 'the grant is no longer accepted, so there is no token to log in with'
        : 'no usable access token right now',
    fix:
      kind === 'reauth'
        ? `Run "mailkey add ${shArg(email)}" to sign in again.`
        : `See "mailkey status ${shArg(email)}".`,
  }
}

function failureReport(
  e: unknown,
  d: { kind: FailureKind; cause: string; fix: string },
): NonNullable<ProtocolReport['error']> {
  return {
    ...(e instanceof ProbeFailure ? { stage: e.stage } : { stage: 'connect' }),
    message: (e as Error).message,
    kind: d.kind,
    cause: d.cause,
    fix: d.fix,
  }
}

/**
 * SMTP refused with 5.7.139 (SMTP AUTH off for the mailbox): say what Graph would change. With
 * Graph in the grant, mail through mailkey goes there already (send = auto or graph); without,
 * `add --graph` is the fix.
 */
function graphAdvice(rec: AccountRecord, results: ProtocolReport[], mode: SendMode): void {
  const smtp = results.find((r) => r.protocol === 'smtp')
  if (!smtp?.error || !/5\.7\.139/.test(smtp.error.cause)) return
  const a = shArg(rec.settings.email)
  if (rec.settings.resources?.graph && mode === 'smtp') {
    smtp.error.fix = `The sign-in has Microsoft Graph, but this account is set to send over SMTP: "mailkey add ${a} --graph --send graph" (or send = "auto"). Or: ${smtp.error.fix}`
  } else if (rec.settings.resources?.graph) {
    smtp.error.fix = `Nothing to do for mail sent through mailkey: the proxy and "mailkey send" submit through Microsoft Graph (see the graph line). ${smtp.error.fix}`
  } else if (
    rec.settings.servers.smtp &&
    /office365|outlook/i.test(rec.settings.servers.smtp + rec.settings.provider)
  ) {
    smtp.error.fix = `Sending through Microsoft Graph fixes this without an admin: run "mailkey add ${a} --graph", then send with the proxy or "mailkey send". Or: ${smtp.error.fix}`
  } else {
    smtp.error.fix = `If this is Microsoft 365, "mailkey add ${a} --graph" sends through Microsoft Graph instead. Or: ${smtp.error.fix}`
  }
}
