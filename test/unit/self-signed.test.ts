import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { mkdtemp, rm, stat, writeFile, chmod } from 'node:fs/promises'
import { execFileSync } from 'node:child_process'
import { createServer, connect } from 'node:tls'
import { tmpdir, hostname } from 'node:os'
import { join } from 'node:path'
import { certificateNames, ensureProxyCertificate, makeSelfSigned, VALIDITY_DAYS } from '../../src/proxy/self-signed.js'
import { have } from '../harness/cli.js'

describe("the proxy's self-signed certificate", () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-cert-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('is a valid X.509 v3 certificate for the names asked, signed by its own key', () => {
    const names = ['localhost', '127.0.0.1', '::1', 'mail.example.test', '192.0.2.7', '2001:db8::25']
    const { cert, key } = makeSelfSigned(names, new Date('2026-11-22T12:00:00Z'))
    const x = new X509Certificate(cert)
    assert.ok(x.verify(x.publicKey), 'self-signature verifies')
    assert.ok(x.checkPrivateKey(createPrivateKey(key)))
    assert.equal(x.ca, false)
    assert.equal(x.checkHost('localhost'), 'localhost')
    assert.equal(x.checkHost('mail.example.test'), 'mail.example.test')
    assert.equal(x.checkHost('other.example.test'), undefined)
    for (const ip of ['127.0.0.1', '::1', '192.0.2.7', '2001:db8::25']) assert.equal(x.checkIP(ip), ip, ip)
    assert.equal(x.checkIP('192.0.2.8'), undefined)
    assert.equal(new Date(x.validFrom).toISOString(), '2026-11-22T11:00:00.000Z')
    assert.equal(new Date(x.validTo).getTime() - new Date('2026-11-22T12:00:00Z').getTime(), VALIDITY_DAYS * 86_400_000)
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extKeyUsage serverAuth')
  })

  it('dates from 2050 on are GeneralizedTime (RFC 5280 §4.1.2.5)', () => {
    const x = new X509Certificate(makeSelfSigned(['localhost'], new Date('2049-06-01T00:00:00Z')).cert)
    assert.equal(new Date(x.validTo).getUTCFullYear(), 2050)
  })

  it(
    'openssl accepts it: parses, and verifies it as its own trust anchor',
    { skip: !have('openssl') && !process.env.CI ? 'openssl missing' : false },
    async () => {
      const { cert } = makeSelfSigned(['localhost', '127.0.0.1'])
      const file = join(dir, 'openssl.pem')
      await writeFile(file, cert)
      const text = execFileSync('openssl', ['x509', '-in', file, '-noout', '-text'], { encoding: 'utf8' })
      assert.match(text, /Version: 3/)
      assert.match(text, /DNS:localhost, IP Address:127\.0\.0\.1/)
      assert.match(text, /CA:FALSE/)
      const out = execFileSync('openssl', ['verify', '-CAfile', file, '-purpose', 'sslserver', file], {
        encoding: 'utf8',
      })
      assert.match(out, /: OK/)
    },
  )

  it('a TLS client that pins it connects to 127.0.0.1 and to localhost', async () => {
    const { cert, key } = makeSelfSigned(certificateNames())
    const server = createServer({ cert, key }, (s) => s.end('hi\n'))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    const port = (server.address() as { port: number }).port
    try {
      for (const host of ['127.0.0.1', 'localhost']) {
        const got = await new Promise<string>((resolve, reject) => {
          const c = connect({
            host: '127.0.0.1',
            port,
            ca: cert,
            ...(host === 'localhost' ? { servername: 'localhost' } : {}),
          })
          c.on('secureConnect', () => (c.authorized ? undefined : reject(c.authorizationError)))
          c.setEncoding('utf8').on('data', (d: string) => resolve(d))
          c.on('error', reject)
        })
        assert.equal(got, 'hi\n', host)
      }
    } finally {
      server.close()
    }
  })

  it('is made once, kept while it fits, and made anew when a name is missing, it is near its end or its files are not private', async () => {
    const state = join(dir, 'state')
    await rm(state, { recursive: true, force: true })
    const { mkdir } = await import('node:fs/promises')
    await mkdir(state, { mode: 0o700 })
    const now = new Date()
    const a = await ensureProxyCertificate(state, certificateNames(), now)
    assert.equal(a.created, true)
    assert.equal((await stat(join(state, 'proxy-tls.key'))).mode & 0o777, 0o600)
    assert.match(a.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
    assert.ok(a.names.includes(hostname().toLowerCase()) || !/^[A-Za-z0-9.-]+$/.test(hostname()))
    const b = await ensureProxyCertificate(state, ['localhost', '127.0.0.1', '::1'], now)
    assert.equal(b.created, false)
    assert.equal(b.fingerprint256, a.fingerprint256)
    const c = await ensureProxyCertificate(state, [...certificateNames(), '192.0.2.9'], now)
    assert.equal(c.created, true, 'a listen address it lacks')
    assert.ok(new X509Certificate(c.cert).checkIP('192.0.2.9'))
    const later = new Date(now.getTime() + (VALIDITY_DAYS - 10) * 86_400_000)
    assert.equal(
      (await ensureProxyCertificate(state, ['localhost'], later)).created,
      true,
      'renewed 30 days before its end',
    )
    await chmod(join(state, 'proxy-tls.key'), 0o644)
    assert.equal(
      (await ensureProxyCertificate(state, ['localhost'])).created,
      true,
      'a key others could read is not used',
    )
    assert.equal((await stat(join(state, 'proxy-tls.key'))).mode & 0o777, 0o600)
  })
})
