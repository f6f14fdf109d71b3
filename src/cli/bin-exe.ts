/**
 * The single-file executable's entry (Node's single executable applications; ADR 0013). Tries the
 * `mailkey token` fast path first, as the installed entry (bin-fast.ts) does; anything else runs
 * the full CLI, a second bundle (exe-full.ts) that scripts/build-exe.mjs embeds as the SEA asset
 * FULL_ASSET, wrapped as a CommonJS function, with V8's code cache for it (CACHE_ASSET).
 *
 * The bundles are built with import.meta.url set to a file under EXE_ROOT, a path that exists
 * nowhere: the worker and agent paths other modules derive from it (broker/worker.ts,
 * cli/commands/store.ts) then name EXE_ROOT files, and when this executable is started again with
 * one of those as its first argument it runs that entry. The rest of argv is as a script's.
 *
 * Owns: choosing the entry, loading the full CLI. Must not: print anything but a fast-path token.
 */
import { getAsset } from 'node:sea' // Node >= 20.12; this module runs only in the executable
import { Script } from 'node:vm'
import { fastToken } from './fast.js'
import { EXE_ROOT } from '../core/exe.js'
import { mailkeyVersion } from './version.js'

export const FULL_ASSET = 'cli.cjs'
export const CACHE_ASSET = 'cli.cache'
type Full = typeof import('./exe-full.js')

/** the full CLI's bundle: `(function (exports, require, module) {…})`, compiled with its code cache */
function loadFull(): Full {
  const script = new Script(getAsset(FULL_ASSET, 'utf8'), {
    filename: `${EXE_ROOT}cli/${FULL_ASSET}`,
    cachedData: Buffer.from(getAsset(CACHE_ASSET)),
  })
  const mod = { exports: {} as Full }
  ;(script.runInThisContext() as (e: Full, r: NodeJS.Require, m: { exports: Full }) => void)(mod.exports, require, mod)
  return mod.exports
}

async function entry(argv: string[]): Promise<number | undefined> {
  if (argv[0] === `${EXE_ROOT}bin.js`)
    argv = argv.slice(1) // the agent (cli/commands/store.ts)
  else if (argv[0]?.startsWith(EXE_ROOT) && argv[0].endsWith('/refresh-worker.js'))
    process.exit(
      await loadFull()
        .runWorker(argv.slice(1))
        .catch(() => 1),
    ) // as broker/refresh-worker.ts
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    process.stdout.write(`${mailkeyVersion()}\n`)
    return 0
  }
  const token = await fastToken(argv, process.env).catch(() => undefined)
  if (token !== undefined) {
    process.stdout.write(token + '\n')
    return undefined
  }
  return await loadFull().runMain(argv)
}

// A single executable's argv is [exe, exe, ...args], as `node script ...args` would be
void entry(process.argv.slice(2)).then((code) => {
  if (code !== undefined) process.exitCode = code
})
