/**
 * The single-file executable's entry (Node's single executable applications; ADR 0013): the whole
 * CLI in one CommonJS bundle (scripts/build-exe.mjs), so nothing is loaded from disk but the
 * keyring addon (store/keyring-exe.ts). Tries the `mailkey token` fast path first, as the
 * installed entry (bin-fast.ts) does.
 *
 * The bundle is built with import.meta.url set to a file under EXE_ROOT, a path that exists
 * nowhere: the worker and agent paths other modules derive from it (broker/worker.ts,
 * cli/commands/store.ts) then name EXE_ROOT files, and when this executable is started again with
 * one of those as its first argument it runs that entry. The rest of argv is as a script's.
 *
 * Owns: choosing the entry. Must not: print anything but a fast-path token.
 */
import { fastToken } from './fast.js'
import { EXE_ROOT } from '../core/exe.js'

/** set by scripts/build-exe.mjs (package.json's version): the exe carries no package.json */
declare const MAILKEY_EXE_VERSION: string

async function entry(argv: string[]): Promise<number | undefined> {
  if (argv[0] === `${EXE_ROOT}bin.js`)
    argv = argv.slice(1) // the agent (cli/commands/store.ts)
  else if (argv[0]?.startsWith(EXE_ROOT) && argv[0].endsWith('/refresh-worker.js')) {
    const { runWorker } = await import('../broker/worker.js')
    process.exit(await runWorker(argv.slice(1)).catch(() => 1)) // as broker/refresh-worker.ts
  }
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    process.stdout.write(`${MAILKEY_EXE_VERSION}\n`)
    return 0
  }
  const token = await fastToken(argv, process.env).catch(() => undefined)
  if (token !== undefined) {
    process.stdout.write(token + '\n')
    return undefined
  }
  const { runMain } = await import('./run-main.js')
  return await runMain(argv)
}

// A single executable's argv is [exe, exe, ...args], as `node script ...args` would be
void entry(process.argv.slice(2)).then((code) => {
  if (code !== undefined) process.exitCode = code
})
