/**
 * The shared store commands (issue 13, docs/adr/0011):
 *   mailkey store init [--new-key FILE]     create or upgrade the schema (idempotent); optionally a key file
 *   mailkey store status                    the shared store, its schema and accounts
 *   mailkey store migrate --to URL          move this host's file-store accounts into a shared store
 *   mailkey store rotate-key [--prepare | --finish]   a new store key (store/shared/rotate.ts)
 * The store is the one MAILKEY_STORE_URL or [store] url names (migrate: the one --to names).
 *
 * Owns: the commands' words. Must not: hold SQL or sealing (store/shared/).
 */
import { constants as fsc } from 'node:fs'
import { open } from 'node:fs/promises'
import { ConfigError, ERR, EXIT, UsageError } from '../../errors.js'
import { resolvePaths } from '../../config/paths.js'
import { ConfigFile } from '../../config/config-file.js'
import { sharedSetting } from '../../broker/store-choice.js'
import type { CliIO } from '../io.js'
import type { FileStore } from '../../store/file-store.js'
import type { SharedStore } from '../../store/shared/shared-store.js'
import { jsonLine } from '../json.js'

interface Values {
  json?: boolean
  to?: string
  'new-key'?: string
  prepare?: boolean
  finish?: boolean
}

async function configuredShared(io: CliIO): Promise<SharedStore | undefined> {
  const s = await sharedSetting(io.env, new ConfigFile(resolvePaths(io.env).configFile))
  if (!s) return undefined
  const { openSharedStore } = await import('../../store/shared/open-shared.js')
  return await openSharedStore({ env: io.env, ...s })
}

function noSharedStore(): UsageError {
  return new UsageError('no shared store is configured on this host', {
    hint: 'Set MAILKEY_STORE_URL=postgres://USER@HOST/DB (or [store] url in config.toml), then run "mailkey store init".',
  })
}

/** Handles `sub` when it is a shared store command; undefined when it is not one. */
export async function runShared(
  sub: string,
  values: Values,
  io: CliIO,
  file: () => FileStore,
): Promise<number | undefined> {
  if (sub === 'init') return await init(values, io)
  if (sub === 'rotate-key') return await rotateKey(values, io)
  if (sub === 'migrate' && values.to?.includes('://')) return await migrateIn(values.to, values, io, file())
  if (sub === 'status') {
    const shared = await configuredShared(io)
    if (!shared) return undefined
    try {
      return await status(shared, values, io)
    } finally {
      await shared.close()
    }
  }
  return undefined
}

async function init(values: Values, io: CliIO): Promise<number> {
  if (values['new-key']) await writeNewKey(values['new-key'], io)
  const shared = await configuredShared(io)
  if (!shared) throw noSharedStore()
  try {
    const r = await shared.backend.init()
    const what = r.from === 0 ? 'created' : r.from < r.to ? `upgraded from version ${r.from}` : 'already up to date'
    io.stderr(`mailkey store init: the schema on ${shared.label} is ${what} (version ${r.to}).\n`)
    const keyProblem = await shared.keyProblem()
    if (keyProblem) io.stderr(`mailkey: note: ${keyProblem}\n`)
    if (values.json) io.stdout(jsonLine('store_init', { store: shared.label, from_version: r.from, to_version: r.to }))
    return EXIT.OK
  } finally {
    await shared.close()
  }
}

/** A new key file: created, never overwritten (an existing key may be the only way into the fleet's tokens). */
async function writeNewKey(path: string, io: CliIO): Promise<void> {
  const { newKeyLine, keyFileText, parseKeyFile } = await import('../../store/shared/store-key.js')
  let fh
  try {
    fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new UsageError(`"${path}" already exists; mailkey does not overwrite a key file`, {
        hint: 'Name a new file, or use the existing one (MAILKEY_STORE_KEY_FILE).',
      })
    throw new ConfigError(ERR.STORE_KEY_UNAVAILABLE, `cannot create the key file "${path}": ${(e as Error).message}`)
  }
  try {
    await fh.writeFile(keyFileText(parseKeyFile(newKeyLine(), path)))
    await fh.sync()
  } finally {
    await fh.close()
  }
  io.stderr(
    `A new store key is in "${path}" (mode 0600). Copy it to every host that uses the store (keep it 0600, never in a repository) and name it in MAILKEY_STORE_KEY_FILE or [store] key_file.\n`,
  )
}

async function status(shared: SharedStore, values: Values, io: CliIO): Promise<number> {
  await shared.ensureDir()
  const { records, broken } = await shared.list()
  const reauth = records.filter((r) => r.state === 'reauth').map((r) => r.settings.email)
  if (values.json) {
    io.stdout(
      jsonLine('store_status', {
        kind: 'shared',
        store: shared.label,
        account_count: records.length,
        reauth_accounts: reauth,
        broken: broken.map((b) => ({ file: b.file, message: b.error.message, code: b.error.code })),
      }),
    )
    return EXIT.OK
  }
  io.stdout(
    `token store   ${shared.label} (shared; records sealed with the store key)\naccounts      ${records.length}` +
      (reauth.length ? `, ${reauth.length} needing sign-in: ${reauth.join(', ')}` : '') +
      '\n',
  )
  for (const b of broken) io.stderr(`mailkey: ${b.error.message}\n`)
  return broken.length ? EXIT.IOERR : EXIT.OK
}

async function migrateIn(url: string, values: Values, io: CliIO, file: FileStore): Promise<number> {
  // argv is readable by every user (ps) and kept in shell history: no password there
  if (/^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(url)) {
    throw new UsageError('the store URL on the command line holds a password', {
      hint: 'Give the URL without it (postgres://USER@HOST/DB) and the password in PGPASSWORD, ~/.pgpass or REDISCLI_AUTH.',
    })
  }
  await file.assertPrivate()
  const { openSharedStore } = await import('../../store/shared/open-shared.js')
  const cfg = await new ConfigFile(resolvePaths(io.env).configFile).loadOrNothing()
  const shared = await openSharedStore({
    env: io.env,
    url,
    ...(cfg?.store?.keyFile ? { keyFile: cfg.store.keyFile } : {}),
  })
  try {
    const { migrateIntoShared } = await import('../../store/shared/migrate-in.js')
    const r = await migrateIntoShared(file, shared, (l) => io.stderr(`${l}\n`))
    if (values.json) io.stdout(jsonLine('migrated', { store: shared.label, ...r }))
    io.stderr(
      `${r.moved.length} account(s) moved to ${shared.label}` +
        (r.skipped.length ? `, ${r.skipped.length} already there (left as they were)` : '') +
        `. Set MAILKEY_STORE_URL (or [store] url) on this host so that it uses the shared store from now on.\n`,
    )
    for (const b of r.broken) io.stderr(`mailkey: not moved: ${b.message}\n`)
    return r.broken.length ? EXIT.IOERR : EXIT.OK
  } finally {
    await shared.close()
  }
}

async function rotateKey(values: Values, io: CliIO): Promise<number> {
  const env = io.env
  const setting = await sharedSetting(env, new ConfigFile(resolvePaths(env).configFile))
  if (!setting) throw noSharedStore()
  const { keyFilePath } = await import('../../store/shared/store-key.js')
  const path = keyFilePath(env, setting.keyFile) // [store] key_file comes with the setting
  const { parseStoreUrl } = await import('../../store/shared/store-url.js')
  const label = parseStoreUrl(setting.url).label
  const rotate = await import('../../store/shared/rotate.js')
  if (!path) throw new UsageError(`the shared store ${label} has no key file configured`)
  if (values.prepare) {
    const kid = await rotate.prepareKey(path, label)
    if (values.json) io.stdout(jsonLine('key_rotated', { step: 'prepare', kid }))
    io.stderr(
      `A new key ${kid} is at the end of "${path}": it opens records but seals none yet. Copy the file to every host, then run "mailkey store rotate-key".\n`,
    )
    return EXIT.OK
  }
  const kid = values.finish ? undefined : await rotate.promoteNewest(path, label)
  const shared = await configuredShared(io) // opened after the key file changed
  if (!shared) throw noSharedStore()
  try {
    const current = kid ?? (await shared.currentKid())
    const done = await rotate.resealAll(shared, current)
    await shared.items.rebind(['api-key', 'proxy-password']) // before any older key leaves the file
    if (!values.finish) {
      if (values.json) io.stdout(jsonLine('key_rotated', { step: 'rotate', kid: current, resealed: done.length }))
      io.stderr(
        `Key ${current} now seals; ${done.length} account(s) sealed again with it. Copy "${path}" to every host, then run "mailkey store rotate-key --finish".\n`,
      )
      return EXIT.OK
    }
    const dropped = await rotate.dropOlderKeys(path, label)
    if (values.json) io.stdout(jsonLine('key_rotated', { step: 'finish', resealed: done.length, dropped }))
    io.stderr(
      `${done.length} account(s) sealed again; older key(s) ${dropped.join(', ') || '(none)'} left "${path}". Copy it to every host.\n`,
    )
    return EXIT.OK
  } finally {
    await shared.close()
  }
}
