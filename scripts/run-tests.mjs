#!/usr/bin/env node
// Runs the test suite with node's built-in runner (node:test) through tsx, on any Node >= 20.
// Node 20's --test takes no globs, so the files are listed here. Usage:
//   node scripts/run-tests.mjs [dir-or-file ...]   (default: test/unit test/integration test/e2e test/fuzz)
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

const roots = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ['test/unit', 'test/integration', 'test/e2e', 'test/fuzz']
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
if (files.length === 0) {
  console.error('run-tests: no test files found under', roots.join(' '))
  process.exit(1)
}
const env = { ...process.env }
// ~55 ms per Node 20 start (docs: bench/README.md); tests spawn many processes and use no TLS CA.
delete env.NODE_EXTRA_CA_CERTS
const args = ['--import', 'tsx', '--test', '--test-reporter=spec']
if (process.env.TEST_CONCURRENCY) args.push(`--test-concurrency=${process.env.TEST_CONCURRENCY}`)
const r = spawnSync(process.execPath, [...args, ...files], { stdio: 'inherit', env })
process.exit(r.status ?? 1)
