/**
 * Which way an SMTP client's mail goes once its local login passed (issue 16): the account's SMTP
 * server (spliced, as before), or Microsoft Graph (graph-relay.ts). `send = "graph"` goes straight
 * to Graph; `"auto"` tries SMTP and, when the server answers 535 5.7.139 (SMTP AUTH switched off
 * for the mailbox) and the grant has Graph, switches the account to Graph for good and goes on
 * through Graph in the same connection; `"smtp"` stays with SMTP. A 5.7.139 that Graph cannot
 * answer is refused with the command that fixes it.
 *
 * Owns: that choice and the switch. Must not: talk to the client or read its input.
 */
import { shArg } from '../core/address.js'
import { failureOutcome } from './outcome.js'
import type { Log } from './door.js'
import type { TokenSource } from './token-source.js'
import type { UpstreamLogin } from './upstream.js'

type Tokens = Pick<TokenSource, 'record' | 'getAccessToken' | 'sendMode' | 'rememberSendMode'>

export interface RouteContext {
  tokens: Tokens
  account: string
  signal: AbortSignal
  log: Log
  cid: string
}

/** The login for an SMTP client with the account's own token: SMTP upstream (`smtp`), or Graph. */
export async function routeSmtpLogin(c: RouteContext, viaSmtp: () => Promise<UpstreamLogin>): Promise<UpstreamLogin> {
  const mode = (await c.tokens.sendMode?.(c.account).catch(() => undefined)) ?? 'smtp'
  if (mode === 'graph') return await graphLogin(c)
  const up = await viaSmtp()
  if (!up.smtpAuthDisabled) return up
  const rec = await c.tokens.record(c.account).catch(() => undefined)
  if (mode === 'auto' && rec?.settings.resources?.graph) {
    // "switches auto accounts to Graph once": remembered, so the next login goes to Graph at once
    await c.tokens.rememberSendMode?.(c.account, 'graph').catch(() => undefined)
    c.log({
      level: 'warn',
      cid: c.cid,
      proto: 'smtp',
      event: 'send-mode',
      account: c.account,
      msg: 'the SMTP server answered 5.7.139 (SMTP AUTH is off for this mailbox): this account now sends through Microsoft Graph',
    })
    return await graphLogin(c)
  }
  return {
    outcome: 'reauth',
    reason: `SMTP AUTH is switched off for this mailbox (535 5.7.139); run "mailkey add ${shArg(c.account)} --graph" to send through Microsoft Graph`,
    smtpAuthDisabled: true,
  }
}

/** A Graph login: a Graph token in hand now (a refresh if needed), so a dead grant is told at AUTH. */
async function graphLogin(c: RouteContext): Promise<UpstreamLogin> {
  try {
    await c.tokens.getAccessToken(c.account, { resource: 'graph', signal: c.signal })
    return { outcome: 'ok', graph: true }
  } catch (e) {
    return failureOutcome(e)
  }
}
