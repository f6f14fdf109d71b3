/**
 * mbsync (isync, ~/.mbsyncrc). Direct: `AuthMechs XOAUTH2` with `PassCmd "mailkey token ..."`;
 * isync hands XOAUTH2 to Cyrus SASL, which needs an XOAUTH2 plugin (Debian:
 * libsasl2-modules-kdexoauth2; others: sasl-xoauth2). Via the proxy: `AuthMechs LOGIN` to the
 * loopback listener, which needs no plugin.
 *
 * isync 1.4 spells the TLS option SSLType (1.5 renamed it TLSType and still reads SSLType), so the
 * recipe says SSLType. mbsync(1): PassCmd runs through the shell; a quoted argument may contain
 * \" and \\.
 */
import { dquote } from './shell.js'
import { configCommand, localName, proxyPort, serverSavesSent } from './parts.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

export const mbsync: ClientRecipe = {
  name: 'mbsync',
  summary: 'mbsync/isync: a file for ~/.mbsyncrc (needs a Cyrus SASL XOAUTH2 plugin, or --via proxy)',
  direct: true,
  make(i: RecipeInput): Recipe {
    // a store/channel name: mbsync refers to stores as :name:, so keep it to plain characters
    const name = localName(i.email)
    const account: string[] = [`IMAPAccount ${name}`]
    if (i.proxy) {
      const port = proxyPort(i.proxy, 'imap')
      account.push(
        `Host ${i.proxy.host}`,
        `Port ${port}`,
        `User ${dquote(i.email)}`,
        `PassCmd ${dquote(i.proxy.passwordCommand)}`,
        'AuthMechs LOGIN',
        // the proxy listens on this machine only: no TLS on the loopback hop, TLS upstream
        'SSLType None',
      )
    } else {
      const imap = i.imap
      if (!imap) throw new RangeError(`the account ${i.email} has no IMAP server`)
      account.push(
        `Host ${imap.host}`,
        `Port ${imap.port}`,
        `User ${dquote(i.user)}`,
        // mbsync asks again for every connection: mailkey hands out the cached token or refreshes it
        `PassCmd ${dquote(i.tokenCommand)}`,
        // Microsoft takes only XOAUTH2; isync 1.4 has no OAUTHBEARER through SASL either way
        'AuthMechs XOAUTH2',
        `SSLType ${imap.tls === 'implicit' ? 'IMAPS' : 'STARTTLS'}`,
        ...(i.ca ? [`CertificateFile ${dquote(i.ca)}`] : []),
      )
    }
    const maildir = `~/Mail/${name}`
    const text = [
      `# mbsync (isync) configuration for ${i.email}, written by "${configCommand('mbsync', i.email, i.proxy !== undefined)}".`,
      ...account,
      '',
      `IMAPStore ${name}-remote`,
      `Account ${name}`,
      '',
      `MaildirStore ${name}-local`,
      `Path ${maildir}/`,
      `Inbox ${maildir}/INBOX`,
      'SubFolders Verbatim',
      '',
      `Channel ${name}`,
      `Far :${name}-remote:`,
      `Near :${name}-local:`,
      'Patterns *',
      'Create Near',
      // deleting mail on the server is the user's call: nothing is expunged unless they say so
      'Expunge None',
      'SyncState *',
      '',
    ].join('\n')
    const usage = [
      `${configCommand('mbsync', i.email, i.proxy !== undefined)} > ~/.mbsyncrc && mkdir -p ${maildir}`,
      `mbsync ${name}              # or: mbsync -a`,
    ]
    if (!i.proxy)
      usage.push(
        'needs a Cyrus SASL XOAUTH2 plugin (Debian/Ubuntu: apt install libsasl2-modules-kdexoauth2); without one, use --via proxy',
      )
    else
      usage.unshift(
        `needs the proxy's IMAP listener on port ${i.proxy.imapPort} ("mailkey proxy --imap-port ${i.proxy.imapPort}"), and the local password printed by: ${i.proxy.passwordCommand}`,
      )
    const savesSent = serverSavesSent(i)
    if (savesSent) usage.push(`${savesSent}: do not also upload it from a local Sent folder.`)
    return { text, usage }
  },
}
