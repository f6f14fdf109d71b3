#!/usr/bin/env node
// Fails when any secret the tests recorded (MAILKEY_TEST_SECRETS_FILE: one base64 value a line)
// appears in the log: raw, URL-encoded, or inside any base64 run (a SASL blob).
// Usage: node scripts/check-no-secrets.mjs LOG SECRETS
import { readFileSync } from 'node:fs'

const [logFile, secretsFile] = process.argv.slice(2)
if (!logFile || !secretsFile) {
  console.error('usage: check-no-secrets.mjs LOG SECRETS')
  process.exit(64)
}
const log = readFileSync(logFile, 'utf8')
const secrets = [
  ...new Set(
    readFileSync(secretsFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((b) => Buffer.from(b, 'base64').toString()),
  ),
]
const decoded = (log.match(/[A-Za-z0-9+/]{16,}={0,2}/g) ?? []).map((r) => Buffer.from(r, 'base64').toString('latin1'))
let leaks = 0
for (const s of secrets) {
  if (log.includes(s) || log.includes(encodeURIComponent(s)) || decoded.some((d) => d.includes(s))) {
    leaks++
    console.error(`check-no-secrets: a secret starting "${s.slice(0, 3)}" appears in the test output`)
  }
}
if (secrets.length === 0) {
  console.error('check-no-secrets: the tests recorded no secrets; the check would prove nothing')
  process.exit(1)
}
console.log(`check-no-secrets: ${secrets.length} secrets checked against ${log.length} bytes of output: ${leaks} found`)
process.exit(leaks ? 1 : 0)
