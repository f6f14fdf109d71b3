// Property-based fuzzing (fast-check) of every parser that sees untrusted bytes: the proxy's
// pre-auth IMAP, POP3 and SMTP sessions, the post-auth SMTP submission session, the SASL decoders, the token endpoint's answers (through
// the real refresh code, with a fake fetch at the edge), the config parser and the record parser.
// Inputs are mutations of a checked-in seed corpus (test/fuzz/corpus: what real clients sent to
// the proxy, captured on loopback, real-shaped server answers, and hand-written mail transactions
// after AUTH in corpus/smtp-submission), random chunkings and raw random bytes. Each target runs for FUZZ_SECONDS (default 3; `npm run soak` runs 20; docs/security.md
// has a longer run).
// Properties: no unexpected exception (only the module's own error class), no hang (every input
// handled in bounded time), bounded output and buffering, and no password echoed back.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { createImapSession } from '../../src/protocols/imap/session.js'
import { createPop3Session } from '../../src/protocols/pop3/session.js'
import { createSmtpSession } from '../../src/protocols/smtp/session.js'
import {
  createSubmissionSession,
  type SubmissionAction,
  type SubmissionOptions,
} from '../../src/protocols/smtp/submission.js'
import type { ClientAction, LoginOutcome, PreAuthSession, SessionOptions } from '../../src/protocols/shared/session.js'
import { decodeLoginPassword, decodeLoginUsername } from '../../src/sasl/login.js'
import { decodeOauthbearer, decodeOauthbearerErrorChallenge } from '../../src/sasl/oauthbearer.js'
import { decodePlain } from '../../src/sasl/plain.js'
import { SaslDecodeError, decodeXoauth2, encodeXoauth2 } from '../../src/sasl/xoauth2.js'
import { refreshGrant } from '../../src/oauth/grants.js'
import { parseConfig } from '../../src/config/config.js'
import { parseRecord } from '../../src/store/file-store.js'
import { MailkeyError } from '../../src/errors.js'
import { Secret } from '../../src/core/secret.js'
import type { AccountSettings } from '../../src/domain/account.js'

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 3)
const CORPUS = fileURLToPath(new URL('./corpus', import.meta.url))
const seeds = (dir: string): Buffer[] =>
  readdirSync(join(CORPUS, dir))
    .sort()
    .map((f) => readFileSync(join(CORPUS, dir, f)))
const figures: Record<string, number> = {}

/**
 * run `prop` on `min` inputs, then on more for SECONDS; record how many inputs were tried. The
 * first `min` do not depend on time, so a machine busy with other test files still tries them all.
 */
async function fuzz<T>(
  name: string,
  arb: fc.Arbitrary<T>,
  prop: (v: T) => void | Promise<void>,
  min = 200,
): Promise<void> {
  let n = 0
  const started = Date.now()
  const p = fc.asyncProperty(arb, async (v) => {
    n++
    await prop(v)
  })
  await fc.assert(p, { numRuns: min, endOnFailure: true })
  await fc.assert(p, {
    numRuns: Number.MAX_SAFE_INTEGER,
    interruptAfterTimeLimit: SECONDS * 1000,
    markInterruptAsFailure: false,
    endOnFailure: true,
  })
  figures[name] = n
  assert.ok(n >= min, `${name}: only ${n} inputs in ${Date.now() - started} ms`)
}

/** a seed mutated: bytes flipped, inserted, deleted, lines repeated or cut, or raw random bytes */
function mutated(corpus: Buffer[]): fc.Arbitrary<Buffer> {
  const seed = fc.constantFrom(...corpus)
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 64 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 32 }) }),
    fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), times: fc.integer({ min: 2, max: 60 }) }),
    fc.record({ kind: fc.constant('splice' as const), other: seed, at: fc.nat() }),
  )
  const fromSeed = fc.tuple(seed, fc.array(edit, { maxLength: 8 })).map(([s, edits]) => {
    let b = Buffer.from(s)
    for (const e of edits) {
      const at = b.length ? e.at % (b.length + 1) : 0
      if (e.kind === 'flip' && b.length) b[at % b.length] = e.byte
      else if (e.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(e.bytes), b.subarray(at)])
      else if (e.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.len)])
      else if (e.kind === 'repeat') {
        const line = b.subarray(at, b.indexOf(10, at) + 1 || b.length)
        b = Buffer.concat([b.subarray(0, at), ...Array(e.times).fill(line), b.subarray(at)])
      } else if (e.kind === 'splice') b = Buffer.concat([b.subarray(0, at), e.other])
      if (b.length > 64 * 1024) b = b.subarray(0, 64 * 1024) // repeats compound: keep inputs bounded
    }
    return b
  })
  return fc.oneof(
    { weight: 6, arbitrary: fromSeed },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((u) => Buffer.from(u)) },
  )
}

/** split a buffer into chunks as TCP might deliver it */
const chunked = (input: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer[]> =>
  fc.tuple(input, fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 16 })).map(([b, sizes]) => {
    const out: Buffer[] = []
    let i = 0
    for (let k = 0; i < b.length; k++) {
      const n = sizes[k % sizes.length] as number
      out.push(b.subarray(i, i + n))
      i += n
    }
    return out
  })

const OUTCOMES: LoginOutcome[] = ['ok', 'bad-credentials', 'reauth', 'transient', 'config']

/**
 * Drive a session as the proxy does, answering logins with the given outcomes. Checks: no throw,
 * bounded time per feed, bounded output, no password from a login action in any reply.
 */
function driveSession(make: () => PreAuthSession, chunks: Buffer[], outcomes: LoginOutcome[], wording: string): void {
  const s = make()
  let out = 0
  const passwords: string[] = []
  const replies: string[] = []
  const take = (actions: ClientAction[]): boolean => {
    for (const a of actions) {
      if (a.type === 'reply' || a.type === 'close') {
        const d = a.type === 'reply' ? a.data : (a.data ?? '')
        out += d.length
        replies.push(d)
      }
      if (a.type === 'close') return true
    }
    return false
  }
  // the answer to a login command must not carry its password. It does echo the command's tag
  // (IMAP), whatever the client chose to put there, and later commands echo theirs: tags are not
  // checked (a fuzzed client once used its own password as a tag)
  const noEcho = (pw: string, actions: ClientAction[]): void => {
    if (pw.length < 6) return // a one-letter "password" appears in replies by chance
    // a "password" cut from the session's own wording (AUTHENTICAT, from a mangled AUTHENTICATE)
    // is found in every answer whatever the client sent: that is not an echo
    if (wording.includes(pw)) return
    for (const a of actions) {
      if (a.type !== 'reply' && a.type !== 'close') continue
      const untagged = (a.data ?? '')
        .split('\r\n')
        .map((line) => line.replace(/^\S+ /, ''))
        .join('\r\n')
      if (untagged.includes(pw)) assert.fail('a password was echoed back')
    }
  }
  take(s.start())
  let k = 0
  for (const c of chunks) {
    // the process's own CPU time, not the wall clock: other test files share the machine
    const cpu0 = process.cpuUsage()
    const actions = s.feed(c)
    const cpu = process.cpuUsage(cpu0)
    assert.ok((cpu.user + cpu.system) / 1000 < 250, 'one chunk took more than 250 ms of CPU')
    if (take(actions)) break
    const login = actions.find((a) => a.type === 'login' || a.type === 'passthrough')
    if (login) {
      const pw = login.type === 'login' ? login.password.reveal() : ''
      const r = s.loginResult(outcomes[k++ % outcomes.length] as LoginOutcome)
      // the verdict comes first; what follows answers commands the client sent after the login
      noEcho(pw, r.actions.slice(0, 1))
      if (take(r.actions) || r.done) break
    }
  }
  // replies are bounded: at most the command limit's worth of (bounded) answers
  assert.ok(out < 256 * 1024, `${out} bytes of replies`)
  assert.ok(replies.length <= 400, `${replies.length} replies`)
}

/**
 * what a session says on its own: every reply to the seed transcripts under every login outcome,
 * with tags cut off. A session's wording does not depend on what the client sent.
 */
function fixedWording(make: () => PreAuthSession, transcripts: Buffer[]): string {
  const out: string[] = []
  for (const seed of transcripts) {
    for (const outcome of OUTCOMES) {
      const s = make()
      const all = [...s.start(), ...s.feed(seed)]
      if (all.some((a) => a.type === 'login')) all.push(...s.loginResult(outcome).actions)
      for (const a of all) if (a.type === 'reply' || a.type === 'close') out.push(a.data ?? '')
    }
  }
  return out.join('\n').replace(/^\S+ /gm, '')
}

const OPTS: SessionOptions[] = [
  { secure: false, starttlsAvailable: false, requireTls: false, oauthPassthrough: true, hostname: 'localhost' },
  { secure: false, starttlsAvailable: true, requireTls: true, oauthPassthrough: false, hostname: 'localhost' },
  {
    secure: true,
    starttlsAvailable: false,
    requireTls: false,
    oauthPassthrough: false,
    hostname: 'localhost',
    limits: { maxLineBytes: 512, maxLiteralBytes: 256, maxCommands: 10 },
  },
]

describe("fuzz: the proxy's pre-auth sessions", () => {
  for (const [name, make, dir] of [
    ['imap', createImapSession, 'imap'],
    ['pop3', createPop3Session, 'pop3'],
    ['smtp', createSmtpSession, 'smtp'],
  ] as const) {
    it(`${name}: mutated client transcripts in random chunks, every login outcome`, async () => {
      const wordings = OPTS.map((opts) => fixedWording(() => make(opts), seeds(dir)))
      // the seeds' own passwords are never in a session's wording, or the check below is blind
      assert.doesNotMatch(wordings.join('\n'), /pw-for-corpus/)
      await fuzz(
        `${name} session`,
        fc.tuple(
          chunked(mutated(seeds(dir))),
          fc.constantFrom(...OPTS),
          fc.shuffledSubarray(OUTCOMES, { minLength: 1 }),
        ),
        ([chunks, opts, outcomes]) => {
          driveSession(() => make(opts), chunks, outcomes, wordings[OPTS.indexOf(opts)] as string)
        },
      )
    })
    it(`${name}: a line that never ends is cut off at the limit, not buffered`, () => {
      const s = make({ ...(OPTS[0] as SessionOptions), limits: { maxLineBytes: 1024 } })
      s.start()
      let closedAfter = -1
      for (let i = 1; i <= 64 && closedAfter < 0; i++) {
        const actions = s.feed(Buffer.alloc(1024, 0x41)) // 1 KiB of "A", no line end
        if (actions.some((a) => a.type === 'close' || (a.type === 'reply' && /BAD|ERR|500|too long/i.test(a.data))))
          closedAfter = i
      }
      assert.ok(closedAfter > 0 && closedAfter <= 2, `answered after ${closedAfter} KiB`)
    })
  }
  // the IMAP and POP3 seeds carry their password in clear, so it can be swapped for another
  for (const [name, make, dir] of [
    ['imap', createImapSession, 'imap'],
    ['pop3', createPop3Session, 'pop3'],
  ] as const) {
    it(`${name}: the echo check sees an echo, and not the session's own words`, () => {
      const wording = fixedWording(() => make(OPTS[2] as SessionOptions), seeds(dir))
      const login = seeds(dir).find((b) => /pw-for-corpus/.test(b.toString('latin1'))) as Buffer
      // a session that repeats the password in its verdict is caught
      const echoing = (): PreAuthSession => {
        const s = make(OPTS[2] as SessionOptions)
        let pw = ''
        return {
          ...s,
          start: () => s.start(),
          feed: (c: Buffer) => {
            const actions = s.feed(c)
            for (const a of actions) if (a.type === 'login') pw = a.password.reveal()
            return actions
          },
          loginResult: (o: LoginOutcome) => {
            const r = s.loginResult(o)
            return { ...r, actions: [{ type: 'reply', data: `A NO wrong: ${pw}\r\n` }, ...r.actions] }
          },
        }
      }
      assert.throws(() => driveSession(echoing, [login], ['bad-credentials'], wording), /echoed back/)
      // a "password" that is a piece of the session's own wording is not an echo (found by the
      // fuzzer: IMAP LOGIN with the password AUTHENTICAT, answered [AUTHENTICATIONFAILED])
      const piece = /[A-Za-z]{8,}/.exec(wording)?.[0].slice(0, -1) as string
      assert.ok(piece && wording.includes(piece))
      const own = (): PreAuthSession => {
        const s = make(OPTS[2] as SessionOptions)
        return {
          ...s,
          loginResult: (o: LoginOutcome) => ({
            ...s.loginResult(o),
            actions: [{ type: 'reply', data: `A NO ${piece}X\r\n` }],
          }),
        }
      }
      const withPiece = Buffer.from(login.toString('latin1').replaceAll('local-pw-for-corpus', piece), 'latin1')
      driveSession(own, [withPiece], ['bad-credentials'], wording)
    })
  }
})

const SUBMISSION_OPTS: SubmissionOptions[] = [
  { hostname: 'localhost', maxMessageBytes: 35 * 1024 * 1024, maxRecipients: 500 },
  { hostname: 'localhost', maxMessageBytes: 64, maxRecipients: 2, maxLineBytes: 512, maxCommands: 5 },
]
const VERDICTS = ['250 2.0.0 OK queued', '451 4.4.1 try later', '554-5.7.1 not\r\n554 5.7.1 allowed', '421 4.3.0 bye']

/**
 * Drive a submission session as the proxy does: each 'submit' is answered at once with the next
 * verdict. Checks: no throw, bounded CPU per call, every reply well-formed SMTP (no injected or
 * broken line), messages within maxMessageBytes, recipients within maxRecipients. Returns
 * everything the session did, rendered, so that chunkings can be compared.
 */
function driveSubmission(opts: SubmissionOptions, chunks: Buffer[], verdicts: string[]): string {
  const s = createSubmissionSession(opts)
  const rendered: string[] = []
  let closed = false
  let k = 0
  const take = (actions: SubmissionAction[]): boolean => {
    let submit = false
    for (const a of actions) {
      if (a.type === 'submit') {
        submit = true
        assert.ok(a.message.length <= opts.maxMessageBytes, `a ${a.message.length}-byte message`)
        assert.ok(a.envelope.to.length >= 1 && a.envelope.to.length <= opts.maxRecipients)
        rendered.push(`[submit ${JSON.stringify(a.envelope)} ${a.message.toString('base64')}]`)
      } else {
        const d = a.data ?? ''
        assert.match(d, /^(?:[2-5]\d\d[ -][^\r\n]*\r\n)+$/)
        rendered.push(a.type === 'close' ? `${d}[close]` : d)
        if (a.type === 'close') closed = true
      }
    }
    return submit
  }
  const timed = <T>(f: () => T): T => {
    const cpu0 = process.cpuUsage()
    const r = f()
    const cpu = process.cpuUsage(cpu0)
    assert.ok((cpu.user + cpu.system) / 1000 < 250, 'one call took more than 250 ms of CPU')
    return r
  }
  for (const c of chunks) {
    if (closed) break
    let pending = take(timed(() => s.feed(c)))
    while (pending && !closed) pending = take(timed(() => s.submitted(verdicts[k++ % verdicts.length] as string)))
  }
  const out = rendered.join('')
  assert.ok(out.length < 4 * 1024 * 1024, `${out.length} bytes of output`)
  return out
}

/** dot-stuff a message for the wire (RFC 5321 §4.5.2): a "." that starts a line gets another */
const stuffed = (m: Buffer): Buffer => Buffer.from(m.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1')

describe("fuzz: the proxy's post-auth SMTP submission session", () => {
  it('mutated transactions: well-formed replies, bounded, the same answers however the input is cut', async () => {
    await fuzz(
      'smtp submission session',
      fc.tuple(
        chunked(mutated(seeds('smtp-submission'))),
        fc.constantFrom(...SUBMISSION_OPTS),
        fc.shuffledSubarray(VERDICTS, { minLength: 1 }),
      ),
      ([chunks, opts, verdicts]) => {
        const cut = driveSubmission(opts, chunks, verdicts)
        assert.equal(cut, driveSubmission(opts, [Buffer.concat(chunks)], verdicts))
      },
    )
  })
  it('any message, dot-stuffed and cut anywhere, arrives byte for byte; raw data ends only at CRLF.CRLF', async () => {
    const piece = fc.oneof(
      fc.constantFrom('.', '..', '\r', '\n', '\r\n', '\r\n.', '\r\n.\r\n', '\n.\n', '\r.\r', 'MAIL FROM:<a@b>', 'x'),
      fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u).toString('latin1')),
    )
    const opts = SUBMISSION_OPTS[0] as SubmissionOptions
    const head = Buffer.from('MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n')
    await fuzz(
      'smtp submission data round trip',
      fc.tuple(fc.array(piece, { maxLength: 60 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 })),
      ([pieces, sizes]) => {
        // a client ends the message with CRLF before the "." line
        const message = Buffer.from(`${pieces.join('')}\r\n`, 'latin1')
        const wire = Buffer.concat([head, stuffed(message), Buffer.from('.\r\n')])
        const s = createSubmissionSession(opts)
        const actions: SubmissionAction[] = []
        for (let i = 0, k = 0; i < wire.length; k++) {
          const n = sizes[k % sizes.length] as number
          actions.push(...s.feed(wire.subarray(i, i + n)))
          i += n
        }
        const submits = actions.filter((a) => a.type === 'submit')
        assert.equal(submits.length, 1)
        assert.ok(submits[0]?.type === 'submit' && submits[0].message.equals(message))
        // the same pieces sent raw: the data ends exactly where CRLF "." CRLF first occurs (the
        // CRLF of DATA counting), and is the text before it with each line's leading "." removed
        const raw = Buffer.from(pieces.join(''), 'latin1')
        const end = `\r\n${raw.toString('latin1')}`.indexOf('\r\n.\r\n')
        const t = createSubmissionSession(opts)
        const got = [...t.feed(head), ...t.feed(raw)].filter((a) => a.type === 'submit')
        assert.equal(got.length, end < 0 ? 0 : 1)
        if (got[0]?.type === 'submit') {
          const expected = raw
            .toString('latin1')
            .slice(0, end)
            .replace(/(^|\r\n)\./g, '$1')
          assert.equal(got[0].message.toString('latin1'), expected)
        }
      },
      500,
    )
  })
})

describe('fuzz: SASL decoders', () => {
  const b64s = fc.oneof(
    fc.string({ maxLength: 400 }),
    fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u).toString('base64')),
    mutated(seeds('imap').concat(seeds('smtp'))).map(
      (b) =>
        b
          .toString('latin1')
          .split(/\s/)
          .find((w) => w.length > 16) ?? '',
    ),
  )
  it('PLAIN, LOGIN, XOAUTH2, OAUTHBEARER: a value or a SaslDecodeError, nothing else', async () => {
    await fuzz(
      'sasl decoders',
      b64s,
      (s) => {
        for (const f of [decodePlain, decodeLoginUsername, decodeLoginPassword, decodeXoauth2, decodeOauthbearer]) {
          try {
            f(s)
          } catch (e) {
            assert.ok(e instanceof SaslDecodeError, `${f.name}: ${(e as Error)?.name}: ${(e as Error)?.message}`)
          }
        }
        decodeOauthbearerErrorChallenge(s) // undefined for anything it cannot read; never throws
      },
      1000,
    )
  })
  it('XOAUTH2 encodes and decodes back for any user and token without control characters', async () => {
    const clean = fc.string({ minLength: 1, maxLength: 200 }).filter((x) => !/[\x00-\x1f\x7f]/.test(x))
    await fuzz(
      'xoauth2 round trip',
      fc.tuple(
        clean,
        clean.filter((t) => !/\s/.test(t)),
      ),
      ([user, token]) => {
        const d = decodeXoauth2(encodeXoauth2(user, new Secret(token)).reveal())
        assert.equal(d.user, user)
        assert.equal(d.token.reveal(), token)
      },
      500,
    )
  })
})

describe("fuzz: the token endpoint's answers, through the real refresh code", () => {
  const settings: AccountSettings = {
    email: 'fuzz@example.test',
    provider: 'custom',
    clientId: 'client',
    scopes: ['mail', 'offline_access'],
    endpoints: { token: 'http://127.0.0.1:9/token' },
    servers: {},
    sasl: 'XOAUTH2',
    flow: 'device',
  }
  const answer = fc.record({
    status: fc.constantFrom(200, 200, 200, 400, 401, 403, 429, 500, 502, 503, 302),
    type: fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'text/html',
      'text/plain',
      '',
      'application/x-www-form-urlencoded',
    ),
    body: fc.oneof(
      mutated(seeds('oauth')),
      fc.json().map((j) => Buffer.from(j)),
      fc
        .record(
          {
            access_token: fc.string(),
            token_type: fc.constantFrom('Bearer', 'bearer', 'mac', ''),
            expires_in: fc.oneof(fc.integer(), fc.string(), fc.double()),
            refresh_token: fc.option(fc.string()),
            scope: fc.option(fc.string()),
          },
          { requiredKeys: [] },
        )
        .map((o) => Buffer.from(JSON.stringify(o))),
    ),
    retryAfter: fc.option(fc.oneof(fc.integer({ min: -5, max: 100000 }).map(String), fc.string({ maxLength: 30 }))),
  })
  it('a token set or a MailkeyError, within the time limit, whatever comes back', async () => {
    await fuzz(
      'oauth token responses',
      answer,
      async (a) => {
        const fetchFake = (async () =>
          new Response(a.status === 302 || a.body.length === 0 ? null : new Uint8Array(a.body), {
            status: a.status,
            headers: {
              ...(a.type ? { 'content-type': a.type } : {}),
              ...(a.retryAfter ? { 'retry-after': a.retryAfter } : {}),
              ...(a.status === 302 ? { location: 'http://127.0.0.1:9/elsewhere' } : {}),
            },
          })) as typeof fetch
        // the answer is all in memory: only a hang waits for the 2 s timeout, which ends as "did not answer in time"
        let timedOut = false
        try {
          const ts = await refreshGrant(settings, new Secret('fuzz-refresh-token'), {
            account: settings.email,
            fetch: fetchFake,
            timeoutMs: 2000,
          })
          assert.equal(typeof ts.accessToken.reveal(), 'string')
        } catch (e) {
          assert.ok(e instanceof MailkeyError, `${(e as Error)?.name}: ${(e as Error)?.message}`)
          assert.ok(!(e as Error).message.includes('fuzz-refresh-token'), 'the refresh token in an error message')
          timedOut = /did not answer in time/.test((e as Error).message)
        }
        assert.ok(!timedOut, 'no hang')
      },
      300,
    )
  })
})

describe('fuzz: files mailkey reads', () => {
  it('config.toml: a Config or a ConfigError (with file:line:col), nothing else', async () => {
    const text = fc.oneof(
      mutated(seeds('config')).map((b) => b.toString('utf8')),
      fc.string({ maxLength: 500 }),
    )
    await fuzz(
      'config parser',
      text,
      (t) => {
        try {
          parseConfig(t, '/fuzz/config.toml')
        } catch (e) {
          assert.ok(
            e instanceof MailkeyError && e.code === 'ERR_MAILKEY_CONFIG_INVALID',
            `${(e as Error)?.name}: ${(e as Error)?.message}`,
          )
          assert.match((e as Error).message, /^\/fuzz\/config\.toml(:\d+:\d+)?[: ]/)
        }
      },
      300,
    )
  })
  it('an account record: a record or a StoreError naming the file, nothing else', async () => {
    const good = JSON.stringify({
      v: 1,
      settings: {
        email: 'a@b.c',
        provider: 'custom',
        clientId: 'c',
        scopes: ['s'],
        endpoints: { token: 'https://t' },
        servers: {},
        sasl: 'XOAUTH2',
        flow: 'device',
      },
      grant: { grantedAt: 1, refreshToken: 'r' },
      state: 'active',
      updatedAt: 1,
    })
    const text = fc.oneof(
      mutated([Buffer.from(good)]).map((b) => b.toString('utf8')),
      fc.json(),
      fc.string({ maxLength: 300 }),
    )
    await fuzz(
      'record parser',
      text,
      (t) => {
        try {
          parseRecord(t, '/fuzz/a@b.c.json')
        } catch (e) {
          assert.ok(
            e instanceof MailkeyError && e.code === 'ERR_MAILKEY_STORE_CORRUPT',
            `${(e as Error)?.name}: ${(e as Error)?.message}`,
          )
          assert.ok((e as Error).message.includes('/fuzz/a@b.c.json'))
        }
      },
      1000,
    )
  })
})

describe('fuzz: figures', () => {
  it('every target ran', () => {
    console.error(
      `fuzz (${SECONDS} s per target): ${Object.entries(figures)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    )
    assert.equal(Object.keys(figures).length, 10, JSON.stringify(figures))
  })
})
