// The proxy's IMAP pre-auth session, byte by byte (no sockets).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createImapSession } from '../../src/protocols/imap/session.js'
import type { ClientAction, PreAuthSession, SessionOptions } from '../../src/protocols/shared/session.js'

const base: SessionOptions = {
  secure: false,
  starttlsAvailable: false,
  requireTls: false,
  oauthPassthrough: true,
  hostname: 'localhost',
}

function text(actions: ClientAction[]): string {
  return actions
    .map((a) => (a.type === 'reply' ? a.data : a.type === 'close' ? `[close]${a.data ?? ''}` : `[${a.type}]`))
    .join('')
}
function login(actions: ClientAction[]): { username: string; password: string } | undefined {
  const a = actions.find((x) => x.type === 'login')
  return a && a.type === 'login' ? { username: a.username, password: a.password.reveal() } : undefined
}
const feed = (s: PreAuthSession, str: string) => s.feed(Buffer.from(str))

describe('IMAP pre-auth session', () => {
  it('greets with capabilities offering PLAIN/LOGIN, LITERAL+ and SASL-IR, no LOGINDISABLED', () => {
    const s = createImapSession(base)
    const g = text(s.start())
    assert.match(
      g,
      /^\* OK \[CAPABILITY IMAP4rev1 LITERAL\+ SASL-IR ID ENABLE AUTH=PLAIN AUTH=LOGIN AUTH=XOAUTH2 AUTH=OAUTHBEARER\] /,
    )
    assert.doesNotMatch(g, /LOGINDISABLED/)
  })

  it('LOGIN with atoms, then ok: tagged OK and done', () => {
    const s = createImapSession(base)
    s.start()
    const a = feed(s, 'a1 LOGIN alice@example.test secret-pw\r\n')
    assert.deepEqual(login(a), { username: 'alice@example.test', password: 'secret-pw' })
    const r = s.loginResult('ok')
    assert.equal(r.done, true)
    assert.equal(text(r.actions), 'a1 OK Logged in\r\n')
  })

  it('LOGIN with quoted strings and escapes', () => {
    const s = createImapSession(base)
    assert.deepEqual(login(feed(s, 'x LOGIN "alice@example.test" "p\\"w \\\\ d"\r\n')), {
      username: 'alice@example.test',
      password: 'p"w \\ d',
    })
  })

  it('LOGIN with a synchronizing literal asks for continuation; LITERAL+ does not', () => {
    const s = createImapSession(base)
    const first = feed(s, 'a2 LOGIN alice@example.test {9}\r\n')
    assert.equal(text(first), '+ Ready for literal data\r\n')
    assert.deepEqual(login(feed(s, 'pass word\r\n')), { username: 'alice@example.test', password: 'pass word' })
    const s2 = createImapSession(base)
    const a = feed(s2, 'a3 LOGIN {18+}\r\nalice@example.test {4+}\r\npw\r\n\r\n')
    assert.deepEqual(login(a), { username: 'alice@example.test', password: 'pw\r\n' })
  })

  it('every split of the input gives the same login', () => {
    const input = 'a1 ID ("name" "x")\r\na2 LOGIN alice@example.test {6+}\r\nsecret\r\n'
    for (let i = 1; i < input.length; i++) {
      const s = createImapSession(base)
      const acts = [...feed(s, input.slice(0, i)), ...feed(s, input.slice(i))]
      assert.deepEqual(login(acts), { username: 'alice@example.test', password: 'secret' }, `split at ${i}`)
    }
  })

  it('AUTHENTICATE PLAIN with SASL-IR and with a continuation; "*" cancels', () => {
    const ir = Buffer.from('\0alice@example.test\0pw1').toString('base64')
    const s = createImapSession(base)
    assert.deepEqual(login(feed(s, `a1 AUTHENTICATE PLAIN ${ir}\r\n`)), {
      username: 'alice@example.test',
      password: 'pw1',
    })
    const s2 = createImapSession(base)
    assert.equal(text(feed(s2, 'a1 AUTHENTICATE PLAIN\r\n')), '+ \r\n')
    assert.deepEqual(login(feed(s2, `${ir}\r\n`)), { username: 'alice@example.test', password: 'pw1' })
    const s3 = createImapSession(base)
    feed(s3, 'a1 AUTHENTICATE PLAIN\r\n')
    assert.equal(text(feed(s3, '*\r\n')), 'a1 BAD AUTHENTICATE cancelled\r\n')
  })

  it('AUTHENTICATE LOGIN asks for the user name, then the password', () => {
    const s = createImapSession(base)
    assert.equal(text(feed(s, 'a1 AUTHENTICATE LOGIN\r\n')), `+ ${Buffer.from('Username:').toString('base64')}\r\n`)
    assert.equal(
      text(feed(s, `${Buffer.from('alice@example.test').toString('base64')}\r\n`)),
      `+ ${Buffer.from('Password:').toString('base64')}\r\n`,
    )
    assert.deepEqual(login(feed(s, `${Buffer.from('pw2').toString('base64')}\r\n`)), {
      username: 'alice@example.test',
      password: 'pw2',
    })
  })

  it('failed logins get RFC 5530 codes; after maxFailedLogins the connection closes', () => {
    const s = createImapSession({ ...base, limits: { maxFailedLogins: 3 } })
    const outcomes = [
      ['bad-credentials', /^a1 NO \[AUTHENTICATIONFAILED\] Invalid credentials/],
      ['transient', /^a2 NO \[UNAVAILABLE\]/],
      ['reauth', /^a3 NO \[AUTHENTICATIONFAILED\] .*mailkey status/],
    ] as const
    outcomes.forEach(([o, re], i) => {
      feed(s, `a${i + 1} LOGIN alice@example.test wrong\r\n`)
      const r = s.loginResult(o)
      assert.equal(r.done, false)
      assert.match(text(r.actions), re)
      if (i === 2) assert.match(text(r.actions), /\[close\]\* BYE Too many failed logins/)
    })
    const s2 = createImapSession(base)
    feed(s2, 'a1 LOGIN u p\r\n')
    assert.match(text(s2.loginResult('config').actions), /NO \[CONTACTADMIN\]/)
  })

  it("the proxy's own reply text stays on one line", () => {
    const s = createImapSession(base)
    feed(s, 'a1 LOGIN u p\r\n')
    assert.equal(
      text(s.loginResult('transient', { text: 'upstream\r\n* BYE injected' }).actions),
      'a1 NO [UNAVAILABLE] Temporary failure, try again later upstream * BYE injected\r\n',
    )
    assert.throws(() => createImapSession({ ...base, limits: { maxLineBytes: 0 } }), RangeError)
  })

  it('pipelined bytes after the login are handed back as leftover', () => {
    const s = createImapSession(base)
    feed(s, 'a1 LOGIN alice@example.test pw\r\na2 SELECT INBOX\r\n')
    const r = s.loginResult('ok')
    assert.equal(r.leftover?.toString(), 'a2 SELECT INBOX\r\n')
  })

  it('STARTTLS: offered when available, upgrades, drops bytes sent before the handshake', () => {
    const s = createImapSession({ ...base, starttlsAvailable: true })
    assert.match(text(s.start()), /STARTTLS/)
    const a = feed(s, 'a1 STARTTLS\r\na2 LOGIN injected pw\r\n')
    assert.equal(text(a), 'a1 OK Begin TLS negotiation now\r\n[starttls]')
    assert.equal(login(a), undefined, 'nothing sent before the TLS handshake is acted on')
    assert.doesNotMatch(text(feed(s, 'a3 CAPABILITY\r\n')), /STARTTLS/)
  })

  it('requireTls: LOGINDISABLED and no AUTH= before TLS; LOGIN refused', () => {
    const s = createImapSession({ ...base, requireTls: true, starttlsAvailable: true })
    const g = text(s.start())
    assert.match(g, /LOGINDISABLED/)
    assert.doesNotMatch(g, /AUTH=PLAIN/)
    assert.match(text(feed(s, 'a1 LOGIN u p\r\n')), /^a1 NO \[PRIVACYREQUIRED\]/)
  })

  it('OAuth pass-through off (the default listener): no AUTH=XOAUTH2/OAUTHBEARER, and the mechanisms are refused', () => {
    const s = createImapSession({ ...base, oauthPassthrough: false })
    const g = text(s.start())
    assert.match(g, /AUTH=PLAIN AUTH=LOGIN\]/)
    assert.doesNotMatch(g, /XOAUTH2|OAUTHBEARER/)
    const xo = Buffer.from('user=alice\x01auth=Bearer tok\x01\x01').toString('base64')
    const a = feed(s, `a1 AUTHENTICATE XOAUTH2 ${xo}\r\n`)
    assert.equal(
      a.find((x) => x.type === 'passthrough'),
      undefined,
    )
    assert.equal(text(a), 'a1 NO [CANNOT] Unsupported authentication mechanism\r\n')
    assert.equal(
      text(feed(s, 'a2 AUTHENTICATE OAUTHBEARER\r\n')),
      'a2 NO [CANNOT] Unsupported authentication mechanism\r\n',
    )
  })

  it('an XOAUTH2/OAUTHBEARER "token" that cannot be one (a password with spaces, as a Cyrus plugin sends it) is a password login, never a pass-through', () => {
    const s = createImapSession(base)
    const xo = Buffer.from('user=alice@example.test\x01auth=Bearer local proxy pw\x01\x01').toString('base64')
    const a = feed(s, `a1 AUTHENTICATE XOAUTH2 ${xo}\r\n`)
    assert.equal(
      a.find((x) => x.type === 'passthrough'),
      undefined,
    )
    const l = a.find((x) => x.type === 'login')
    assert.ok(
      l && l.type === 'login' && l.username === 'alice@example.test' && l.password.reveal() === 'local proxy pw',
    )
    const s2 = createImapSession(base)
    const ob = Buffer.from('n,a=bob=2Cx@example.test,\x01host=h\x01auth=Bearer pass word\x01\x01').toString('base64')
    const l2 = feed(s2, `b1 AUTHENTICATE OAUTHBEARER ${ob}\r\n`).find((x) => x.type === 'login')
    assert.ok(l2 && l2.type === 'login' && l2.username === 'bob,x@example.test' && l2.password.reveal() === 'pass word')
  })

  it('limits: overlong lines, oversized literals and endless commands close the connection', () => {
    const s = createImapSession({ ...base, limits: { maxLineBytes: 100 } })
    assert.match(text(feed(s, 'a'.repeat(200))), /BAD Line too long.*\[close\]/s)
    const s2 = createImapSession({ ...base, limits: { maxLiteralBytes: 10 } })
    assert.match(text(feed(s2, 'a1 LOGIN {11}\r\n')), /a1 BAD Literal too large.*\[close\]/s)
    const s3 = createImapSession({ ...base, limits: { maxCommands: 3 } })
    const out = text(feed(s3, 'a NOOP\r\nb NOOP\r\nc NOOP\r\nd NOOP\r\n'))
    assert.match(out, /d BAD Too many commands before login.*\[close\]/s)
    const s4 = createImapSession(base)
    assert.match(text(feed(s4, 'a1 LOGIN u\0x p\r\n')), /BAD NUL in command/)
  })

  it('literal bytes count against the command limit: a chain of literals is refused before the one that would pass it (issue 11)', () => {
    // the attack: LOGIN {8192+} then "xxxx… {8192+}" again and again, ~1,600 literals in one command
    const s = createImapSession(base)
    s.start()
    const lit = 'x'.repeat(8192)
    const out: ClientAction[] = [...feed(s, 'a LOGIN {8192+}\r\n')]
    let literalsSent = 0
    for (let i = 0; i < 10 && !out.some((a) => a.type === 'close'); i++) {
      out.push(...feed(s, `${lit} {8192+}\r\n`))
      literalsSent++
    }
    assert.match(text(out), /^a BAD Command too long\r\n\[close\]\* BYE Command too long\r\n$/)
    // the default limit (16 KiB per command) holds one 8 KiB literal and refuses the second announcement
    assert.equal(literalsSent, 1, 'refused when the second literal was announced, before its bytes arrived')
    assert.deepEqual(feed(s, lit), [], 'nothing more is read')
  })

  it('the command limit counts a literal sent in pieces, and lets a LOGIN with two literals within it through', () => {
    const limits = { maxCommandBytes: 100, maxLiteralBytes: 80 }
    const ok = createImapSession({ ...base, limits })
    assert.deepEqual(login(feed(ok, 'a LOGIN {18+}\r\nalice@example.test {20+}\r\n01234567890123456789\r\n')), {
      username: 'alice@example.test',
      password: '01234567890123456789',
    })
    // a literal under maxLiteralBytes that still takes the command past maxCommandBytes
    const s = createImapSession({ ...base, limits })
    assert.equal(text(feed(s, 'b LOGIN {60+}\r\n')), '')
    for (let i = 0; i < 6; i++) assert.deepEqual(feed(s, 'y'.repeat(10)), [], 'literal bytes arrive in pieces')
    assert.match(text(feed(s, ' {60+}\r\n')), /^b BAD Command too long\r\n\[close\]/)
    // a line that never ends, after a literal, is measured with the literal
    const s2 = createImapSession({ ...base, limits })
    feed(s2, 'c LOGIN {70+}\r\n' + 'z'.repeat(70))
    assert.match(text(feed(s2, ' ' + 'q'.repeat(40))), /\* BAD Command too long.*\[close\]/s)
  })

  it('answers the harmless commands and refuses the rest before login', () => {
    const s = createImapSession(base)
    assert.match(text(feed(s, 'a1 CAPABILITY\r\n')), /^\* CAPABILITY .*\r\na1 OK/)
    assert.equal(text(feed(s, 'a2 NOOP\r\n')), 'a2 OK NOOP completed\r\n')
    assert.match(text(feed(s, 'a3 ID NIL\r\n')), /^\* ID NIL\r\na3 OK/)
    assert.equal(text(feed(s, 'a4 SELECT INBOX\r\n')), 'a4 BAD Log in first\r\n')
    assert.equal(
      text(feed(s, 'a5 AUTHENTICATE CRAM-MD5\r\n')),
      'a5 NO [CANNOT] Unsupported authentication mechanism\r\n',
    )
    assert.equal(text(feed(s, 'garbage\r\n')), 'garbage BAD Invalid command syntax\r\n')
    assert.match(text(feed(s, 'a6 LOGOUT\r\n')), /\[close\]\* BYE Logging out\r\na6 OK/)
  })

  it('a client that speaks XOAUTH2/OAUTHBEARER itself is passed through with its own response', () => {
    const xo = Buffer.from('user=alice@example.test\x01auth=Bearer tok-123\x01\x01').toString('base64')
    const s = createImapSession(base)
    const a = feed(s, `a1 AUTHENTICATE XOAUTH2 ${xo}\r\n`)
    const p = a.find((x) => x.type === 'passthrough')
    assert.ok(p && p.type === 'passthrough')
    assert.equal(p.username, 'alice@example.test')
    assert.equal(p.mechanism, 'XOAUTH2')
    assert.equal(p.response.reveal(), xo, 'forwarded untouched')
    assert.equal(text(s.loginResult('ok').actions), 'a1 OK Logged in\r\n')
    const ob = Buffer.from('n,a=bob@example.test,\x01host=h\x01port=1\x01auth=Bearer t\x01\x01').toString('base64')
    const s2 = createImapSession(base)
    assert.equal(text(feed(s2, 'b1 AUTHENTICATE OAUTHBEARER\r\n')), '+ \r\n')
    const p2 = feed(s2, `${ob}\r\n`).find((x) => x.type === 'passthrough')
    assert.ok(p2 && p2.type === 'passthrough' && p2.username === 'bob@example.test' && p2.mechanism === 'OAUTHBEARER')
    const s3 = createImapSession(base)
    assert.equal(text(feed(s3, 'c1 AUTHENTICATE XOAUTH2 bm90LXhvYXV0aA==\r\n')), 'c1 BAD Invalid SASL response\r\n')
    const s4 = createImapSession(base)
    const noUser = Buffer.from('n,,\x01auth=Bearer t\x01\x01').toString('base64')
    assert.equal(
      text(feed(s4, `d1 AUTHENTICATE OAUTHBEARER ${noUser}\r\n`)),
      'd1 NO [AUTHENTICATIONFAILED] The OAuth response names no user\r\n',
    )
    assert.equal(text(feed(s4, 'd2 AUTHENTICATE XOAUTH2\r\n')), '+ \r\n')
    assert.equal(text(feed(s4, '*\r\n')), 'd2 BAD AUTHENTICATE cancelled\r\n')
  })

  it('AUTHENTICATE PLAIN as someone else is refused before any password check (RFC 4616 §2)', () => {
    const s = createImapSession(base)
    const ir = Buffer.from('bob\0alice\0pw').toString('base64')
    assert.equal(
      text(feed(s, `a1 AUTHENTICATE PLAIN ${ir}\r\n`)),
      'a1 NO [AUTHORIZATIONFAILED] Authorization identity must be empty or the user name\r\n',
    )
    const same = Buffer.from('alice\0alice\0pw').toString('base64')
    assert.ok(feed(s, `a2 AUTHENTICATE PLAIN ${same}\r\n`).some((a) => a.type === 'login' && a.username === 'alice'))
  })

  it('replies never contain the password', () => {
    const s = createImapSession(base)
    const all = [
      s.start(),
      feed(s, 'a1 LOGIN alice@example.test hunter2-secret\r\n'),
      s.loginResult('bad-credentials').actions,
    ]
    for (const acts of all) assert.doesNotMatch(text(acts), /hunter2-secret/)
  })
})
