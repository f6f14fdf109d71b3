/**
 * What a listener lets a client send before and at login, decided once per listener from its
 * configuration (never from the peer): whether credentials must wait for TLS, and whether a
 * client's own XOAUTH2/OAUTHBEARER token may be passed through.
 *
 * - requireTls: a listener bound to anything but loopback takes credentials only over TLS. An
 *   implicit-TLS listener is TLS from the first byte; a STARTTLS listener refuses credentials until
 *   STARTTLS/STLS (IMAP LOGINDISABLED, POP3 no USER/SASL in CAPA, SMTP 530 5.7.0), whoever
 *   connects: 0.0.0.0 reached over 127.0.0.1 is still a listener other machines reach, and a
 *   stripping attacker in front of a real client looks like any peer.
 * - oauthPassthrough: off unless the listener says so (docs/adr/0008-proxy-credentials.md).
 *
 * Owns: that decision. Must not: look at sockets, peers or credentials.
 */
import { isLoopbackHost } from '../core/net.js'

export interface ListenerAuthInput {
  host: string
  tls?: { mode: 'implicit' | 'starttls' }
  oauthPassthrough?: boolean
}

export interface ListenerAuthPolicy {
  requireTls: boolean
  oauthPassthrough: boolean
}

export function listenerAuthPolicy(l: ListenerAuthInput): ListenerAuthPolicy {
  return {
    // RFC 8314 §3 / RFC 3207 §4 / RFC 2595 §4: off loopback, credentials only inside TLS. By the
    // bind address: a wildcard bind (0.0.0.0, ::) is not loopback, whoever connects to it.
    requireTls: !isLoopbackHost(l.host) && l.tls?.mode !== 'implicit',
    oauthPassthrough: l.oauthPassthrough === true,
  }
}
