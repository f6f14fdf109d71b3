// Preload (`node --import`) that appends every module URL the process loads to $MODULE_LOG, so a
// test can prove the `mailkey token` fast path never loads the OAuth stack.
import { register } from 'node:module'

const hooks = `
import { appendFileSync } from 'node:fs'
export async function load(url, context, next) {
  if (process.env.MODULE_LOG) appendFileSync(process.env.MODULE_LOG, url + '\\n')
  return next(url, context)
}`
register('data:text/javascript,' + encodeURIComponent(hooks))
