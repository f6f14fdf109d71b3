/**
 * What a failed login to a real mail server means, and the fix (for `mailkey test` and the proxy): the failures people actually hit with OAuth mail
 * (SMTP AUTH disabled, "authenticated but not connected", a token for the wrong service, IMAP/POP
 * switched off, untrusted certificates, wrong ports).
 *
 * Owns: the failure -> cause/fix table. Must not: do I/O.
 */
import type { FailureKind, Protocol } from './types.js'
import { ProbeFailure } from './dialogues.js'
import { ProbeNetworkError, isTlsCode } from './transport.js'
import { shortageCode, shortageText } from '../errors.js'
import { shArg } from '../core/address.js'
import { presetNamed } from '../providers/registry.js'

export interface Diagnosis {
  kind: FailureKind
  /** what is wrong, in a sentence */
  cause: string
  /** what to do, in a sentence (may name a command) */
  fix: string
}

export interface DiagnoseContext {
  protocol: Protocol
  account: string
  /** the SASL user (the mailbox being opened) */
  mailbox: string
  server: string
  /** true when the token was just refreshed and still refused */
  freshTokenRefused: boolean
  /** scopes the server granted, if known */
  grantedScope?: string
  /** the identity the provider says signed in, if known */
  signedInAs?: string
  provider: string
}

const SERVICE = { imap: 'IMAP', pop: 'POP3', smtp: 'SMTP' } as const

export function diagnose(e: unknown, ctx: DiagnoseContext): Diagnosis {
  if (e instanceof ProbeNetworkError) return diagnoseNetwork(e, ctx)
  if (e instanceof ProbeFailure) return diagnoseFailure(e, ctx)
  return { kind: 'protocol', cause: (e as Error)?.message ?? String(e), fix: 'Run again with --debug and report it.' }
}

/** A connection that failed before any server reply: DNS, TCP, TLS, the CA file, or this machine. */
function diagnoseNetwork(e: ProbeNetworkError, ctx: DiagnoseContext): Diagnosis {
  const scheme = ctx.server.split(':', 1)[0] ?? ''
  const code = e.code
  const shortage = shortageCode(e)
  if (shortage) {
    // Out of file descriptors or memory here (opening a socket, the CA file), or a DNS failure
    // that is no verdict on the name: an outage of this machine, not a wrong setting (issue 11).
    return {
      kind: 'transient',
      cause: `cannot connect to ${ctx.server}: ${shortageText(shortage)}`,
      fix: 'Nothing is wrong with the account; try again in a moment. If it keeps happening, this machine or process is short of file descriptors or memory.',
    }
  }
  if (code === 'CA_FILE') {
    return {
      kind: 'config',
      cause: e.message,
      fix: `Put the CA certificate back, or give another one: "mailkey add ${shArg(ctx.account)} --ca ca.pem".`,
    }
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      kind: 'config',
      cause: `the certificate of ${ctx.server} is not for that host name`,
      fix: 'Use the host name the certificate names (not an IP address or alias) in the server URL.',
    }
  }
  if (
    code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
    code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' ||
    (code === 'EPROTO' && !scheme.endsWith('s'))
  ) {
    return {
      kind: 'config',
      cause: `${ctx.server} does not speak TLS on that port (plain text, or STARTTLS)`,
      fix: `Use ${starttlsScheme(ctx.protocol)}://host:port for a STARTTLS port, or the implicit-TLS port: "mailkey add ${shArg(ctx.account)} --${urlFlag(ctx.protocol)} ..."`,
    }
  }
  if (isTlsCode(code)) {
    return {
      kind: 'config',
      cause: `the certificate of ${ctx.server} is not trusted (${code})`,
      fix: `If the server uses a private CA, give its certificate: "mailkey add ${shArg(ctx.account)} --ca ca.pem". Otherwise something is intercepting the connection.`,
    }
  }
  if (code === 'ECONNREFUSED') {
    return {
      kind: 'transient',
      cause: `nothing accepts connections at ${ctx.server}`,
      fix: `Check the host and port ("mailkey status ${shArg(ctx.account)}" shows them) and that no firewall blocks the port.`,
    }
  }
  if (code === 'ENOTFOUND') {
    return {
      kind: 'config',
      cause: `the host name of ${ctx.server} does not resolve`,
      fix: 'Check the server name and your DNS.',
    }
  }
  if (code === 'ETIMEDOUT') {
    return {
      kind: 'transient',
      cause: `${ctx.server} did not answer in time`,
      fix: 'Check the network and whether a firewall drops the port; then try again.',
    }
  }
  return { kind: 'transient', cause: e.message, fix: 'Check the network and try again.' }
}

/** A server reply at some stage of the dialogue: greeting, STARTTLS, capabilities, AUTH, mailbox. */
function diagnoseFailure(e: ProbeFailure, ctx: DiagnoseContext): Diagnosis {
  const svc = SERVICE[ctx.protocol]
  const reply = e.reply
  switch (e.stage) {
    case 'greeting':
      return {
        kind: 'protocol',
        cause: `${ctx.server} does not greet like a ${svc} server (${reply.slice(0, 120)})`,
        fix: `Check that the ${urlFlag(ctx.protocol)} points at a ${svc} port.`,
      }
    case 'starttls':
      if (/injection/i.test(e.message))
        return {
          kind: 'protocol',
          cause: 'data was injected before the TLS handshake (a man in the middle, or a broken server)',
          fix: `Use the implicit-TLS port (${implicitScheme(ctx.protocol)}://) and report it to the server's admin.`,
        }
      return {
        kind: 'config',
        cause: e.message,
        fix: `Use the implicit-TLS URL: "mailkey add ${shArg(ctx.account)} --${urlFlag(ctx.protocol)} ${implicitScheme(ctx.protocol)}://host:port".`,
      }
    case 'capability':
      return {
        kind: 'config',
        cause: e.message,
        fix: `OAuth may be switched off for ${svc} on this server, or this is not the provider's OAuth-enabled server. Check the server address.`,
      }
    case 'auth':
      return diagnoseAuth(e, ctx, svc)
    case 'mailbox':
      if (/authenticated but not connected/i.test(reply)) {
        return {
          kind: 'config',
          cause: `the server accepted the token but the signed-in user${ctx.signedInAs ? ` (${ctx.signedInAs})` : ''} cannot open the mailbox ${ctx.mailbox}`,
          fix: `Sign in as the mailbox's owner ("mailkey add ${shArg(ctx.mailbox)}"), or for a shared mailbox make sure your user has Full Access to it and give it with --mailbox.`,
        }
      }
      return {
        kind: 'protocol',
        cause: `logged in, but the mailbox could not be opened: ${reply.slice(0, 160)}`,
        fix: 'Check the mailbox in a webmail client; the server may be repairing it.',
      }
    case 'command':
      return { kind: 'protocol', cause: e.message, fix: `The ${svc} server behaves unexpectedly; try again later.` }
  }
  return { kind: 'protocol', cause: e.message, fix: 'Run again with --debug and report it.' }
}

function diagnoseAuth(e: ProbeFailure, ctx: DiagnoseContext, svc: string): Diagnosis {
  const reply = e.reply
  // Microsoft: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant"
  if (/5\.7\.139/.test(reply) || /SmtpClientAuthentication is disabled/i.test(reply)) {
    return {
      kind: 'config',
      cause: 'SMTP AUTH is switched off for this mailbox or its whole organisation (535 5.7.139)',
      fix: 'An Exchange admin must allow "Authenticated SMTP" for the mailbox (Microsoft 365 admin center > user > Mail > Manage email apps, or Set-CASMailbox -SmtpClientAuthenticationDisabled $false).',
    }
  }
  // RFC 5530 §3: [LIMIT] is a server limit (Dovecot: too many connections from this user and
  // address), not a refused token: try later.
  if (/454|4\.7\.0|\[UNAVAILABLE\]|\[SYS\/TEMP\]|\[LIMIT\]|temporar/i.test(reply)) {
    return {
      kind: 'transient',
      cause: `${svc} login is temporarily unavailable at the server (${reply.slice(0, 120)})`,
      fix: 'Try again in a few minutes.',
    }
  }
  if (!ctx.freshTokenRefused) {
    return {
      kind: 'reauth',
      cause: `the server refused the token (${reply.slice(0, 120)})`,
      fix: `Run "mailkey add ${shArg(ctx.account)}" to sign in again.`,
    }
  }
  const scope = ctx.grantedScope
  if (scope !== undefined) {
    if (/graph\.microsoft\.com/i.test(scope)) {
      return {
        kind: 'config',
        cause: 'the token is for Microsoft Graph, not for the mail servers (one resource per token)',
        fix: `Sign in again with the outlook.office.com mail scopes only: "mailkey add ${shArg(ctx.account)} --scope ..." without Graph scopes.`,
      }
    }
    const want = presetNamed(ctx.provider)?.protocolScopes?.[ctx.protocol]
    if (want && !scope.includes(want)) {
      return {
        kind: 'config',
        cause: `the token does not carry the ${svc} permission (${want}); it has: ${scope}`,
        fix: `Sign in again asking for it: "mailkey add ${shArg(ctx.account)}" (the default scopes include it).`,
      }
    }
  }
  if (ctx.signedInAs && ctx.signedInAs.toLowerCase() !== ctx.mailbox.toLowerCase()) {
    return {
      kind: 'config',
      cause: `signed in as ${ctx.signedInAs}, but logging in to the mailbox ${ctx.mailbox}`,
      fix: `Sign in as ${ctx.mailbox} ("mailkey add ${shArg(ctx.mailbox)}"), or check that ${ctx.signedInAs} has access to it.`,
    }
  }
  // Only URL-shaped scopes say something (Gmail: https://mail.google.com/); Dovecot's default is "mail".
  const challengeScope =
    typeof e.challenge?.scope === 'string' && e.challenge.scope.includes('://') ? e.challenge.scope : undefined
  if (
    challengeScope &&
    scope !== undefined &&
    !scope.split(/\s+/).some((s) => challengeScope.split(/\s+/).includes(s))
  ) {
    return {
      kind: 'config',
      cause: `the server wants the scope "${challengeScope}", which the token does not have`,
      fix: `Sign in again with that scope: "mailkey add ${shArg(ctx.account)} --scope ${shArg(`${challengeScope} offline_access`)}".`,
    }
  }
  return {
    kind: 'config',
    cause: `the server refused a freshly refreshed token (${reply.slice(0, 120)})`,
    fix: `${svc} access may be switched off for this mailbox (Microsoft: "Manage email apps" in the admin center), or the account may lack access. Check with your admin; "mailkey status ${shArg(ctx.account)}" shows the granted scopes.`,
  }
}

function urlFlag(p: Protocol): string {
  return `${p}-url`
}
function implicitScheme(p: Protocol): string {
  return p === 'imap' ? 'imaps' : p === 'pop' ? 'pop3s' : 'smtps'
}
function starttlsScheme(p: Protocol): string {
  return p === 'imap' ? 'imap' : p === 'pop' ? 'pop3' : 'smtp'
}
