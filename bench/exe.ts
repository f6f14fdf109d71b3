// The single-file executable (ADR 0013) beside the npm install. Run: npm run bench:exe
//
// Size of dist/exe/mailkey (and gzipped, as it would be downloaded), and whole-process wall time
// of `mailkey token <email>` printing a cached token (the fast path) and of `mailkey list` (the
// full CLI), for the executable and for the npm install (node dist/cli/mailkey.cjs), with
// `node -e 0` as the floor: interleaved rounds, medians, ratios to the npm install in the same
// run. NODE_EXTRA_CA_CERTS is removed from the children's environment (on Node 20 it adds ~55 ms
// to every start, and would hide the difference).
import { readFileSync, statSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { startOAuthServer } from '../test/harness/oauth-server.js'
import { makeTmpHome } from '../test/harness/tmp-home.js'
import { BIN } from '../test/harness/cli.js'
import { signIn } from '../test/harness/sign-in.js'
import { buildExe } from '../test/harness/exe.js'
import { median, run } from './lib.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40)
const EMAIL = 'bench@example.test'

async function main(): Promise<void> {
  const exe = buildExe()
  const size = statSync(exe).size
  const gz = gzipSync(readFileSync(exe), { level: 6 }).length
  const lab = await startOAuthServer({ deviceInterval: 1 })
  const home = await makeTmpHome()
  const env: NodeJS.ProcessEnv = { ...home.env }
  delete env.NODE_EXTRA_CA_CERTS
  try {
    await signIn(lab, home.env, EMAIL)
    const cases: [string, string[]][] = [
      ['node -e 0', [process.execPath, '-e', '0']],
      ['npm install: token', [process.execPath, BIN, 'token', EMAIL]],
      ['executable: token', [exe, 'token', EMAIL]],
      ['npm install: list', [process.execPath, BIN, 'list']],
      ['executable: list', [exe, 'list']],
    ]
    const times = new Map<string, number[]>(cases.map(([n]) => [n, []]))
    for (const [, argv] of cases) await run(argv, env) // warm the page cache
    for (let i = 0; i < ROUNDS; i++) for (const [n, argv] of cases) times.get(n)?.push(await run(argv, env))
    const m = (n: string): number => median(times.get(n) ?? [])
    console.log(`node ${process.version} (${process.execPath}), ${ROUNDS} interleaved rounds, medians`)
    console.log(`dist/exe/mailkey: ${(size / 1e6).toFixed(1)} MB (${(gz / 1e6).toFixed(1)} MB gzipped)`)
    console.log('| command | median ms | ratio to the npm install |')
    console.log('|---|---:|---:|')
    for (const [n] of cases) {
      const base = n === 'node -e 0' ? undefined : m(n.replace('executable', 'npm install'))
      console.log(`| ${n} | ${m(n).toFixed(1)} | ${base ? (m(n) / base).toFixed(2) : '-'} |`)
    }
  } finally {
    await lab.close()
    await home.cleanup()
  }
}

await main()
