// The encrypted token store: sealing (store/seal.ts), store.json (protection.ts), the key agent
// (agent.ts), FileStore with keys, and migrations (migrate.ts), on a temp directory.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileStore } from '../../src/store/file-store.js'
import { resolvePaths, type Paths } from '../../src/config/paths.js'
import { ERR, StoreError, StoreLockedError, UsageError } from '../../src/errors.js'
import type { AccountRecord } from '../../src/domain/account.js'
import {
  SealError,
  deriveKey,
  grantHas,
  newDataKey,
  openBytes,
  openRecord,
  sealBytes,
  sealRecord,
  unwrapKey,
  wrapKey,
  PASSPHRASE_SCRYPT,
  type ScryptParams,
} from '../../src/store/seal.js'
import {
  StoreKeys,
  checkValue,
  decodeKeyMap,
  encodeKeyMap,
  metaPath,
  readMeta,
  writeMeta,
  type PassphraseKeyInfo,
} from '../../src/store/protection.js'
import { pingAgent, requestKey, serveKeys, stopAgent } from '../../src/store/agent.js'
import { changePassphrase, migrateStore } from '../../src/store/migrate.js'
import { accountRecord } from '../harness/records.js'

function record(email: string, rt = 'refresh-token-' + email, secret?: string): AccountRecord {
  return accountRecord(email, {
    refreshToken: rt,
    accessToken: 'access-token-' + email,
    ...(secret ? { settings: { clientSecret: secret } } : {}),
  })
}

const FAST_KDF = (): ScryptParams => ({
  name: 'scrypt',
  N: 2 ** 14,
  r: 8,
  p: 1,
  salt: Buffer.from('0123456789abcdef').toString('base64'),
})

describe('sealing a record', () => {
  const { kid, key } = newDataKey()
  it('takes the tokens and the client secret out, seals them, and gives them back', () => {
    const rec = record('a@example.test', 'rt-a', 'client-secret-a')
    const sealed = sealRecord(rec, 'a@example.test', key, kid)
    const text = JSON.stringify(sealed)
    for (const secret of ['rt-a', 'access-token-a@example.test', 'client-secret-a'])
      assert.ok(!text.includes(secret), `${secret} is not in the sealed record`)
    assert.deepEqual(sealed.grant?.sealed, ['accessToken', 'refreshToken'])
    assert.ok(
      grantHas(sealed.grant, 'refreshToken') && grantHas(sealed.grant, 'accessToken'),
      'status still knows the tokens exist',
    )
    assert.equal(sealed.grant?.expiresAt, rec.grant?.expiresAt, 'times stay readable')
    const back = openRecord(sealed, 'a@example.test', key)
    assert.deepEqual(back, rec)
    assert.equal(rec.grant?.refreshToken, 'rt-a', 'the input record is not changed')
  })
  it('a changed byte, another key, another account or another key id does not open (S1, S2)', () => {
    const sealed = sealRecord(record('a@example.test'), 'a@example.test', key, kid)
    const box = sealed.sealed as NonNullable<AccountRecord['sealed']>
    const flip = (b64: string): string => {
      const b = Buffer.from(b64, 'base64')
      b[0] = (b[0] as number) ^ 1
      return b.toString('base64')
    }
    for (const bad of [
      { ...box, ct: flip(box.ct) },
      { ...box, tag: flip(box.tag) },
      { ...box, iv: flip(box.iv) },
      { ...box, kid: 'other' },
    ]) {
      assert.throws(() => openRecord({ ...sealed, sealed: bad }, 'a@example.test', key), SealError)
    }
    assert.throws(() => openRecord(sealed, 'a@example.test', newDataKey().key), SealError)
    assert.throws(
      () => openRecord(sealed, 'b@example.test', key),
      SealError,
      'a box copied into another account does not open',
    )
    assert.throws(() => openRecord({ ...sealed, sealed: { ...box, tag: 'AAAA' } }, 'a@example.test', key), /16/)
    assert.throws(
      () => openRecord({ ...sealed, sealed: { ...box, alg: 'none' as 'A256GCM' } }, 'a@example.test', key),
      /algorithm/,
    )
  })
  it('a fresh IV every time: the same record seals differently', () => {
    const a = sealBytes(key, kid, 'record', 'x', Buffer.from('same'))
    const b = sealBytes(key, kid, 'record', 'x', Buffer.from('same'))
    assert.notEqual(a.iv, b.iv)
    assert.equal(openBytes(key, 'record', 'x', b).toString(), 'same')
  })
  it('the data key wrapped under a passphrase opens only with that passphrase; absurd scrypt parameters are refused', async () => {
    const kdf = FAST_KDF()
    const wrapped = wrapKey(await deriveKey('correct horse', kdf), kid, key)
    assert.ok(unwrapKey(await deriveKey('correct horse', kdf), wrapped).equals(key))
    assert.throws(() => unwrapKey(Buffer.alloc(32), wrapped), SealError)
    await assert.rejects(
      deriveKey('x', { ...kdf, N: 2 ** 30 }),
      /out of range/,
      'no gigabytes of memory on a planted store.json',
    )
    await assert.rejects(deriveKey('x', { ...kdf, N: 1000 }), /out of range/)
  })
})

describe('an encrypted FileStore', () => {
  let dir: string
  let paths: Paths
  const env = (): Record<string, string> => ({
    HOME: dir,
    XDG_STATE_HOME: join(dir, 'state'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
  })
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-enc-'))
    paths = resolvePaths(env())
    await mkdir(join(dir, 'run'), { mode: 0o700 })
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  /** a store protected by passphrase `pass` (fast scrypt parameters for the test) */
  async function passphraseStore(pass: string): Promise<{ info: PassphraseKeyInfo; key: Buffer }> {
    const { kid, key } = newDataKey()
    const kdf = FAST_KDF()
    const info: PassphraseKeyInfo = {
      kid,
      kind: 'passphrase',
      kdf,
      wrapped: wrapKey(await deriveKey(pass, kdf), kid, key),
      check: checkValue(key, kid),
    }
    await mkdir(paths.stateDir, { recursive: true, mode: 0o700 })
    await writeMeta(paths, { v: 1, protection: 'passphrase', current: kid, keys: [info] })
    return { info, key }
  }

  it('writes sealed records and reads them back with the passphrase; status-style reads need no key', async () => {
    const { key } = await passphraseStore('pass phrase 1')
    const writer = new FileStore(
      paths,
      new StoreKeys(paths, { env: env(), passphraseCommand: 'printf "pass phrase 1\\n"' }),
    )
    await writer.write(record('a@example.test'))
    const onDisk = await readFile(writer.recordPath('a@example.test'), 'utf8')
    assert.ok(
      !onDisk.includes('refresh-token-a@example.test') && !onDisk.includes('access-token-a@example.test'),
      'no token in the file',
    )
    const reader = new FileStore(
      paths,
      new StoreKeys(paths, { env: env(), askPassphrase: async () => 'pass phrase 1' }),
    )
    assert.equal((await reader.read('a@example.test'))?.grant?.refreshToken, 'refresh-token-a@example.test')
    const locked = new FileStore(paths, new StoreKeys(paths, { env: env() }))
    const meta = await locked.read('a@example.test', { secrets: false })
    assert.equal(meta?.grant?.refreshToken, undefined)
    assert.ok(meta?.sealed)
    const listed = await locked.list()
    assert.equal(listed.records[0]?.grant?.accessToken, undefined, 'list never opens secrets')
    await assert.rejects(
      locked.read('a@example.test'),
      (e: unknown) =>
        e instanceof StoreLockedError && e.code === ERR.STORE_LOCKED && /mailkey unlock/.test(e.hint ?? ''),
    )
    // a metadata-only record sealed with the current key is written back as it is
    await new FileStore(paths, new StoreKeys(paths, { env: env(), keys: new Map() })).write({
      ...(meta as AccountRecord),
      state: 'reauth',
    })
    const again = openRecord(
      JSON.parse(await readFile(writer.recordPath('a@example.test'), 'utf8')) as AccountRecord,
      'a@example.test',
      key,
    )
    assert.equal(again.state, 'reauth')
    assert.equal(
      again.grant?.refreshToken,
      'refresh-token-a@example.test',
      'the sealed tokens survived a write without the key',
    )
  })

  it('a wrong passphrase is refused three times, then named; a passphrase_command that fails is reported', async () => {
    let asked = 0
    const keys = new StoreKeys(paths, { env: env(), askPassphrase: async () => (asked++, 'wrong wrong') })
    await assert.rejects(
      new FileStore(paths, keys).read('a@example.test'),
      (e: unknown) => e instanceof StoreLockedError && e.code === ERR.STORE_WRONG_PASSPHRASE,
    )
    assert.equal(asked, 3)
    const cmd = new StoreKeys(paths, { env: env(), passphraseCommand: 'exit 3' })
    await assert.rejects(cmd.key(readMeta(paths)?.current as string), /passphrase_command failed \(exit 3\)/)
  })

  it('a tampered record is reported as corrupt, naming the file, and left untouched', async () => {
    const store = new FileStore(paths, new StoreKeys(paths, { env: env(), passphraseCommand: 'echo "pass phrase 1"' }))
    await store.write(record('t@example.test'))
    const file = store.recordPath('t@example.test')
    const rec = JSON.parse(await readFile(file, 'utf8')) as AccountRecord
    const box = rec.sealed as NonNullable<AccountRecord['sealed']>
    const ct = Buffer.from(box.ct, 'base64')
    ct[3] = (ct[3] as number) ^ 0x40
    const tampered = JSON.stringify({ ...rec, sealed: { ...box, ct: ct.toString('base64') } })
    await writeFile(file, tampered, { mode: 0o600 })
    await assert.rejects(
      store.read('t@example.test'),
      (e: unknown) =>
        e instanceof StoreError &&
        e.code === ERR.STORE_CORRUPT &&
        e.message.includes(file) &&
        /do not open/.test(e.message),
    )
    assert.equal(await readFile(file, 'utf8'), tampered)
  })

  it('store.json: broken, unknown or open to others is refused with the reason', async () => {
    const good = await readFile(metaPath(paths), 'utf8')
    for (const [text, why] of [
      ['{', /not valid JSON/],
      ['{"v":2,"protection":"file","keys":[]}', /version is 2/],
      ['{"v":1,"protection":"rot13","keys":[]}', /protection is unknown/],
      ['{"v":1,"protection":"passphrase","current":"x","keys":[]}', /current key is not listed/],
      ['{"v":1,"protection":"passphrase","keys":[{"kid":"x"}]}', /malformed/],
    ] as const) {
      await writeFile(metaPath(paths), text, { mode: 0o600 })
      assert.throws(() => readMeta(paths), why)
    }
    await writeFile(metaPath(paths), good, { mode: 0o600 })
    await chmod(metaPath(paths), 0o644)
    assert.throws(
      () => readMeta(paths),
      (e: unknown) => e instanceof StoreError && e.code === ERR.STORE_PERMISSIONS,
    )
    await chmod(metaPath(paths), 0o600)
    assert.equal(readMeta(paths)?.protection, 'passphrase')
  })

  it("the agent serves its keys on a private socket; a rogue agent's key is not used (P2, A1)", async () => {
    const meta = readMeta(paths)
    const kid = meta?.current as string
    const real = await new StoreKeys(paths, { env: env(), passphraseCommand: 'echo "pass phrase 1"' }).key(kid)
    const sock = join(dir, 'run', 'mailkey', 'agent.sock')
    const agent = await serveKeys(sock, new Map([[kid, Buffer.from(real)]]), 60_000)
    assert.ok((await requestKey(sock, kid)).equals(real))
    await assert.rejects(requestKey(sock, 'nope'), /no such key/)
    assert.deepEqual((await pingAgent(sock))?.kids, [kid])
    // with the agent, no passphrase is needed
    const viaAgent = new FileStore(paths, new StoreKeys(paths, { env: env() }))
    assert.equal((await viaAgent.read('a@example.test'))?.grant?.accessToken, 'access-token-a@example.test')
    await assert.rejects(serveKeys(sock, new Map(), 1000), /already running/)
    assert.equal(await stopAgent(sock), true)
    await agent.stopped
    assert.equal(existsSync(sock), false)
    assert.equal(await pingAgent(sock), undefined)
    // a rogue agent handing out another key: refused, and the store stays locked
    const rogue = await serveKeys(sock, new Map([[kid, newDataKey().key]]), 60_000)
    await assert.rejects(
      new FileStore(paths, new StoreKeys(paths, { env: env() })).read('a@example.test'),
      (e: unknown) => e instanceof StoreLockedError,
    )
    rogue.stop()
    // a socket directory others can enter is not trusted by the client
    const open = join(dir, 'open', 'agent.sock')
    await mkdir(join(dir, 'open'), { mode: 0o755 })
    await chmod(join(dir, 'open'), 0o755)
    await assert.rejects(requestKey(open, kid), /no private agent socket/)
    await assert.rejects(serveKeys(open, new Map(), 1000), /open to other users/)
  })

  it('the agent forgets its keys when its time is up', async () => {
    const sock = join(dir, 'run', 'mailkey', 'agent.sock')
    const k = Buffer.alloc(32, 7)
    const agent = await serveKeys(sock, new Map([['k', k]]), 200)
    await agent.stopped
    assert.ok(k.equals(Buffer.alloc(32)), 'the key buffer was zeroed')
    assert.equal(await pingAgent(sock), undefined)
  })

  it('a request bigger than 4 KiB or of an unknown kind gets nothing', async () => {
    const sock = join(dir, 'run', 'mailkey', 'agent.sock')
    const agent = await serveKeys(sock, new Map([['k', Buffer.alloc(32, 1)]]), 60_000)
    const { createConnection } = await import('node:net')
    const talk = (payload: string): Promise<string> =>
      new Promise((resolve) => {
        const c = createConnection(sock)
        let out = ''
        c.on('data', (d) => (out += d.toString()))
        c.on('close', () => resolve(out))
        c.on('error', () => resolve(out))
        c.write(payload)
      })
    assert.equal(await talk('x'.repeat(5000)), '')
    assert.match(await talk('{"op":"dump"}\n'), /unknown request/)
    assert.match(await talk('not json\n'), /not JSON/)
    agent.stop()
  })
})

describe('migrating the store', () => {
  let dir: string
  let paths: Paths
  const env = (): Record<string, string> => ({
    HOME: dir,
    XDG_STATE_HOME: join(dir, 'state'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
  })
  const open = (pass?: string): FileStore =>
    new FileStore(
      paths,
      new StoreKeys(paths, {
        env: env(),
        useAgent: false,
        ...(pass ? { passphraseCommand: `printf '%s\\n' '${pass}'` } : {}),
      }),
    )
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-migrate-'))
    paths = resolvePaths(env())
    const plain = open()
    for (const e of ['a@example.test', 'b@example.test', 'c@example.test'])
      await plain.write(record(e, `rt-${e}`, e === 'b@example.test' ? 'secret-b' : undefined))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  const tokens = async (s: FileStore): Promise<string[]> =>
    Promise.all(['a', 'b', 'c'].map(async (x) => (await s.read(`${x}@example.test`))?.grant?.refreshToken ?? 'missing'))

  it('plain -> passphrase -> another passphrase -> plain, every token kept, no key left behind', async () => {
    const want = ['rt-a@example.test', 'rt-b@example.test', 'rt-c@example.test']
    const r1 = await migrateStore(open(), 'passphrase', { passphrase: 'first passphrase', kdf: FAST_KDF() })
    assert.deepEqual(r1.migrated.sort(), ['a@example.test', 'b@example.test', 'c@example.test'])
    assert.equal(readMeta(paths)?.keys.length, 1)
    for (const f of ['a', 'b', 'c'])
      assert.ok(!(await readFile(open().recordPath(`${f}@example.test`), 'utf8')).includes('rt-'), 'sealed on disk')
    assert.deepEqual(await tokens(open('first passphrase')), want)
    assert.equal((await open('first passphrase').read('b@example.test'))?.settings.clientSecret, 'secret-b')
    const kid1 = readMeta(paths)?.current
    await changePassphrase(open('first passphrase'), 'second passphrase', { kdf: FAST_KDF() })
    assert.equal(readMeta(paths)?.current, kid1, 'same key, new wrapping')
    await assert.rejects(open('first passphrase').read('a@example.test'), (e: unknown) => e instanceof StoreLockedError)
    assert.deepEqual(await tokens(open('second passphrase')), want)
    const r2 = await migrateStore(open('second passphrase'), 'passphrase', {
      passphrase: 'third passphrase',
      kdf: FAST_KDF(),
    })
    assert.notEqual(readMeta(paths)?.current, kid1, 'a migration rotates the data key')
    assert.equal(r2.migrated.length, 3)
    assert.deepEqual(await tokens(open('third passphrase')), want)
    await migrateStore(open('third passphrase'), 'file')
    assert.equal(existsSync(metaPath(paths)), false, 'plain again: no store.json')
    assert.deepEqual(await tokens(open()), want)
    assert.match(await readFile(open().recordPath('a@example.test'), 'utf8'), /rt-a@example\.test/)
  })

  it('an interrupted migration leaves every record readable and finishes when run again; another target is refused meanwhile (M1)', async () => {
    await migrateStore(open(), 'passphrase', { passphrase: 'old passphrase', kdf: FAST_KDF() })
    const oldKid = readMeta(paths)?.current as string
    // interrupt a migration to a new passphrase after step 2 and one record: that is the state a
    // kill -9 leaves (store.json lists both keys, records sealed with either)
    const s = open('old passphrase')
    for (const k of readMeta(paths)?.keys ?? []) await s.keys?.key(k.kid)
    const { kid, key } = newDataKey()
    const kdf = FAST_KDF()
    const info: PassphraseKeyInfo = {
      kid,
      kind: 'passphrase',
      kdf,
      wrapped: wrapKey(await deriveKey('old passphrase', kdf), kid, key),
      check: checkValue(key, kid),
    }
    const before = readMeta(paths)
    await writeMeta(paths, { v: 1, protection: 'passphrase', current: kid, keys: [...(before?.keys ?? []), info] })
    s.keys?.remember(info, key)
    await s.write((await s.read('a@example.test')) as AccountRecord)
    const kids = await Promise.all(
      ['a', 'b', 'c'].map(async (x) => (await open().read(`${x}@example.test`, { secrets: false }))?.sealed?.kid),
    )
    assert.deepEqual(kids, [kid, oldKid, oldKid], 'half-migrated')
    assert.deepEqual(
      await tokens(open('old passphrase')),
      ['rt-a@example.test', 'rt-b@example.test', 'rt-c@example.test'],
      'everything still opens',
    )
    await assert.rejects(
      migrateStore(open('old passphrase'), 'file'),
      (e: unknown) =>
        e instanceof UsageError && /did not finish/.test(e.message) && /--to passphrase/.test(e.hint ?? ''),
    )
    const r = await migrateStore(open('old passphrase'), 'passphrase')
    assert.equal(r.resumed, true)
    assert.deepEqual(
      readMeta(paths)?.keys.map((k) => k.kid),
      [kid],
    )
    assert.deepEqual(await tokens(open('old passphrase')), [
      'rt-a@example.test',
      'rt-b@example.test',
      'rt-c@example.test',
    ])
  })
})

describe('the production passphrase cost', () => {
  it('a new passphrase key gets scrypt N=2^17, r=8, p=1 unless code asks otherwise; store.json records it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailkey-kdf-'))
    try {
      const env = { HOME: dir, XDG_STATE_HOME: join(dir, 'state'), XDG_RUNTIME_DIR: join(dir, 'run') }
      const paths = resolvePaths(env)
      const open = (pass?: string): FileStore =>
        new FileStore(
          paths,
          new StoreKeys(paths, {
            env,
            useAgent: false,
            ...(pass ? { passphraseCommand: `printf '%s\\n' '${pass}'` } : {}),
          }),
        )
      await open().write(record('a@example.test', 'rt-a'))
      assert.deepEqual(PASSPHRASE_SCRYPT, { N: 2 ** 17, r: 8, p: 1 })
      await migrateStore(open(), 'passphrase', { passphrase: 'production passphrase' })
      const info = readMeta(paths)?.keys[0] as PassphraseKeyInfo
      assert.deepEqual({ N: info.kdf.N, r: info.kdf.r, p: info.kdf.p }, PASSPHRASE_SCRYPT)
      // opening derives with the parameters store.json holds
      const unlocked = open('production passphrase')
      assert.equal((await unlocked.read('a@example.test'))?.grant?.refreshToken, 'rt-a')
      await changePassphrase(unlocked, 'cheap passphrase', { kdf: FAST_KDF() })
      const cheap = readMeta(paths)?.keys[0] as PassphraseKeyInfo
      assert.equal(cheap.kdf.N, 2 ** 14, 'the lower cost was used and recorded')
      assert.equal((await open('cheap passphrase').read('a@example.test'))?.grant?.refreshToken, 'rt-a')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('key maps handed to a child process', () => {
  it('round-trip, and anything but key ids to 32-byte keys is refused', () => {
    const keys = new Map([
      ['k1', randomBytes(32)],
      ['k2', randomBytes(32)],
    ])
    const line = encodeKeyMap(keys)
    assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'), 'one line')
    assert.deepEqual(decodeKeyMap(line), keys)
    assert.deepEqual(decodeKeyMap(encodeKeyMap(new Map())), new Map())
    for (const bad of [
      '',
      'null',
      '[]',
      '"x"',
      '{"k1":1}',
      `{"k1":"${randomBytes(16).toString('base64')}"}`,
      '{"k1":',
      'not json',
    ]) {
      assert.equal(decodeKeyMap(bad), undefined, bad)
    }
  })
})
