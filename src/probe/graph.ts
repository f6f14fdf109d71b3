/**
 * `mailkey test`'s Microsoft Graph check (issue 16): does the account's Graph token let it send,
 * without sending anything? sendMail with an empty JSON body: Graph checks the token (401) and the
 * Mail.Send permission (403) before it reads the payload, then refuses the empty payload (400).
 * A 400 therefore means "this token may send"; no message exists to go out.
 *
 * Owns: that probe and its diagnosis. Must not: print.
 */
import { MailkeyError, ERR } from '../errors.js'
import { shArg } from '../core/address.js'
import type { Secret } from '../core/secret.js'
import type { AccountRecord } from '../domain/account.js'
import { graphCaFile, graphOutcome, sendCheckRequest } from '../upstream/graph.js'
import { GraphNetworkError, graphFetch } from '../upstream/graph-http.js'
import type { ProtocolReport } from './types.js'

/** What the probe needs: a Graph token, refreshed when asked (a `Mailkey`, or a fake). */
export interface GraphTokens {
  getAccessToken(
    account: string,
    o: { resource: 'graph'; forceRefresh: boolean; signal?: AbortSignal },
  ): Promise<{ token: Secret }>
}

export async function probeGraph(
  mk: GraphTokens,
  rec: AccountRecord,
  opts: { timeoutMs?: number; signal?: AbortSignal },
): Promise<ProtocolReport> {
  const s = rec.settings
  const a = shArg(s.email)
  const base = s.servers.graph
  const report: ProtocolReport = {
    protocol: 'graph',
    server: base ?? '-',
    ok: false,
    steps: [],
    retriedWithFreshToken: false,
  }
  if (!base || !s.resources?.graph) {
    report.error = {
      stage: 'token',
      message: `the sign-in of ${s.email} did not ask for Microsoft Graph`,
      kind: 'config',
      cause: 'no Microsoft Graph (Mail.Send) in this grant',
      fix: `Run "mailkey add ${a} --graph" to sign in with it.`,
    }
    return report
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    const forceRefresh = attempt === 1
    let token
    try {
      const t = await mk.getAccessToken(s.email, {
        resource: 'graph',
        forceRefresh,
        ...(opts.signal ? { signal: opts.signal } : {}),
      })
      token = t.token
    } catch (e) {
      report.error = tokenError(e, a)
      return report
    }
    report.steps = ['Graph token (Mail.Send)']
    let outcome
    try {
      const answer = await graphFetch(sendCheckRequest(base, token.reveal()), {
        timeoutMs: opts.timeoutMs ?? 15_000,
        ...(graphCaFile(base, s.ca) ? { caFile: graphCaFile(base, s.ca) as string } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      })
      outcome = graphOutcome(answer, Date.now(), [token.reveal()])
    } catch (e) {
      const why = e instanceof GraphNetworkError ? e.message : String(e)
      report.error = {
        stage: 'connect',
        message: why,
        kind: 'transient',
        cause: 'Microsoft Graph cannot be reached',
        fix: 'Try again later; check the network.',
      }
      return report
    }
    // a 400 in Graph's error form (a code): Graph itself refused the empty payload, after the token
    if (outcome.kind === 'refused' && outcome.status === 400 && outcome.code !== '') {
      report.ok = true
      report.steps.push('POST /me/sendMail with no message: 400, nothing sent (the token may send)')
      return report
    }
    if (outcome.kind === 'token-refused' && !forceRefresh) {
      report.retriedWithFreshToken = true
      continue
    }
    report.error = outcomeError(outcome, a)
    return report
  }
  return report
}

function tokenError(e: unknown, a: string): NonNullable<ProtocolReport['error']> {
  const err = e instanceof MailkeyError ? e : undefined
  const notGranted = err?.code === ERR.GRAPH_NOT_GRANTED || err?.code === ERR.CONSENT_REQUIRED
  return {
    stage: 'token',
    message: err?.message ?? String(e),
    kind: err?.transient ? 'transient' : notGranted ? 'config' : err?.reauthRequired ? 'reauth' : 'config',
    cause: notGranted ? 'Microsoft Graph (Mail.Send) was not granted to this sign-in' : 'no Microsoft Graph token',
    fix: err?.transient ? 'Try again later.' : `Run "mailkey add ${a} --graph" to sign in with Graph.`,
  }
}

function outcomeError(o: ReturnType<typeof graphOutcome>, a: string): NonNullable<ProtocolReport['error']> {
  if (o.kind === 'unexpected')
    return {
      stage: 'send',
      message: `HTTP ${o.status}`,
      kind: 'config',
      cause: 'the Graph address does not answer like Microsoft Graph',
      fix: 'Check the Graph URL ("mailkey status"; "mailkey add … --graph --graph-url URL").',
    }
  if (o.kind === 'throttled' || o.kind === 'unavailable')
    return {
      stage: 'send',
      message: o.message || `HTTP ${o.status}`,
      kind: 'transient',
      cause: 'Microsoft Graph is busy or failing',
      fix: 'Try again later.',
    }
  if (o.kind === 'accepted')
    return {
      stage: 'send',
      message: 'Graph accepted an empty request',
      kind: 'protocol',
      cause: 'this is not how Graph behaves',
      fix: 'Check the Graph URL ("mailkey status").',
    }
  const code = 'code' in o ? o.code : ''
  return {
    stage: 'send',
    message: `${o.kind === 'token-refused' ? 401 : o.kind === 'forbidden' || o.kind === 'send-as-denied' ? 403 : 'status' in o ? o.status : 413} ${code}: ${o.message}`,
    kind: o.kind === 'token-refused' ? 'reauth' : 'config',
    cause:
      o.kind === 'token-refused'
        ? 'Graph refused a freshly refreshed token'
        : 'Graph does not let this token send mail (Mail.Send)',
    fix: `Run "mailkey add ${a} --graph" to sign in again with Graph.`,
  }
}
