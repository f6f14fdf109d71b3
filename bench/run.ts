// mailkey benchmarks (not a CI gate). Run: npm run bench
//
// 1. startup: whole-process wall time of `mailkey token` printing a cached token, against
//    `node -e 0` and `node -e 'read a JSON file and print'` on the same machine in one run
//    (interleaved rounds, medians). NODE_EXTRA_CA_CERTS is removed from the children's
//    environment: on Node 20 it adds ~55 ms to every start.
//    Also an encrypted store (ADR 0007): the key from a running agent (the fast path), and from the
//    OS keyring with no agent (a real Secret Service: gnome-keyring on a private bus).
// 2. refresh storm: N concurrent `mailkey token` processes on one expired token against the real
//    oidc-provider on loopback: token-endpoint requests (must be 1) and wall time to the last
//    process, compared with N processes printing a cached token.
import { readFile, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { startOAuthServer } from '../test/harness/oauth-server.js'
import { makeTmpHome, recordFile } from '../test/harness/tmp-home.js'
import { BIN, runCli } from '../test/harness/cli.js'
import { signIn } from '../test/harness/sign-in.js'
import { keyringAvailable, startKeyring, type Keyring } from '../test/harness/keyring.js'
import { cp } from 'node:fs/promises'
import { median, run } from './lib.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40)
const STORM = Number(process.env.BENCH_STORM ?? 50)
const EMAIL = 'bench@example.test'

const p90 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)] as number

async function main(): Promise<void> {
  const lab = await startOAuthServer({ deviceInterval: 1 })
  const home = await makeTmpHome()
  const env = { ...home.env }
  delete env.NODE_EXTRA_CA_CERTS
  const homes = [home]
  let keyring: Keyring | undefined
  try {
    await signIn(lab, env, EMAIL)
    const recPath = recordFile(env, EMAIL)
    const jsonFile = join(home.dir, 'plain.json')
    await writeFile(jsonFile, JSON.stringify({ token: 'x'.repeat(40) }))

    // the same account in an encrypted store: a copy of the state, migrated, unlocked
    const encrypted = async (
      to: 'passphrase' | 'keyring',
      extra: Record<string, string>,
    ): Promise<Record<string, string>> => {
      const h = await makeTmpHome()
      homes.push(h)
      const e = { ...h.env, ...extra }
      delete e.NODE_EXTRA_CA_CERTS
      await cp(env.XDG_STATE_HOME as string, e.XDG_STATE_HOME as string, { recursive: true })
      const m = await runCli(['store', 'migrate', '--to', to], e, { stdin: 'bench pass phrase\n' })
      if (m.code !== 0) throw new Error(m.stderr)
      return e
    }
    const agentEnv = await encrypted('passphrase', {})
    if ((await runCli(['unlock', '--for', '1h'], agentEnv, { stdin: 'bench pass phrase\n' })).code !== 0)
      throw new Error('unlock failed')
    let keyringEnv: Record<string, string> | undefined
    if (keyringAvailable()) {
      keyring = await startKeyring()
      keyringEnv = await encrypted('keyring', keyring.env)
    }

    const cases: [string, string[], NodeJS.ProcessEnv][] = [
      ['node -e 0', [process.execPath, '-e', '0'], env],
      [
        'node: read JSON + print',
        [
          process.execPath,
          '-e',
          `process.stdout.write(JSON.parse(require('fs').readFileSync(${JSON.stringify(jsonFile)},'utf8')).token+'\\n')`,
        ],
        env,
      ],
      ['mailkey token (cached)', [process.execPath, BIN, 'token', EMAIL], env],
      ['mailkey token (encrypted, agent)', [process.execPath, BIN, 'token', EMAIL], agentEnv],
      ...(keyringEnv
        ? [
            [
              'mailkey token (encrypted, OS keyring, no agent)',
              [process.execPath, BIN, 'token', EMAIL],
              keyringEnv,
            ] as [string, string[], NodeJS.ProcessEnv],
          ]
        : []),
    ]
    const times = new Map<string, number[]>(cases.map(([n]) => [n, []]))
    for (let i = 0; i < 3; i++) for (const [, argv, e] of cases) await run(argv, e) // warm-up
    for (let r = 0; r < ROUNDS; r++) {
      const order = [...cases].sort(() => Math.random() - 0.5)
      for (const [name, argv, e] of order) times.get(name)?.push(await run(argv, e))
    }
    const base = median(times.get('node -e 0') as number[])
    console.log(`\n## startup (${ROUNDS} interleaved rounds, NODE_EXTRA_CA_CERTS unset)\n`)
    console.log('| command | median ms | p90 ms | vs node -e 0 |')
    console.log('|---|---|---|---|')
    for (const [name] of cases) {
      const xs = times.get(name) as number[]
      console.log(
        `| ${name} | ${median(xs).toFixed(1)} | ${p90(xs).toFixed(1)} | ${(median(xs) / base).toFixed(2)}x (+${(median(xs) - base).toFixed(1)} ms) |`,
      )
    }

    // refresh storm
    const storm = async (expired: boolean): Promise<{ wall: number; refreshes: number }> => {
      if (expired) {
        const raw = JSON.parse(await readFile(recPath, 'utf8')) as { grant: { expiresAt: number } }
        raw.grant.expiresAt = Date.now() - 1000
        await writeFile(recPath, JSON.stringify(raw))
      }
      lab.resetCounts()
      const t0 = performance.now()
      await Promise.all(Array.from({ length: STORM }, () => run([process.execPath, BIN, 'token', EMAIL], env)))
      return { wall: performance.now() - t0, refreshes: lab.counts.refresh }
    }
    const cached: number[] = []
    const stormy: number[] = []
    let refreshes = 0
    for (let i = 0; i < 5; i++) {
      cached.push((await storm(false)).wall)
      const s = await storm(true)
      stormy.push(s.wall)
      refreshes = Math.max(refreshes, s.refreshes)
      if (s.refreshes !== 1) throw new Error(`storm ${i}: ${s.refreshes} refresh requests`)
    }
    console.log(`\n## refresh storm: ${STORM} concurrent \`mailkey token\` processes, 5 runs\n`)
    console.log('| case | median wall ms (all processes done) | token-endpoint requests |')
    console.log('|---|---|---|')
    console.log(`| cached token | ${median(cached).toFixed(0)} | 0 |`)
    console.log(`| expired token | ${median(stormy).toFixed(0)} | ${refreshes} (every run) |`)
    console.log(
      `\nmachine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Node ${process.version}, ${process.platform}`,
    )
  } finally {
    for (const h of homes) await runCli(['lock'], h.env).catch(() => undefined)
    await keyring?.stop()
    await lab.close()
    for (const h of homes) await h.cleanup()
  }
}

await main()
