/**
 * The `mailkey` executable as installed (bundled by esbuild into dist/cli/mailkey.cjs, CommonJS
 * because it starts faster than ES modules). Tries the fast path for `mailkey token`, else loads
 * the full CLI (dist/cli/bin.js).
 */
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { fastToken } from './fast.js'

const full = (): Promise<unknown> => import(pathToFileURL(join(__dirname, 'bin.js')).href)

fastToken(process.argv.slice(2), process.env).then((token) => {
  if (token === undefined) return full()
  process.stdout.write(token + '\n')
  return undefined
}, full)
