/**
 * What a failure on the way to an upstream login means for the client: a dead grant (reauth),
 * something that works again in a moment (transient), or a setting the user must fix (config).
 * Issue 11, item 5: this process running short of descriptors or memory (EMFILE, ENFILE, ...), even
 * as a plain Error (a module that could not be loaded), and a login that was interrupted while it
 * waited for a refresh are transient: nothing is wrong with the account.
 *
 * Owns: the error -> LoginOutcome verdict. Must not: log, or talk to a client or a server.
 */
import { InterruptedError, MailkeyError, shortageCode, shortageText } from '../errors.js'
import type { LoginOutcome } from '../protocols/shared/session.js'

export function failureOutcome(e: unknown): { outcome: LoginOutcome; reason: string } {
  const shortage = shortageCode(e)
  const message = e instanceof Error ? e.message : String(e)
  if (shortage !== undefined)
    return {
      outcome: 'transient',
      reason: message.includes(shortage) ? message : `${message}: ${shortageText(shortage)}`,
    }
  if (e instanceof InterruptedError) return { outcome: 'transient', reason: message }
  if (e instanceof MailkeyError)
    return { outcome: e.reauthRequired ? 'reauth' : e.transient ? 'transient' : 'config', reason: message }
  return { outcome: 'config', reason: message }
}
