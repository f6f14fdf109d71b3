#!/usr/bin/env node
// The size rules of CONTRIBUTING.md, measured with the TypeScript parser (the compiler the build
// uses, so no second grammar): no function in src/ longer than MAX_FUNCTION_LINES lines from its
// first line to its last (Prettier-formatted, comments and blank lines included), and the broker's
// entry module at most MAX_BROKER_LINES lines. Usage: node scripts/check-shape.mjs [--list]
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'

const MAX_FUNCTION_LINES = 80
const MAX_BROKER_LINES = 250
const BROKER = 'src/broker/broker.ts'

const files = []
const walk = (p) => {
  if (statSync(p).isDirectory()) for (const n of readdirSync(p).sort()) walk(join(p, n))
  else if (p.endsWith('.ts')) files.push(p)
}
walk('src')

/** every function-like node with a body: [lines, where, name] */
function longFunctions(file) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
  const found = []
  const visit = (n) => {
    if (ts.isFunctionLike(n) && n.body) {
      const first = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line
      const last = sf.getLineAndCharacterOfPosition(n.end).line
      const lines = last - first + 1
      const name =
        n.name?.getText(sf) ?? (ts.isVariableDeclaration(n.parent) ? n.parent.name.getText(sf) : '(anonymous)')
      found.push({ lines, where: `${file}:${first + 1}`, name })
    }
    ts.forEachChild(n, visit)
  }
  visit(sf)
  return found
}

const all = files.flatMap(longFunctions).sort((a, b) => b.lines - a.lines)
if (process.argv.includes('--list')) for (const f of all.slice(0, 20)) console.log(f.lines, f.where, f.name)
const problems = all
  .filter((f) => f.lines > MAX_FUNCTION_LINES)
  .map((f) => `${f.where} ${f.name}: ${f.lines} lines (max ${MAX_FUNCTION_LINES})`)
const brokerLines = readFileSync(BROKER, 'utf8').split('\n').length - 1
if (brokerLines > MAX_BROKER_LINES) problems.push(`${BROKER}: ${brokerLines} lines (max ${MAX_BROKER_LINES})`)
if (problems.length) {
  console.error(`check-shape: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
console.log(
  `check-shape: ${files.length} files, ${all.length} functions, longest ${all[0]?.lines ?? 0} lines; ${BROKER} ${brokerLines} lines`,
)
