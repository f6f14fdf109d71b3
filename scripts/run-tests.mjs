#!/usr/bin/env node
// Runs the test suite with node's built-in runner (node:test) through tsx, on any Node >= 20.
// Node 20's --test takes no globs, so the files are listed here. Usage:
//   node scripts/run-tests.mjs [dir-or-file ...]   (default: test/e2e test/integration test/unit test/fuzz)
// Files run side by side: TEST_CONCURRENCY files at a time (default twice the cores, at least 4).
// Node's own default (cores - 1) runs one file at a time on two cores, although most e2e files
// spend their time waiting on child processes and sockets. Every test must therefore be safe
// beside others: free ports only, its own temp dirs, no timeout that a busy machine can reach.
// The slow directories come first, and the longest files (as measured) before the rest, so that
// a long file does not start last: the run ends when the longest file does. Only an order.
import { readdirSync, statSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

const roots = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ['test/e2e', 'test/integration', 'test/unit', 'test/fuzz']
const files = []
const walk = (p) => {
  let st
  try {
    st = statSync(p)
  } catch {
    return
  }
  if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(join(p, n))
  else if (/\.test\.(ts|mts|js|mjs)$/.test(p)) files.push(p)
}
roots.forEach(walk)
const LONGEST = [
  'fleet-crash',
  'fleet-crash-redis',
  'fleet-faults',
  'store',
  'kill',
  'fleet',
  'signin',
  'proxy-credentials',
  'recipes',
  'refresh',
  'proxy',
].map((n) => `test/e2e/${n}.test.ts`)
const rank = (f) => (LONGEST.includes(f) ? LONGEST.indexOf(f) : LONGEST.length)
files.sort((a, b) => rank(a) - rank(b)) // stable: the rest keep their order
if (files.length === 0) {
  console.error('run-tests: no test files found under', roots.join(' '))
  process.exit(1)
}
const env = { ...process.env }
// ~55 ms per Node 20 start (docs: bench/README.md); tests spawn many processes and use no TLS CA.
delete env.NODE_EXTRA_CA_CERTS
const concurrency = process.env.TEST_CONCURRENCY || String(Math.max(4, 2 * availableParallelism()))
if (!/^[1-9]\d*$/.test(concurrency)) {
  console.error(`run-tests: TEST_CONCURRENCY must be a whole number of files, not "${concurrency}"`)
  process.exit(1)
}
// Files that drive a process to its descriptor ceiling (prlimit) and check what happens at each
// step run alone, after the rest: whether the n-th open() fails depends on what else the machine
// is doing at that instant (seen in CI: a login that should have run out of descriptors did not).
const ALONE = ['test/e2e/proxy-limits.test.ts']
const together = files.filter((f) => !ALONE.includes(f))
const alone = files.filter((f) => ALONE.includes(f))
const args = ['--import', 'tsx', '--test', '--test-reporter=spec']
let status = 0
for (const [batch, n] of [
  [together, concurrency],
  [alone, '1'],
]) {
  if (batch.length === 0) continue
  const r = spawnSync(process.execPath, [...args, `--test-concurrency=${n}`, ...batch], { stdio: 'inherit', env })
  if (r.status !== 0) status = r.status ?? 1
}
process.exit(status)
