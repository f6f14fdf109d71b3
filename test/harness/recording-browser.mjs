#!/usr/bin/env node
// A BROWSER command for tests: records what it was started with (its argv, which every user of
// the machine can read in `ps`) and what it was handed: the page's and its directory's modes, and
// the URL the page forwards to. Appends one JSON line to $RECORDING_BROWSER_LOG and exits; the
// test then plays the user at that URL. Prints nothing.
import { appendFileSync, readFileSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const target = process.argv[process.argv.length - 1] ?? ''
const entry = { argv: process.argv.slice(2) }
try {
  const path = target.startsWith('file:') ? fileURLToPath(target) : target
  const html = readFileSync(path, 'utf8')
  const m = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(html)
  const unescape = (s) => s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
  Object.assign(entry, {
    page: path,
    pageMode: statSync(path).mode & 0o777,
    dirMode: statSync(dirname(path)).mode & 0o777,
    url: m ? unescape(m[1]) : undefined,
  })
} catch (e) {
  entry.error = String(e?.code ?? e)
}
appendFileSync(process.env.RECORDING_BROWSER_LOG, JSON.stringify(entry) + '\n')
