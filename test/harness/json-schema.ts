// A small JSON Schema validator for the parts of JSON Schema 2020-12 that docs/openapi.json uses, so
// the tests can check every body the API gives against the document (no package needed): type
// (one or a list), required, properties, additionalProperties (false or a schema), enum, const,
// items, $ref to "#/..." in the same document, allOf, oneOf, anyOf, minimum, maximum, pattern and
// format date-time. Anything else in a schema is ignored (descriptions, examples); a keyword it
// does not know that would constrain the value is refused, so the document cannot silently claim
// more than is checked.
//
// Owns: validating. Must not: know mailkey's API (the document does).

export type Schema = Record<string, unknown>

const KNOWN = new Set([
  'type',
  'required',
  'properties',
  'additionalProperties',
  'enum',
  'const',
  'items',
  '$ref',
  'allOf',
  'oneOf',
  'anyOf',
  'minimum',
  'maximum',
  'pattern',
  'format',
  // annotations only
  'description',
  'title',
  'examples',
  'example',
  'contentEncoding',
  'default',
  'deprecated',
])

const typeOf = (v: unknown): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'array'
      : typeof v === 'number'
        ? Number.isInteger(v)
          ? 'integer'
          : 'number'
        : typeof v

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/

export class SchemaValidator {
  readonly #doc: Schema

  constructor(doc: Schema) {
    this.#doc = doc
  }

  /** The schema at a "#/a/b" pointer of the document. */
  resolve(ref: string): Schema {
    if (!ref.startsWith('#/')) throw new Error(`only local $ref are supported: ${ref}`)
    let cur: unknown = this.#doc
    for (const part of ref.slice(2).split('/')) {
      const key = part.replace(/~1/g, '/').replace(/~0/g, '~')
      cur = (cur as Record<string, unknown> | undefined)?.[key]
      if (cur === undefined) throw new Error(`$ref ${ref} points at nothing`)
    }
    return cur as Schema
  }

  /** Every way `value` breaks `schema` ([] when it fits), each naming where. */
  errors(value: unknown, schema: Schema, at = '$'): string[] {
    for (const k of Object.keys(schema))
      if (!KNOWN.has(k)) throw new Error(`schema keyword "${k}" at ${at} is not supported`)
    if (typeof schema.$ref === 'string') return this.errors(value, this.resolve(schema.$ref), at)
    const out: string[] = []
    const t = typeOf(value)
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string]
      if (!types.some((w) => w === t || (w === 'number' && t === 'integer')))
        return [`${at}: ${t} where ${types.join('|')} is wanted`]
    }
    if (Array.isArray(schema.enum) && !schema.enum.some((e) => e === value))
      out.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`)
    if ('const' in schema && schema.const !== value) out.push(`${at}: not ${JSON.stringify(schema.const)}`)
    if (typeof value === 'number') out.push(...numberErrors(value, schema, at))
    if (typeof value === 'string') out.push(...stringErrors(value, schema, at))
    if (t === 'array' && schema.items)
      (value as unknown[]).forEach((v, i) => out.push(...this.errors(v, schema.items as Schema, `${at}[${i}]`)))
    if (t === 'object') out.push(...this.#objectErrors(value as Record<string, unknown>, schema, at))
    out.push(...this.#combined(value, schema, at))
    return out
  }

  #objectErrors(v: Record<string, unknown>, schema: Schema, at: string): string[] {
    const out: string[] = []
    const props = (schema.properties ?? {}) as Record<string, Schema>
    for (const r of (schema.required ?? []) as string[]) if (!(r in v)) out.push(`${at}: "${r}" is missing`)
    for (const [k, x] of Object.entries(v)) {
      const p = props[k]
      if (p) out.push(...this.errors(x, p, `${at}.${k}`))
      else if (schema.additionalProperties === false) out.push(`${at}: "${k}" is not in the document`)
      else if (typeof schema.additionalProperties === 'object')
        out.push(...this.errors(x, schema.additionalProperties as Schema, `${at}.${k}`))
    }
    return out
  }

  #combined(value: unknown, schema: Schema, at: string): string[] {
    const out: string[] = []
    for (const s of (schema.allOf ?? []) as Schema[]) out.push(...this.errors(value, s, at))
    if (Array.isArray(schema.oneOf)) {
      const fits = (schema.oneOf as Schema[]).filter((s) => this.errors(value, s, at).length === 0).length
      if (fits !== 1) out.push(`${at}: fits ${fits} of the oneOf schemas, not exactly 1`)
    }
    if (Array.isArray(schema.anyOf) && !(schema.anyOf as Schema[]).some((s) => this.errors(value, s, at).length === 0))
      out.push(`${at}: fits none of the anyOf schemas`)
    return out
  }
}

function numberErrors(v: number, schema: Schema, at: string): string[] {
  const out: string[] = []
  if (typeof schema.minimum === 'number' && v < schema.minimum) out.push(`${at}: ${v} < ${schema.minimum}`)
  if (typeof schema.maximum === 'number' && v > schema.maximum) out.push(`${at}: ${v} > ${schema.maximum}`)
  return out
}

function stringErrors(v: string, schema: Schema, at: string): string[] {
  const out: string[] = []
  if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v))
    out.push(`${at}: ${JSON.stringify(v)} does not match ${schema.pattern}`)
  if (schema.format === 'date-time' && !(ISO.test(v) && Number.isFinite(Date.parse(v))))
    out.push(`${at}: ${JSON.stringify(v)} is not a date-time`)
  return out
}
