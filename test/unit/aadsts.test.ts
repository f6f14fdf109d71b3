/**
 * AADSTS table and code extraction, plus a sanity check of every recorded provider fixture:
 * it parses, carries its provenance, and holds nothing that looks like a real token.
 */
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { AADSTS_KINDS, AADSTS_TABLE, aadstsCodesIn, describeAadsts } from '../../src/oauth/aadsts.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/providers/', import.meta.url))

// Three base64url segments, the first starting with eyJ ('{"'): a JWT, signed or not.
const JWT = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/

// Codes the brief requires the table to cover.
const REQUIRED = [
  '50011',
  '7000218',
  '700025',
  '7000112',
  '700016',
  '700011',
  '65001',
  '90094',
  '90095',
  '65002',
  '50020',
  '50034',
  '500208',
  '50194',
  '9002332',
  '70011',
  '700022',
  '50076',
  '50079',
  '53003',
  '530033',
  '70016',
  '70018',
  '70019',
  '54005',
  '700082',
  '70008',
  '70043',
  '50173',
  '50196',
  '50126',
  '50055',
  '50057',
  '50058',
  '50089',
  '70000',
  '90120',
  '50134',
  '9001023',
  '90124',
  '90130',
  '500011',
  '500113',
  '700024',
  '50148',
]

describe('aadstsCodesIn', () => {
  test('reads the code at the start of an error_description', () => {
    const text = 'AADSTS700082: The refresh token has expired due to inactivity.\r\nTrace ID: x\r\nTimestamp: y'
    assert.deepEqual(aadstsCodesIn(text), ['700082'])
  })

  test('reads several codes, each once, in order of appearance', () => {
    const text = 'AADSTS50076: MFA. See also AADSTS53003 and again AADSTS50076.'
    assert.deepEqual(aadstsCodesIn(text), ['50076', '53003'])
  })

  test('error_codes come first, then codes only in the text', () => {
    assert.deepEqual(aadstsCodesIn('AADSTS65001: no consent', [50173, 65001]), ['50173', '65001'])
  })

  test('error_codes alone, as numbers or digit strings', () => {
    assert.deepEqual(aadstsCodesIn(undefined, [70016]), ['70016'])
    assert.deepEqual(aadstsCodesIn(undefined, ['9002332']), ['9002332'])
  })

  test('ignores junk in error_codes', () => {
    const junk: unknown[] = [null, undefined, 'AADSTS1', '12a', '', -5, 0, 1.5, NaN, Infinity, {}, [70011], true, '007']
    assert.deepEqual(aadstsCodesIn(undefined, junk), [])
    assert.deepEqual(aadstsCodesIn(undefined, 'AADSTS70011'), [])
    assert.deepEqual(aadstsCodesIn(undefined, { 0: 70011, length: 1 }), [])
    assert.deepEqual(aadstsCodesIn(undefined, 70011), [])
  })

  test('ignores text that only resembles a code', () => {
    assert.deepEqual(aadstsCodesIn(undefined), [])
    assert.deepEqual(aadstsCodesIn(''), [])
    assert.deepEqual(aadstsCodesIn('AADSTS: nothing'), [])
    assert.deepEqual(aadstsCodesIn('XAADSTS70011 is not a code'), [])
    assert.deepEqual(aadstsCodesIn('aadsts70011 lower case is not how Microsoft writes it'), [])
    assert.deepEqual(aadstsCodesIn('error 70011 without the prefix'), [])
    assert.deepEqual(aadstsCodesIn('Token has been expired or revoked.'), [])
  })

  test('does not cut a long run of digits into a code', () => {
    assert.deepEqual(aadstsCodesIn('AADSTS123456789012345'), [])
  })

  test('tolerates non-string text from an untyped caller', () => {
    assert.deepEqual(aadstsCodesIn(42 as unknown as string, [50011]), ['50011'])
  })

  test('bounds the number of codes returned', () => {
    const many = Array.from({ length: 100 }, (_, i) => 10000 + i)
    assert.equal(aadstsCodesIn(undefined, many).length <= 32, true)
    assert.equal(aadstsCodesIn(undefined, many)[0], '10000')
  })
})

describe('describeAadsts', () => {
  test('finds an entry by bare code or with the AADSTS prefix', () => {
    const e = describeAadsts('700082')
    assert.ok(e)
    assert.equal(e.kind, 'reauth')
    assert.match(e.meaning, /90 days/)
    assert.equal(describeAadsts('AADSTS700082'), e)
  })

  test('unknown codes and junk give undefined', () => {
    assert.equal(describeAadsts('1'), undefined)
    assert.equal(describeAadsts(''), undefined)
    assert.equal(describeAadsts('AADSTS'), undefined)
    assert.equal(describeAadsts(undefined as unknown as string), undefined)
  })

  test('kinds that callers branch on are what the reference implies', () => {
    const kinds: Record<string, string> = {
      '70016': 'pending',
      '700082': 'reauth',
      '50173': 'reauth',
      '70043': 'reauth',
      '53003': 'blocked',
      '530033': 'blocked',
      '65001': 'consent',
      '90094': 'consent',
      '7000112': 'client',
      '700016': 'client',
      '50011': 'config',
      '7000218': 'config',
      '700022': 'config',
      '50196': 'transient',
      '50076': 'reauth',
    }
    for (const [code, kind] of Object.entries(kinds)) assert.equal(describeAadsts(code)?.kind, kind, code)
  })

  test('codes pulled from a real-shaped description resolve to entries', () => {
    const codes = aadstsCodesIn('AADSTS7000218: The request body must contain ...', [7000218])
    assert.deepEqual(
      codes.map((c) => describeAadsts(c)?.kind),
      ['config'],
    )
  })
})

describe('AADSTS_TABLE', () => {
  test('covers every required code', () => {
    const have = new Set(AADSTS_TABLE.map((e) => e.code))
    const missing = REQUIRED.filter((c) => !have.has(c))
    assert.deepEqual(missing, [])
  })

  test('has no duplicate codes', () => {
    const codes = AADSTS_TABLE.map((e) => e.code)
    assert.equal(new Set(codes).size, codes.length)
  })

  for (const e of AADSTS_TABLE) {
    test(`entry ${e.code} is well-formed`, () => {
      assert.match(e.code, /^[1-9][0-9]{4,9}$/)
      assert.ok((AADSTS_KINDS as readonly string[]).includes(e.kind), `kind ${e.kind}`)
      // A short lower-case phrase that reads inside a sentence.
      assert.ok(e.meaning.length >= 8 && e.meaning.length <= 110, 'meaning length')
      assert.equal(e.meaning, e.meaning.trim())
      assert.match(e.meaning, /^[a-z]/, 'meaning starts lower-case')
      assert.doesNotMatch(e.meaning, /[.!]$/, 'meaning is a phrase, not a sentence')
      assert.doesNotMatch(e.meaning, /AADSTS/)
      // One sentence, capitalised, ending in a full stop.
      assert.match(e.advice, /^[A-Z][^]*\.$/, 'advice is a sentence')
      assert.ok(e.advice.length <= 120, 'advice length')
      assert.equal((e.advice.match(/\.(\s|$)/g) ?? []).length, 1, 'advice is one sentence')
      // The caller adds command names; advice must not carry any.
      assert.doesNotMatch(e.advice, /\bmailkey\b|`|--[a-z]/)
      if (e.name !== undefined) assert.match(e.name, /^[A-Z][A-Za-z0-9_]+$/)
      if (e.source !== undefined) assert.ok(e.source.length > 10)
    })
  }
})

function fixtureFiles(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...fixtureFiles(path))
    else out.push(path)
  }
  return out
}

describe('provider fixtures', () => {
  const files = fixtureFiles(FIXTURES)

  test('there are Microsoft and Google fixtures', () => {
    const rel = files.map((f) => relative(FIXTURES, f))
    assert.ok(rel.filter((f) => f.startsWith('microsoft/')).length >= 10)
    assert.ok(rel.filter((f) => f.startsWith('google/')).length >= 4)
  })

  test('the JWT detector recognises a JWT (so the check below can fail)', () => {
    const part = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url')
    const jwt = `${part({ alg: 'RS256', typ: 'JWT' })}.${part({ sub: 'x' })}.c2lnbmF0dXJl`
    assert.match(JSON.stringify({ access_token: jwt }), JWT)
    assert.match(`${part({ alg: 'none' })}.${part({ a: 1 })}.`, JWT)
    assert.doesNotMatch('fake-access-token-for-fixture', JWT)
  })

  for (const file of files) {
    const name = relative(FIXTURES, file)
    test(`${name} is a well-formed recording`, () => {
      assert.match(name, /\.json$/, 'fixtures are JSON files')
      const text = readFileSync(file, 'utf8')
      const doc: unknown = JSON.parse(text)
      assert.ok(doc !== null && typeof doc === 'object' && !Array.isArray(doc))
      const d = doc as Record<string, unknown>
      assert.equal(typeof d._source, 'string')
      assert.ok((d._source as string).length > 10, '_source says where the shape comes from')
      assert.match(String(d._recorded), /^\d{4}-\d{2}-\d{2}$/)
      assert.ok(Number.isInteger(d.status) && (d.status as number) >= 100 && (d.status as number) <= 599)
      assert.ok('body' in d, 'has a body')
      assert.ok(typeof d.body === 'string' || (d.body !== null && typeof d.body === 'object'))
      if (d.headers !== undefined) {
        assert.ok(d.headers !== null && typeof d.headers === 'object')
        for (const [k, v] of Object.entries(d.headers as object)) {
          assert.equal(k, k.toLowerCase(), 'header names are lower-case')
          assert.equal(typeof v, 'string')
        }
      }
      assert.doesNotMatch(text, JWT, 'no JWT-shaped value in a fixture')
    })
  }

  test('Microsoft error bodies carry codes that extraction and the table agree on', () => {
    for (const file of files.filter((f) => relative(FIXTURES, f).startsWith('microsoft/'))) {
      const d = JSON.parse(readFileSync(file, 'utf8')) as { body: unknown }
      if (typeof d.body !== 'object' || d.body === null) continue
      const body = d.body as { error?: unknown; error_description?: unknown; error_codes?: unknown }
      if (typeof body.error !== 'string' || !Array.isArray(body.error_codes)) continue
      const desc = typeof body.error_description === 'string' ? body.error_description : undefined
      const codes = aadstsCodesIn(desc, body.error_codes)
      assert.equal(codes.length, 1, relative(FIXTURES, file))
      assert.deepEqual(aadstsCodesIn(desc), codes, 'description and error_codes agree')
      assert.ok(describeAadsts(codes[0] ?? ''), `table knows ${codes[0] ?? ''}`)
    }
  })
})
