#!/usr/bin/env node
// CONTRIBUTING's commit rule, checked: a subject of at most 72 characters, and for every commit
// that is not a merge, a body (after a blank line) that says why. Commits before SINCE were made
// before the rule was checked and are left as they are. Outside a git checkout (an npm tarball)
// there is no history to check, and it says so.
import { execFileSync } from 'node:child_process'

const SINCE = '93a70c222360cc46614e6235384652b90ca97fc5' // the last commit before the rule was checked (issue 12)
const MAX_SUBJECT = 72

let out
try {
  execFileSync('git', ['rev-parse', '--verify', '--quiet', `${SINCE}^{commit}`], { stdio: 'ignore' })
  out = execFileSync('git', ['log', '--format=%H%x00%P%x00%B%x01', `${SINCE}..HEAD`], { encoding: 'utf8' })
} catch {
  console.log('check-commits: no git history here; nothing to check')
  process.exit(0)
}
const problems = []
let count = 0
for (const entry of out.split('\x01')) {
  const [hash, parents, message] = entry.replace(/^\n/, '').split('\x00')
  if (!hash || message === undefined) continue
  count++
  const [subject = '', blank, ...rest] = message.replace(/\n+$/, '').split('\n')
  const merge = (parents ?? '').trim().split(' ').length > 1
  if (subject.length > MAX_SUBJECT)
    problems.push(`${hash.slice(0, 8)} subject is ${subject.length} characters: ${subject}`)
  if (!merge && (blank !== '' || rest.join('').trim() === ''))
    problems.push(`${hash.slice(0, 8)} has no body saying why: ${subject}`)
}
if (problems.length) {
  console.error(`check-commits: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
console.log(`check-commits: ${count} commits since ${SINCE}, subjects <= ${MAX_SUBJECT}, each with a body`)
