import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { RECIPES, type RecipeInput } from '../../src/recipes/index.js'
import { dquote, shCommand, shWord } from '../../src/recipes/shell.js'

const base: RecipeInput = {
  email: 'you@example.test',
  user: 'you@example.test',
  provider: 'custom',
  sasl: 'OAUTHBEARER',
  imap: { host: 'imap.example.test', port: 993, tls: 'implicit' },
  smtp: { host: 'smtp.example.test', port: 587, tls: 'starttls' },
  tokenCommand: 'mailkey token you@example.test',
}
const msmtp = RECIPES.get('msmtp')
const generic = RECIPES.get('generic')

describe('recipe quoting', () => {
  it('sh words round-trip through a real /bin/sh, whatever they hold', () => {
    for (const w of [
      'plain@example.test',
      "o'brien@example.test",
      'a b',
      '$HOME',
      '`id`',
      '"q"',
      '',
      'x;y|z&',
      'ünï',
    ]) {
      const out = execFileSync('/bin/sh', ['-c', `printf '%s' ${shWord(w)}`], { encoding: 'utf8' })
      assert.equal(out, w, w)
    }
    assert.equal(shCommand(['mailkey', 'token', 'a+b@example.test']), 'mailkey token a+b@example.test')
  })
  it('double-quoted values escape \\ and " and refuse control characters', () => {
    assert.equal(dquote('a "b" \\c'), '"a \\"b\\" \\\\c"')
    assert.throws(() => dquote('a\nb'), RangeError)
  })
})

describe('msmtp recipe', () => {
  it("direct: STARTTLS, the account's mechanism, passwordeval running mailkey token", () => {
    const r = msmtp?.make(base)
    assert.ok(r)
    const t = r.text
    assert.match(t, /^account you@example\.test$/m)
    assert.match(t, /^host smtp\.example\.test$/m)
    assert.match(t, /^port 587$/m)
    assert.match(t, /^tls on$/m)
    assert.match(t, /^tls_starttls on$/m)
    assert.match(t, /^auth oauthbearer$/m)
    assert.match(t, /^passwordeval "mailkey token you@example\.test"$/m)
    assert.match(t, /^account default : you@example\.test$/m)
    assert.doesNotMatch(t, /tls_trust_file/, 'the system CAs unless the account has its own')
  })
  it('implicit TLS, a private CA, XOAUTH2, a shared mailbox as the SASL user; Microsoft quirk noted', () => {
    const r = msmtp?.make({
      ...base,
      provider: 'microsoft',
      sasl: 'XOAUTH2',
      user: 'shared@example.test',
      smtp: { host: 'smtp.example.test', port: 465, tls: 'implicit' },
      ca: '/etc/my ca.pem',
    })
    assert.ok(r)
    assert.match(r.text, /^tls_starttls off$/m)
    assert.match(r.text, /^tls_trust_file "\/etc\/my ca\.pem"$/m)
    assert.match(r.text, /^auth xoauth2$/m)
    assert.match(r.text, /^user "shared@example\.test"$/m)
    assert.match(r.text, /^from "you@example\.test"$/m)
    assert.ok(r.usage.some((u) => /Sent Items/.test(u)))
  })
  it('git-send-email says where the server files what it sends: Graph (issue 16), Exchange, none', () => {
    const git = RECIPES.get('git-send-email')
    const smtp = { host: 'smtp.example.test', port: 587, tls: 'starttls' as const }
    const graph = git?.make({ ...base, provider: 'microsoft', smtp, graph: true })
    assert.ok(graph?.usage.some((u) => /^Microsoft Graph saves every message it sends in Sent Items itself/.test(u)))
    const exchange = git?.make({ ...base, provider: 'microsoft', smtp })
    assert.ok(exchange?.usage.some((u) => /^Exchange Online saves sent mail in Sent Items/.test(u)))
    const other = git?.make({ ...base, smtp })
    assert.ok(!other?.usage.some((u) => /Sent Items/.test(u)))
  })
  it('via the proxy: plain AUTH to the loopback listener with the local password command', () => {
    const r = msmtp?.make({
      ...base,
      proxy: { host: '127.0.0.1', smtpPort: 2587, passwordCommand: 'pass show "mail/local"' },
    })
    assert.ok(r)
    assert.match(r.text, /^host 127\.0\.0\.1$/m)
    assert.match(r.text, /^port 2587$/m)
    assert.match(r.text, /^tls off$/m)
    assert.match(r.text, /^auth plain$/m)
    assert.match(r.text, /^passwordeval "pass show "mail\/local""$/m, 'msmtp strips the outer quotes only; no escapes')
    assert.doesNotMatch(r.text, /mailkey token/)
  })
  it('an account without an SMTP server, or a proxy without an SMTP listener, is refused with the reason', () => {
    assert.throws(() => msmtp?.make({ ...base, smtp: undefined } as unknown as RecipeInput), /has no SMTP server/)
    assert.throws(
      () => msmtp?.make({ ...base, proxy: { host: '127.0.0.1', imapPort: 1143, passwordCommand: 'x' } }),
      /no plain SMTP listener/,
    )
  })
})

describe('generic recipe', () => {
  it('lists exactly the proxy listeners there are, and needs --via proxy', () => {
    const r = generic?.make({
      ...base,
      proxy: { host: '127.0.0.1', imapPort: 1143, smtpPort: 1587, passwordCommand: 'x' },
    })
    assert.ok(r)
    assert.match(r.text, /incoming IMAP +server 127\.0\.0\.1 {2}port 1143/)
    assert.doesNotMatch(r.text, /POP3/)
    assert.match(r.text, /outgoing SMTP +server 127\.0\.0\.1 {2}port 1587/)
    assert.match(r.text, /^user name +you@example\.test$/m)
    assert.ok(r.usage.some((u) => u.includes('--imap-port 1143 --smtp-port 1587')))
    assert.equal(generic?.direct, false)
    assert.throws(() => generic?.make(base), /needs --via proxy/)
  })
})

describe('mbsync recipe', () => {
  const mbsync = RECIPES.get('mbsync')
  it('direct: XOAUTH2 via SASL, PassCmd quoted for isync, IMAPS or STARTTLS, the CA', () => {
    const r = mbsync?.make({ ...base, ca: '/etc/ca.pem', tokenCommand: 'mailkey token "you@example.test"' })
    assert.ok(r)
    assert.match(r.text, /^IMAPAccount you-example\.test$/m)
    assert.match(r.text, /^Host imap\.example\.test$/m)
    assert.match(r.text, /^Port 993$/m)
    assert.match(r.text, /^AuthMechs XOAUTH2$/m)
    assert.match(r.text, /^PassCmd "mailkey token \\"you@example\.test\\""$/m, 'isync unescapes \\" inside quotes')
    assert.match(r.text, /^SSLType IMAPS$/m)
    assert.match(r.text, /^CertificateFile "\/etc\/ca\.pem"$/m)
    assert.match(r.text, /^Expunge None$/m)
    assert.ok(r.usage.some((u) => /libsasl2-modules-kdexoauth2/.test(u)))
    const st = mbsync?.make({ ...base, imap: { host: 'h', port: 143, tls: 'starttls' } })
    assert.match(st?.text ?? '', /^SSLType STARTTLS$/m)
  })
  it('via the proxy: LOGIN to the loopback listener, no TLS on that hop', () => {
    const r = mbsync?.make({ ...base, proxy: { host: '127.0.0.1', imapPort: 2143, passwordCommand: 'cat "$HOME/pw"' } })
    assert.ok(r)
    assert.match(r.text, /^Port 2143$/m)
    assert.match(r.text, /^AuthMechs LOGIN$/m)
    assert.match(r.text, /^SSLType None$/m)
    assert.match(r.text, /^PassCmd "cat \\"\$HOME\/pw\\""$/m)
    assert.throws(
      () => mbsync?.make({ ...base, proxy: { host: '127.0.0.1', smtpPort: 1, passwordCommand: 'x' } }),
      /no plain IMAP listener/,
    )
  })
})

describe('git send-email recipe', () => {
  const git = RECIPES.get('git-send-email')
  it("direct: msmtp as the sendmail command, for msmtp's account of the same name", () => {
    const r = git?.make(base)
    assert.ok(r)
    assert.match(r.text, /^\[sendemail\]$/m)
    assert.match(r.text, /^\tsendmailcmd = "msmtp -a you@example\.test"$/m)
    assert.ok(r.usage.some((u) => u.includes('mailkey config msmtp you@example.test')))
  })
  it('via the proxy: plain SMTP to the listener and a credential helper quoted for git config', () => {
    const r = git?.make({ ...base, proxy: { host: '127.0.0.1', smtpPort: 2587, passwordCommand: 'cat "$HOME/pw"' } })
    assert.ok(r)
    assert.match(r.text, /^\tsmtpServerPort = 2587$/m)
    assert.match(r.text, /^\tsmtpAuth = PLAIN LOGIN$/m)
    assert.match(r.text, /^\[credential "smtp:\/\/127\.0\.0\.1:2587"\]$/m)
    // git unescapes \" and \\ in a quoted value: the helper gets its quotes and its \n back
    assert.match(
      r.text,
      /^\thelper = "!f\(\) \{ test \\"\$1\\" = get && printf 'password=%s\\\\n' \\"\$\(cat \\"\$HOME\/pw\\"\)\\"; \}; f"$/m,
    )
  })
})

describe('neomutt recipe', () => {
  const neomutt = RECIPES.get('neomutt')
  it('direct: the mechanism for IMAP and SMTP, refresh commands quoted so nothing expands, TLS forced', () => {
    const r = neomutt?.make({ ...base, ca: '/etc/ca.pem', tokenCommand: 'mailkey token `x` $y' })
    assert.ok(r)
    assert.match(r.text, /^set folder = "imaps:\/\/you%40example\.test@imap\.example\.test:993\/"$/m)
    assert.match(r.text, /^set smtp_url = "smtp:\/\/you%40example\.test@smtp\.example\.test:587\/"$/m)
    assert.match(r.text, /^set imap_authenticators = "oauthbearer"$/m)
    assert.match(r.text, /^set smtp_oauth_refresh_command = "mailkey token \\`x\\` \\\$y"$/m)
    assert.match(r.text, /^set ssl_force_tls = yes$/m)
    assert.match(r.text, /^set ssl_ca_certificates_file = "\/etc\/ca\.pem"$/m)
    const ms = neomutt?.make({ ...base, provider: 'microsoft', sasl: 'XOAUTH2' })
    assert.match(ms?.text ?? '', /^set smtp_authenticators = "xoauth2"$/m)
    assert.match(ms?.text ?? '', /^set record = ""$/m, 'Exchange keeps Sent Items itself')
  })
  it('via the proxy: plain loopback listeners, the password command run once in backticks', () => {
    const r = neomutt?.make({
      ...base,
      proxy: { host: '127.0.0.1', imapPort: 2143, smtpPort: 2587, passwordCommand: 'cat "$HOME/pw"' },
    })
    assert.ok(r)
    assert.match(r.text, /^set folder = "imap:\/\/you%40example\.test@127\.0\.0\.1:2143\/"$/m)
    assert.match(r.text, /^set smtp_pass = "`cat \\"\$HOME\/pw\\"`"$/m)
    assert.match(r.text, /^set ssl_starttls = no$/m)
  })
})

describe('aerc recipe', () => {
  const aerc = RECIPES.get('aerc')
  it('direct: the mechanism in the URL scheme, percent-encoded user, a fresh token per message; 0.15+ dialect by default', () => {
    const r = aerc?.make(base)
    assert.ok(r)
    assert.match(r.text, /^\[you@example\.test\]$/m)
    assert.match(r.text, /^source = imaps\+oauthbearer:\/\/you%40example\.test@imap\.example\.test:993$/m)
    assert.match(r.text, /^source-cred-cmd = mailkey token you@example\.test$/m)
    assert.match(
      r.text,
      /^outgoing = smtp\+oauthbearer:\/\/you%40example\.test@smtp\.example\.test:587$/m,
      '0.15+: smtp:// is STARTTLS',
    )
    assert.doesNotMatch(r.text, /smtp-starttls/)
    assert.match(r.text, /^outgoing-cred-cmd-cache = false$/m)
    assert.match(r.text, /^from = you@example\.test$/m)
    assert.match(r.text, /source-cred-cmd once[\s\S]*--via proxy/, 'says a long session needs the proxy')
    assert.match(r.text, /--client-version 0\.14/)
  })
  it('aerc 0.14: STARTTLS needs smtp-starttls = yes ("true" is ignored there); implicit TLS does not', () => {
    const r = aerc?.make({ ...base, clientVersion: '0.14.0' })
    assert.match(r?.text ?? '', /^smtp-starttls = yes$/m)
    const implicit = aerc?.make({
      ...base,
      clientVersion: '0.14.0',
      smtp: { host: 'smtp.example.test', port: 465, tls: 'implicit' },
      imap: { host: 'imap.example.test', port: 143, tls: 'starttls' },
    })
    assert.match(implicit?.text ?? '', /^outgoing = smtps\+oauthbearer:/m)
    assert.match(implicit?.text ?? '', /^source = imap\+oauthbearer:/m)
    assert.doesNotMatch(implicit?.text ?? '', /smtp-starttls/)
  })
  it('Microsoft: XOAUTH2, no copy-to; a private CA goes to SSL_CERT_FILE on the start line', () => {
    const r = aerc?.make({ ...base, provider: 'microsoft', sasl: 'XOAUTH2', ca: '/etc/ca.pem' })
    assert.ok(r)
    assert.match(r.text, /^source = imaps\+xoauth2:/m)
    assert.match(r.text, /Sent Items itself: no copy-to/)
    assert.doesNotMatch(r.text, /^copy-to/m)
    assert.ok(r.usage.includes('SSL_CERT_FILE=/etc/ca.pem aerc'), r.usage.join('\n'))
  })
  it('via the proxy: imap+insecure and plain SMTP, each dialect; commands with # ; or quotes in backticks', () => {
    const proxy = { host: '127.0.0.1', imapPort: 2143, smtpPort: 2587, passwordCommand: 'pass show mail/local; true' }
    const r = aerc?.make({ ...base, proxy })
    assert.ok(r)
    assert.match(r.text, /^source = imap\+insecure:\/\/you%40example\.test@127\.0\.0\.1:2143$/m)
    assert.match(r.text, /^outgoing = smtp\+insecure:\/\/you%40example\.test@127\.0\.0\.1:2587$/m)
    assert.match(r.text, /^source-cred-cmd = `pass show mail\/local; true`$/m)
    assert.doesNotMatch(r.text, /source-cred-cmd once/, 'the local password does not expire')
    assert.match(
      aerc?.make({ ...base, proxy, clientVersion: '0.14' }).text ?? '',
      /^outgoing = smtp\+plain:\/\/you%40example\.test@127\.0\.0\.1:2587$/m,
    )
    assert.throws(() => aerc?.make({ ...base, proxy: { ...proxy, smtpPort: undefined } }), /SMTP listener/)
  })
  it('an ini value is bare only when go-ini keeps it whole; else in backticks, which may hold backticks (go-ini reads to the last one)', async () => {
    const { iniValue } = await import('../../src/recipes/aerc.js')
    assert.equal(iniValue('mailkey token a@b'), 'mailkey token a@b')
    for (const v of ['a # b', 'a;b', '"quoted"', "'q'", ' lead', 'a`b', 'ends with \\', '`'])
      assert.equal(iniValue(v), `\`${v}\``)
    assert.throws(() => iniValue('a\nb'), RangeError)
  })
})

describe('himalaya recipe (written from its sources: himalaya is not packaged for Debian)', () => {
  const himalaya = RECIPES.get('himalaya')
  type Acc = Record<string, Record<string, unknown>>
  const account = async (text: string): Promise<Acc> => {
    const { parse } = await import('smol-toml')
    const doc = JSON.parse(JSON.stringify(parse(text))) as { accounts: Record<string, Acc> } // plain objects
    assert.deepEqual(Object.keys(doc.accounts), ['you@example.test'], 'one account, named by its address')
    return doc.accounts['you@example.test'] as Acc
  }
  it('himalaya 2 (default): server URLs, STARTTLS, the extra root, SASL with a token command run by sh -c', async () => {
    const r = himalaya?.make({ ...base, ca: '/etc/my "ca".pem', tokenCommand: 'mailkey token "you@example.test"' })
    assert.ok(r)
    const a = await account(r.text)
    assert.equal(a.imap?.server, 'imaps://imap.example.test:993')
    assert.equal(a.imap?.starttls, undefined, 'implicit TLS: no STARTTLS (himalaya refuses both)')
    assert.equal(a.smtp?.server, 'smtp://smtp.example.test:587')
    assert.equal(a.smtp?.starttls, true)
    assert.deepEqual(a.imap?.tls, { cert: '/etc/my "ca".pem' })
    assert.deepEqual(a.imap?.sasl, {
      oauthbearer: { username: 'you@example.test', token: { command: 'mailkey token "you@example.test"' } },
    })
    assert.deepEqual((a.smtp?.sasl as Acc | undefined)?.oauthbearer, {
      username: 'you@example.test',
      token: { command: 'mailkey token "you@example.test"' },
    })
    const ms = await account(himalaya?.make({ ...base, provider: 'microsoft', sasl: 'XOAUTH2' }).text ?? '')
    assert.ok((ms.imap?.sasl as Acc | undefined)?.xoauth2, 'Microsoft: XOAUTH2')
    assert.match(r.usage.join('\n'), /not proven/)
  })
  it('via the proxy: plain URLs to the loopback listeners, LOGIN/PLAIN with the password command; 1.x dialect on request', async () => {
    const proxy = { host: '127.0.0.1', imapPort: 2143, smtpPort: 2587, passwordCommand: 'cat "$HOME/pw"' }
    const a = await account(himalaya?.make({ ...base, proxy }).text ?? '')
    assert.equal(a.imap?.server, 'imap://127.0.0.1:2143')
    assert.deepEqual(a.imap?.sasl, { login: { username: 'you@example.test', password: { command: 'cat "$HOME/pw"' } } })
    assert.deepEqual(a.smtp?.sasl, { plain: { username: 'you@example.test', password: { command: 'cat "$HOME/pw"' } } })
    const v1 = await account(himalaya?.make({ ...base, proxy, clientVersion: '1.1.0' }).text ?? '')
    assert.equal(v1.email, 'you@example.test')
    assert.deepEqual(v1.backend, {
      type: 'imap',
      host: '127.0.0.1',
      port: 2143,
      encryption: { type: 'none' },
      login: 'you@example.test',
      auth: { type: 'password', cmd: 'cat "$HOME/pw"' },
    })
    assert.equal(((v1.message?.send as Acc | undefined)?.backend as Record<string, unknown> | undefined)?.port, 2587)
  })
  it('himalaya 1.x cannot take a token from a command: only the proxy variant', () => {
    assert.match(himalaya?.notDirect?.('1.2.0') ?? '', /own OAuth/)
    assert.equal(himalaya?.notDirect?.('2.0.0'), undefined)
    assert.equal(himalaya?.notDirect?.(undefined), undefined)
    assert.throws(() => himalaya?.make({ ...base, clientVersion: '1.0' }), /--via proxy/)
  })
})

describe('offlineimap recipe', () => {
  const off = RECIPES.get('offlineimap')
  it('direct: XOAUTH2 with a Python expression that runs the token command; TLS modes; the CA or the OS store', () => {
    const r = off?.make(base)
    assert.ok(r)
    assert.match(r.text, /^accounts = you-example\.test$/m)
    assert.match(r.text, /^ssl = yes$/m)
    assert.match(r.text, /^starttls = no$/m)
    assert.match(r.text, /^sslcacertfile = OS-DEFAULT$/m)
    assert.match(r.text, /^auth_mechanisms = XOAUTH2$/m)
    assert.match(
      r.text,
      /^oauth2_access_token_eval = __import__\("subprocess"\)\.run\(\["sh", "-c", "mailkey token you@example\.test"\]/m,
    )
    const st = off?.make({ ...base, ca: '/etc/ca.pem', imap: { host: 'h', port: 143, tls: 'starttls' } })
    assert.match(st?.text ?? '', /^ssl = no\nstarttls = yes\nsslcacertfile = \/etc\/ca\.pem$/m)
  })
  it('a "%" would be read as ConfigParser interpolation: written "%%"; a line break stays inside the Python string', () => {
    const r = off?.make({ ...base, email: 'a%b@example.test', user: 'a%b@example.test', tokenCommand: 'printf %s x' })
    assert.match(r?.text ?? '', /^remoteuser = a%%b@example\.test$/m)
    assert.match(r?.text ?? '', /\["sh", "-c", "printf %%s x"\]/)
    assert.match(off?.make({ ...base, tokenCommand: 'a\nb' }).text ?? '', /\["sh", "-c", "a\\nb"\]/)
  })
})

describe('getmail recipe', () => {
  const gm = RECIPES.get('getmail')
  it('direct: IMAP over TLS with use_xoauth2 and the token command through sh -c; STARTTLS-only servers go via the proxy', () => {
    const r = gm?.make({ ...base, ca: '/etc/ca.pem' })
    assert.ok(r)
    assert.match(r.text, /^type = SimpleIMAPSSLRetriever$/m)
    assert.match(r.text, /^use_xoauth2 = True$/m)
    assert.match(r.text, /^password_command = \("sh", "-c", "mailkey token you@example\.test"\)$/m)
    assert.match(r.text, /^ca_certs = \/etc\/ca\.pem$/m)
    assert.match(r.text, /^delete = false$/m)
    assert.throws(
      () => gm?.make({ ...base, imap: { host: 'h', port: 143, tls: 'starttls' } }),
      /no STARTTLS .* use --via proxy/,
    )
    const p = gm?.make({ ...base, proxy: { host: '127.0.0.1', imapPort: 2143, passwordCommand: 'cat "$HOME/pw"' } })
    assert.match(p?.text ?? '', /^password_command = \("sh", "-c", "cat \\"\$HOME\/pw\\""\)$/m)
  })
})

describe('fetchmail recipe', () => {
  const fm = RECIPES.get('fetchmail')
  it('proxy only: IMAP when there is an IMAP listener (else POP3), no TLS on loopback, keep, the .netrc line quoted', () => {
    assert.equal(fm?.direct, false)
    const r = fm?.make({
      ...base,
      proxy: { host: '127.0.0.1', imapPort: 2143, popPort: 2110, passwordCommand: 'cat pw' },
    })
    assert.ok(r)
    assert.match(r.text, /^poll 127\.0\.0\.1 with proto IMAP port 2143$/m)
    assert.match(r.text, /^ {2}sslproto ''$/m)
    assert.match(r.text, /^ {2}keep$/m)
    assert.ok(
      r.usage.some(
        (u) =>
          u ===
          `printf 'machine %s login "%s" password "%s"\\n' 127.0.0.1 you@example.test "$(cat pw)" >> ~/.netrc && chmod 600 ~/.netrc`,
      ),
      r.usage.join('\n'),
    )
    assert.match(
      fm?.make({ ...base, proxy: { host: '127.0.0.1', popPort: 2110, passwordCommand: 'x' } }).text ?? '',
      /with proto POP3 port 2110/,
    )
    assert.throws(() => fm?.make(base), /needs --via proxy/)
  })
})
