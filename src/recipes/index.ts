/** The client recipes of `mailkey config`, by name. */
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
import type { ClientRecipe } from './types.js'

export type { ClientRecipe, MailServer, Recipe, RecipeInput } from './types.js'

export const RECIPES: ReadonlyMap<string, ClientRecipe> = new Map([msmtp, mbsync, offlineimap, getmail, fetchmail, neomutt, aerc, himalaya, gitSendEmail, generic].map((r) => [r.name, r]))
