/** Pieces several recipes need. Owns: nothing of its own. Must not: do I/O. */
import { shWord } from './shell.js'
import type { RecipeInput } from './types.js'
import { presetNamed } from '../providers/registry.js'

/** The command that prints this recipe, as the user would type it: the address quoted for sh. */
export function configCommand(client: string, email: string, viaProxy: boolean): string {
  return `mailkey config ${client} ${shWord(email)}${viaProxy ? ' --via proxy' : ''}`
}

/**
 * "Exchange Online saves sent mail in Sent Items itself" when the account's server files sent
 * mail on its own (Provider.savesSentMail), for the recipe to add how not to save a second copy.
 */
export function serverSavesSent(i: RecipeInput): string | undefined {
  // learn.microsoft.com/graph/api/user-sendmail: saveToSentItems defaults to true for sendMail
  if (i.graph) return 'Microsoft Graph saves every message it sends in Sent Items itself'
  const s = presetNamed(i.provider)?.savesSentMail
  return s && `${s.server} saves sent mail in ${s.folder} itself`
}

/** A name for the account inside a client's file (mbsync refers to stores as :name:): plain characters only. */
export function localName(email: string): string {
  return email.replace(/[^A-Za-z0-9._-]/g, '-')
}

/** The proxy listener's port for `protocol`, or the reason there is none. */
export function proxyPort(proxy: NonNullable<RecipeInput['proxy']>, protocol: 'imap' | 'smtp'): number {
  const port = protocol === 'imap' ? proxy.imapPort : proxy.smtpPort
  if (port === undefined)
    throw new RangeError(`config.toml has no plain ${protocol.toUpperCase()} listener of the proxy for this account`)
  return port
}

/** For clients that take IMAP, SMTP or both: the proxy's listeners, at least one of them. */
export function proxyListeners(proxy: NonNullable<RecipeInput['proxy']>): NonNullable<RecipeInput['proxy']> {
  if (proxy.imapPort === undefined && proxy.smtpPort === undefined)
    throw new RangeError('config.toml has no plain IMAP or SMTP listener of the proxy for this account')
  return proxy
}

/** A user name inside a URL (imap://user@host): "@", ":", "/" and the like percent-encoded (RFC 3986 §3.2.1). */
export function urlUser(user: string): string {
  return encodeURIComponent(user)
}
