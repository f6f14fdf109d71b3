/**
 * himalaya (config.toml, an [accounts."you@x"] table). Not provable here: himalaya is packaged in
 * no Debian release and not on npm, so these files follow its sources (docs/clients.md names them).
 *
 * himalaya 2 (2026-07; the default): `imap.server`/`smtp.server` URLs, `imap.starttls = true` with
 * `imap://`, `imap.tls.cert` for an extra root, and SASL per protocol:
 * `imap.sasl.xoauth2.token.command = "<sh line>"` (a string runs through `sh -c`; the first line
 * of its output is the token). Via the proxy: LOGIN/PLAIN with `password.command`.
 *
 * himalaya 1.x: `backend.*` and `message.send.backend.*`. Its OAuth 2.0 is its own flow (client id,
 * auth and token URLs, the `oauth2` build feature) and cannot simply take a token from a command,
 * so for 1.x only the proxy variant is written (`backend.auth.type = "password"`, `auth.cmd`).
 */
import { configCommand, proxyListeners, serverSavesSent } from './parts.js'
import { shWord } from './shell.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

/** A TOML basic string: JSON's escapes are TOML's (\" \\ \n \uXXXX). */
const str = (s: string): string => JSON.stringify(s)

function major(version: string | undefined): number | undefined {
  const m = version === undefined ? null : /^(\d+)/.exec(version)
  return m ? Number(m[1]) : undefined
}

export const himalaya: ClientRecipe = {
  name: 'himalaya',
  summary: 'himalaya (CLI): an account for its config.toml, IMAP and SMTP with XOAUTH2/OAUTHBEARER (or --via proxy)',
  direct: true,
  version: { command: 'himalaya', args: ['--version'], pattern: /himalaya v?(\d+\.\d+(?:\.\d+)?)/ },
  notDirect(clientVersion) {
    return (major(clientVersion) ?? 2) < 2
      ? 'himalaya 1.x runs its own OAuth sign-in and cannot take a token from a command; himalaya 2 can'
      : undefined
  },
  make(i: RecipeInput): Recipe {
    const v1 = (major(i.clientVersion) ?? 2) < 2
    if (v1 && !i.proxy) throw new RangeError('himalaya 1.x cannot take a token from a command: use --via proxy')
    const lines = [
      `# himalaya account for ${i.email}, written by "${configCommand('himalaya', i.email, i.proxy !== undefined)}"`,
      `# for himalaya ${i.clientVersion ?? '2'}${i.clientVersion ? '' : ' (for himalaya 1.x: --client-version 1 --via proxy)'}. It goes into ~/.config/himalaya/config.toml.`,
      '',
      `[accounts.${str(i.email)}]`,
    ]
    if (v1) {
      const p = proxyListeners(i.proxy as NonNullable<RecipeInput['proxy']>)
      lines.push(`email = ${str(i.email)}`)
      for (const [prefix, port] of [
        ['backend', p.imapPort],
        ['message.send.backend', p.smtpPort],
      ] as const) {
        if (port === undefined) continue
        lines.push(
          `${prefix}.type = ${prefix === 'backend' ? '"imap"' : '"smtp"'}`,
          `${prefix}.host = ${str(p.host)}`,
          `${prefix}.port = ${port}`,
          // the proxy is on this machine: no TLS on the loopback hop (TLS upstream)
          `${prefix}.encryption.type = "none"`,
          `${prefix}.login = ${str(i.email)}`,
          `${prefix}.auth.type = "password"`,
          `${prefix}.auth.cmd = ${str(p.passwordCommand)}`,
        )
      }
    } else if (i.proxy) {
      const p = proxyListeners(i.proxy)
      if (p.imapPort !== undefined) {
        lines.push(
          `imap.server = ${str(`imap://${p.host}:${p.imapPort}`)}`,
          `imap.sasl.login.username = ${str(i.email)}`,
          `imap.sasl.login.password.command = ${str(p.passwordCommand)}`,
        )
      }
      if (p.smtpPort !== undefined) {
        lines.push(
          `smtp.server = ${str(`smtp://${p.host}:${p.smtpPort}`)}`,
          `smtp.sasl.plain.username = ${str(i.email)}`,
          `smtp.sasl.plain.password.command = ${str(p.passwordCommand)}`,
        )
      }
    } else {
      if (!i.imap && !i.smtp) throw new RangeError(`the account ${i.email} has no IMAP or SMTP server`)
      const mech = i.sasl === 'OAUTHBEARER' ? 'oauthbearer' : 'xoauth2'
      for (const [proto, server] of [
        ['imap', i.imap],
        ['smtp', i.smtp],
      ] as const) {
        if (!server) continue
        const scheme = server.tls === 'implicit' ? `${proto}s` : proto
        lines.push(`${proto}.server = ${str(`${scheme}://${server.host}:${server.port}`)}`)
        if (server.tls === 'starttls') lines.push(`${proto}.starttls = true`)
        if (i.ca) lines.push(`${proto}.tls.cert = ${str(i.ca)}`)
        lines.push(
          `${proto}.sasl.${mech}.username = ${str(i.user)}`,
          // a string runs through sh -c, once per connection: always a fresh token
          `${proto}.sasl.${mech}.token.command = ${str(i.tokenCommand)}`,
        )
      }
    }
    const savesSent = serverSavesSent(i)
    if (savesSent) lines.push(`# ${savesSent}: do not also save it (no --save).`)
    lines.push('')
    const usage = [
      `${configCommand('himalaya', i.email, i.proxy !== undefined)} >> ~/.config/himalaya/config.toml`,
      `himalaya ${v1 ? 'envelope' : 'envelopes'} list --account ${shWord(i.email)}`,
      "not proven by mailkey's tests (himalaya is not packaged for Debian): written from its sources; docs/clients.md",
    ]
    if (i.proxy)
      usage.unshift(`needs the proxy's listeners, and the local password printed by: ${i.proxy.passwordCommand}`)
    return { text: lines.join('\n'), usage }
  },
}
