/**
 * The `mailkey` executable as installed (bundled by esbuild into dist/cli/mailkey.cjs, CommonJS
 * because it starts faster than ES modules). Tries the fast path for `mailkey token`, else loads
 * the full CLI (dist/cli/bin.js). `mailkey --version` (-V) is answered here too: the version the
 * build put in (esbuild --define:MAILKEY_VERSION, from package.json), else the package.json of the
 * package this file is in (the same rule as version.ts, without import.meta, which CommonJS lacks).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { fastToken } from './fast.js'

declare const MAILKEY_VERSION: string | undefined

function version(): string {
  if (typeof MAILKEY_VERSION === 'string' && MAILKEY_VERSION !== '') return MAILKEY_VERSION
  return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version
}

const full = (): Promise<unknown> => import(pathToFileURL(join(__dirname, 'bin.js')).href)

const argv = process.argv.slice(2)
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) process.stdout.write(`${version()}\n`)
else
  fastToken(argv, process.env).then((token) => {
    if (token === undefined) return full()
    process.stdout.write(token + '\n')
    return undefined
  }, full)
