/**
 * The client recipes of `mailkey config`, by name. Every recipe gets only real addresses (a record
 * written by an older mailkey may hold anything): the address reaches shells and parsers in each
 * client's file, so each recipe quotes it for its consumer, and this is the second line.
 */
import { aerc } from './aerc.js'
import { fetchmail } from './fetchmail.js'
import { generic } from './generic.js'
import { getmail } from './getmail.js'
import { himalaya } from './himalaya.js'
import { gitSendEmail } from './git-send-email.js'
import { mbsync } from './mbsync.js'
import { msmtp } from './msmtp.js'
import { neomutt } from './neomutt.js'
import { offlineimap } from './offlineimap.js'
import { addressProblem, quoted } from '../core/address.js'
import type { ClientRecipe, RecipeInput } from './types.js'

export type { ClientRecipe, MailServer, Recipe, RecipeInput } from './types.js'

/** Refuse an input whose address or user name is not an RFC 5322 addr-spec (core/address.ts). */
function checked(r: ClientRecipe): ClientRecipe {
  return {
    ...r,
    make(i: RecipeInput) {
      for (const a of new Set([i.email, i.user])) {
        const why = addressProblem(a)
        if (why !== undefined) throw new RangeError(`${quoted(a)} is not an e-mail address: ${why}`)
      }
      return r.make(i)
    },
  }
}

export const RECIPES: ReadonlyMap<string, ClientRecipe> = new Map(
  [msmtp, mbsync, offlineimap, getmail, fetchmail, neomutt, aerc, himalaya, gitSendEmail, generic].map((r) => [
    r.name,
    checked(r),
  ]),
)
