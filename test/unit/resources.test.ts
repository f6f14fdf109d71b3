// Running out of file descriptors is an outage, not a dead account (issue 11, item 5). The
// descriptor table of this test process is really filled (open /dev/null until EMFILE), then the
// store, the CLI (main(), in process), the upstream connection and the DNS lookup are asked for
// their verdict; every descriptor is closed again before the test ends.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { withoutDescriptors } from '../harness/descriptors.js'
import { FileStore } from '../../src/store/file-store.js'
import { resolvePaths, type Env } from '../../src/config/paths.js'
import { ERR, EXIT, StoreError, exitCodeOf, isTransient, shortageCode } from '../../src/errors.js'
import { descriptorShortage, openFileLimit } from '../../src/core/resources.js'
import { ProbeNetworkError, openTransport } from '../../src/upstream/transport.js'
import { diagnose, type DiagnoseContext } from '../../src/upstream/diagnose.js'
import { ProbeFailure } from '../../src/upstream/dialogues.js'
import { classify } from '../../src/oauth/classify.js'
import { main } from '../../src/cli/main.js'
import type { AccountRecord } from '../../src/domain/account.js'
import { captureIO } from '../harness/capture-io.js'
import { accountRecord } from '../harness/records.js'

const EMAIL = 'fd@example.test'

function record(email: string): AccountRecord {
  return accountRecord(email, {
    accessToken: 'at-1',
    settings: { servers: { imap: 'imaps://localhost:1' } },
  })
}

const ctx: DiagnoseContext = {
  protocol: 'imap',
  account: EMAIL,
  mailbox: EMAIL,
  server: 'imaps://mail.example.test:993',
  freshTokenRefused: false,
  provider: 'custom',
}

describe('out of file descriptors (issue 11, item 5)', () => {
  let dir: string
  let env: Env
  let store: FileStore
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-fd-'))
    env = {
      HOME: dir,
      XDG_STATE_HOME: join(dir, 'state'),
      XDG_CONFIG_HOME: join(dir, 'config'),
      XDG_RUNTIME_DIR: join(dir, 'run'),
    }
    store = new FileStore(resolvePaths(env))
    await store.write(record(EMAIL))
    // load the command modules and the error report now: under EMFILE no module can be read
    for (const argv of [['token', EMAIL], ['status'], ['status', EMAIL], ['token', 'nobody@example.test']])
      await main(argv, captureIO(env))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('the probe sees the shortage, and only then', async () => {
    assert.equal(descriptorShortage(), undefined)
    assert.equal(await withoutDescriptors(async () => descriptorShortage()), 'EMFILE')
  })

  it('reading a record at the fd limit: transient RESOURCES_EXHAUSTED (exit 75) saying what ran out, not an I/O error or "no account"', async () => {
    const fresh = new FileStore(resolvePaths(env))
    const e = await withoutDescriptors(() =>
      fresh.read(EMAIL).then(
        () => undefined,
        (x: unknown) => x,
      ),
    )
    assert.ok(e instanceof StoreError, String(e))
    assert.equal(e.code, ERR.RESOURCES_EXHAUSTED)
    assert.equal(isTransient(e), true)
    assert.equal(exitCodeOf(e), EXIT.TEMPFAIL)
    assert.match(e.message, /ran out of file descriptors \(EMFILE\)/)
    // a missing record is still "no such account", not an outage
    assert.equal(await fresh.read('missing@example.test'), undefined)
  })

  it('listing at the fd limit fails as a whole (transient), instead of calling records broken', async () => {
    const e = await withoutDescriptors(() =>
      store.list().then(
        () => undefined,
        (x: unknown) => x,
      ),
    )
    assert.equal(isTransient(e), true, String(e))
  })

  it('mailkey token and mailkey status exit 75 and say what ran out', async () => {
    for (const argv of [['token', EMAIL], ['status', EMAIL], ['status']]) {
      const io = captureIO(env)
      const code = await withoutDescriptors(() => main(argv, io))
      assert.equal(code, EXIT.TEMPFAIL, `mailkey ${argv.join(' ')}: ${io.err}`)
      assert.match(io.err, /ran out of file descriptors \(EMFILE\)/, argv.join(' '))
      assert.equal(io.out, '', 'no token and no status printed')
    }
    // and with descriptors again, the same commands work
    const io = captureIO(env)
    assert.equal(await main(['token', EMAIL], io), EXIT.OK, io.err)
    assert.equal(io.out.trim(), 'at-1')
  })

  it('a host name lookup that fails for lack of descriptors is reported as that, not as a wrong host (ENOTFOUND)', async () => {
    const e = await withoutDescriptors(() =>
      openTransport({ host: 'localhost', port: 9, implicitTls: false }, { timeoutMs: 5000 }).then(
        () => undefined,
        (x: unknown) => x,
      ),
    )
    assert.ok(e instanceof ProbeNetworkError, String(e))
    assert.equal(e.code, 'EMFILE', e.message)
    assert.match(e.message, /cannot look up localhost: this process ran out of file descriptors/)
    assert.equal(diagnose(e, ctx).kind, 'transient')
  })

  it('diagnose: shortage codes and transient DNS failures are transient; a real ENOTFOUND stays a configuration error', () => {
    for (const code of ['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'ENOBUFS', 'EAI_AGAIN', 'EAI_MEMORY', 'EAI_SYSTEM']) {
      const d = diagnose(new ProbeNetworkError(`x (${code})`, code), ctx)
      assert.equal(d.kind, 'transient', code)
      assert.match(d.cause, new RegExp(`\\(${code}\\)`))
    }
    // the CA file unreadable for lack of descriptors is not a missing CA
    const ca = new ProbeNetworkError('cannot read the CA file', 'CA_FILE', {
      cause: Object.assign(new Error('EMFILE'), { code: 'EMFILE' }),
    })
    assert.equal(diagnose(ca, ctx).kind, 'transient')
    assert.equal(diagnose(new ProbeNetworkError('nope', 'ENOTFOUND'), ctx).kind, 'config')
    // an upstream at its own connection limit (Dovecot: mail_max_userip_connections) is busy, not refusing the token
    const limit = new ProbeFailure(
      'auth',
      'refused',
      'mk1 NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)',
    )
    assert.equal(diagnose(limit, { ...ctx, freshTokenRefused: true }).kind, 'transient')
    assert.equal(diagnose(new ProbeNetworkError('nope', 'CA_FILE'), ctx).kind, 'config')
  })

  it('an OAuth request that fails for lack of descriptors says so', async () => {
    const failed = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect EMFILE 127.0.0.1:443'), { code: 'EMFILE' }),
    })
    const e = classify(failed, { account: EMAIL, host: 'as.example', phase: 'refresh' })
    assert.equal(e.transient, true)
    assert.match(
      e.message,
      /cannot reach as\.example for "fd@example\.test": this process ran out of file descriptors \(EMFILE\)/,
    )
    // glibc's ENOTFOUND while the table is full
    const dns = new TypeError('fetch failed', {
      cause: Object.assign(new Error('getaddrinfo ENOTFOUND as.example'), { code: 'ENOTFOUND' }),
    })
    const e2 = await withoutDescriptors(async () =>
      classify(dns, { account: EMAIL, host: 'as.example', phase: 'refresh' }),
    )
    assert.match(e2.message, /ran out of file descriptors \(EMFILE\)/)
    assert.equal(shortageCode(Object.assign(new Error('x'), { cause: { code: 'EAI_SYSTEM' } })), 'EAI_SYSTEM')
  })

  it('openFileLimit reads the soft limit from /proc/self/limits', async () => {
    const f = join(dir, 'limits')
    await writeFile(
      f,
      'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n',
    )
    assert.equal(openFileLimit(f), 1024)
    assert.equal(openFileLimit(join(dir, 'nope')), undefined)
  })
})
