/**
 * aerc (accounts.conf). Direct: `imaps+xoauth2://` (or `imap+...` for STARTTLS; OAUTHBEARER where
 * the server takes it) with `source-cred-cmd` running `mailkey token`, and the same for `outgoing`
 * with `outgoing-cred-cmd-cache = false`, so every message gets a fresh token. Via the proxy:
 * `imap+insecure://` and plain SMTP to the loopback listeners with the local password command.
 *
 * Dialects (aerc-accounts(5), aerc-smtp(5), checked with aerc 0.14.0 in the tests):
 * - aerc < 0.15: `smtp://` is plain SMTP and STARTTLS needs `smtp-starttls = yes` (the word "yes":
 *   "true" is ignored, and aerc then refuses a server that offers STARTTLS); 0.15 and later:
 *   `smtp://` means STARTTLS and `smtp+insecure://` plain.
 * - accounts.conf is read with go-ini: an unquoted value ends at the first "#" or ";" (an inline
 *   comment), loses surrounding quotes, and continues on the next line after a "\\", so such values
 *   go in backticks. go-ini takes what lies between the first and the LAST backtick of the line
 *   verbatim (strings.LastIndex), so a value may itself hold backticks (checked with aerc 0.14.0:
 *   test/e2e/recipes-hostile.test.ts); every value, URLs included, goes through iniValue.
 * - aerc runs `source-cred-cmd` once, when it starts (0.14: a reconnect reuses that token), so a
 *   session longer than a token's life needs a restart, or the proxy.
 * - no CA setting: Go reads SSL_CERT_FILE.
 */
import { configCommand, localName, proxyPort, urlUser, serverSavesSent } from './parts.js'
import { shWord } from './shell.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

/** An accounts.conf value: bare when go-ini keeps it as it is, else in backticks (taken verbatim, inner backticks too). */
export function iniValue(s: string): string {
  if (/[\x00-\x1f\x7f]/.test(s)) throw new RangeError('an aerc setting cannot hold control characters')
  if (s !== '' && !/[#;`"'\\]/.test(s) && s.trim() === s) return s
  return `\`${s}\``
}

/** version < major.minor ("0.14.0" < 0.15); false when the version is unknown */
function older(version: string | undefined, major: number, minor: number): boolean {
  const m = version === undefined ? null : /^(\d+)\.(\d+)/.exec(version)
  if (!m) return false
  const [a, b] = [Number(m[1]), Number(m[2])]
  return a < major || (a === major && b < minor)
}

export const aerc: ClientRecipe = {
  name: 'aerc',
  summary: 'aerc: an accounts.conf section, IMAP and SMTP with XOAUTH2/OAUTHBEARER (or --via proxy)',
  direct: true,
  version: { command: 'aerc', args: ['-v'], pattern: /aerc (\d+\.\d+(?:\.\d+)?)/ },
  make(i: RecipeInput): Recipe {
    const legacy = older(i.clientVersion, 0, 15)
    const section = /^[^\s[\]#;]+$/.test(i.email) ? i.email : localName(i.email)
    const lines = [
      `# aerc account for ${i.email}, written by "${configCommand('aerc', i.email, i.proxy !== undefined)}"`,
      i.clientVersion
        ? `# Written for aerc ${i.clientVersion}.`
        : '# Written for aerc 0.15 or later (for aerc 0.14, add --client-version 0.14).',
      '# It goes into ~/.config/aerc/accounts.conf, mode 600 (aerc refuses a file others can read).',
    ]
    const body: string[] = [`[${section}]`]
    if (i.proxy) {
      const imapPort = proxyPort(i.proxy, 'imap')
      const smtpPort = proxyPort(i.proxy, 'smtp')
      const pw = iniValue(i.proxy.passwordCommand)
      // the proxy is on this machine: no TLS on the loopback hop (TLS upstream)
      body.push(
        `source = ${iniValue(`imap+insecure://${urlUser(i.email)}@${i.proxy.host}:${imapPort}`)}`,
        `source-cred-cmd = ${pw}`,
        `outgoing = ${iniValue(`${legacy ? 'smtp+plain' : 'smtp+insecure'}://${urlUser(i.email)}@${i.proxy.host}:${smtpPort}`)}`,
        `outgoing-cred-cmd = ${pw}`,
      )
    } else {
      if (!i.imap && !i.smtp) throw new RangeError(`the account ${i.email} has no IMAP or SMTP server`)
      const mech = i.sasl === 'OAUTHBEARER' ? 'oauthbearer' : 'xoauth2'
      const cmd = iniValue(i.tokenCommand)
      if (i.imap) {
        lines.push(
          '# aerc runs source-cred-cmd once, when it starts: after the access token expires (about an',
          '# hour at Microsoft and Google) a reconnect fails until aerc restarts. To stay connected for',
          `# days, use the proxy: ${configCommand('aerc', i.email, true)}`,
        )
        body.push(
          `source = ${iniValue(`${i.imap.tls === 'implicit' ? 'imaps' : 'imap'}+${mech}://${urlUser(i.user)}@${i.imap.host}:${i.imap.port}`)}`,
          `source-cred-cmd = ${cmd}`,
        )
      }
      if (i.smtp) {
        body.push(
          `outgoing = ${iniValue(`${i.smtp.tls === 'implicit' ? 'smtps' : 'smtp'}+${mech}://${urlUser(i.user)}@${i.smtp.host}:${i.smtp.port}`)}`,
          ...(i.smtp.tls === 'starttls' && legacy ? ['smtp-starttls = yes'] : []),
          `outgoing-cred-cmd = ${cmd}`,
          // a fresh token for every message (the default keeps the first one until aerc exits)
          'outgoing-cred-cmd-cache = false',
        )
      }
      if (i.ca)
        lines.push(
          `# aerc has no CA setting: start it as SSL_CERT_FILE=${shWord(i.ca)} aerc (for aerc, this replaces the system CAs).`,
        )
    }
    body.push(`from = ${iniValue(i.email)}`, 'default = INBOX')
    const savesSent = serverSavesSent(i)
    if (savesSent) body.push(`# ${savesSent}: no copy-to.`)
    else body.push('# copy-to = Sent     (only if your server does not file sent mail itself)')
    const text = [...lines, '', ...body, ''].join('\n')
    const usage = [
      `${configCommand('aerc', i.email, i.proxy !== undefined)} >> ~/.config/aerc/accounts.conf && chmod 600 ~/.config/aerc/accounts.conf`,
      `${!i.proxy && i.ca ? `SSL_CERT_FILE=${shWord(i.ca)} ` : ''}aerc`,
    ]
    if (i.proxy)
      usage.unshift(
        `needs the proxy's IMAP and SMTP listeners, and the local password printed by: ${i.proxy.passwordCommand}`,
      )
    return { text, usage }
  },
}
