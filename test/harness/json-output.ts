// Checks what a command printed on stdout with --json against docs/json.md's convention and the
// schema checked in beside it (docs/json-schema.json): every line one JSON object, `schema` 1, an
// `event` the schema knows, the fields that event allows, keys in snake_case, and an `error` line
// only as the last one.
//
// Owns: that check. Must not: know any command (the schema does).
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { SchemaValidator, type Schema } from './json-schema.js'

export const JSON_DOC = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../docs/json-schema.json', import.meta.url)), 'utf8'),
) as Schema & { events: Record<string, Schema> }

const validator = new SchemaValidator(JSON_DOC)
const SNAKE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/

/** Keys that are not snake_case, anywhere in `v` (with where they are). */
export function badKeys(v: unknown, at = '$'): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => badKeys(x, `${at}[${i}]`))
  if (v === null || typeof v !== 'object') return []
  return Object.entries(v).flatMap(([k, x]) => [...(SNAKE.test(k) ? [] : [`${at}.${k}`]), ...badKeys(x, `${at}.${k}`)])
}

/** Every way one parsed line breaks the convention ([] when it fits). */
export function lineProblems(line: unknown): string[] {
  if (line === null || typeof line !== 'object' || Array.isArray(line)) return ['not a JSON object']
  const o = line as Record<string, unknown>
  if (o.schema !== 1) return [`schema is ${JSON.stringify(o.schema)}, not 1`]
  const schema = typeof o.event === 'string' ? JSON_DOC.events[o.event] : undefined
  if (!schema) return [`event ${JSON.stringify(o.event)} is not in docs/json-schema.json`]
  return [...badKeys(o).map((k) => `${k} is not snake_case`), ...validator.errors(o, schema)]
}

/**
 * The lines of `stdout`, parsed, after checking each of them; throws with what is wrong. An
 * `error` line may only be the last, and a command that failed (`code` not 0) without a result
 * that says so itself must end with one (`errorLast`).
 */
export function checkJsonOutput(stdout: string, label: string, o: { errorLast?: boolean } = {}): Record<string, any>[] {
  if (!stdout.endsWith('\n')) throw new Error(`${label}: stdout does not end with a newline: ${JSON.stringify(stdout)}`)
  const lines = stdout.slice(0, -1).split('\n')
  const parsed = lines.map((l, i) => {
    try {
      return JSON.parse(l) as Record<string, any>
    } catch {
      throw new Error(`${label}: line ${i + 1} is not JSON: ${l.slice(0, 200)}`)
    }
  })
  parsed.forEach((p, i) => {
    const problems = lineProblems(p)
    if (problems.length)
      throw new Error(`${label}: line ${i + 1} (${lines[i]?.slice(0, 300)}):\n  ${problems.join('\n  ')}`)
    if (p.event === 'error' && i !== parsed.length - 1) throw new Error(`${label}: an error line is not the last line`)
  })
  if (o.errorLast && parsed.at(-1)?.event !== 'error') throw new Error(`${label}: the last line is not an error line`)
  return parsed
}
