#!/usr/bin/env node
// `npm run build:exe`: the single-file executable dist/exe/mailkey for linux-x64 (ADR 0013), made
// with Node's single executable applications from the Node that runs this script
// (process.execPath): the whole CLI bundled by esbuild into one CommonJS file (src/cli/bin-exe.ts),
// the keyring addon (@napi-rs/keyring's linux-x64-gnu .node) embedded as an SEA asset, the blob
// injected with postject at the SEA fuse. Linux needs no signature step.
//
// The result is cached by content: dist/exe/mailkey.key holds a hash of everything that goes in
// (the bundle, the addon, the base node binary, the SEA settings, this script); when it matches,
// the executable is left as it is. Each build works in its own directory and renames its results
// into place, so two builds at once (a test and a bench) do not see each other's halves.
// Usage: node scripts/build-exe.mjs [--quiet]   Prints the executable's path on stdout.
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Script } from 'node:vm'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const OUT = join(ROOT, 'dist', 'exe')
const EXE = join(OUT, 'mailkey')
const KEY_FILE = `${EXE}.key`
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'
// bundled code sets import.meta.url to a file under this root (src/core/exe.ts: the same string)
const EXE_URL = 'file:///__mailkey_exe__/cli/bin-exe.js'
const quiet = process.argv.includes('--quiet')
const say = (m) => quiet || console.error(`build-exe: ${m}`)

function fail(message) {
  console.error(`build-exe: ${message}`)
  process.exit(1)
}

function checkHost() {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    fail(`builds the linux-x64 executable only, on linux-x64 (this is ${process.platform}-${process.arch})`)
  const [major, minor] = process.versions.node.split('.').map(Number)
  if (major < 20 || (major === 20 && minor < 12)) fail(`needs Node >= 20.12 (SEA assets); this is ${process.version}`)
  // a distribution's node may be a small launcher of a shared libnode, without the fuse
  const base = readFileSync(process.execPath)
  if (!base.includes(FUSE)) fail(`${process.execPath} has no SEA fuse: use an official Node build (nodejs.org)`)
  return base
}

/** the addon's file, where npm installed it (an optional dependency of @napi-rs/keyring) */
function keyringAddon() {
  const req = createRequire(join(ROOT, 'package.json'))
  const pkg = dirname(req.resolve('@napi-rs/keyring/package.json'))
  const fromPkg = createRequire(join(pkg, 'index.js'))
  try {
    return fromPkg.resolve('@napi-rs/keyring-linux-x64-gnu/keyring.linux-x64-gnu.node')
  } catch {
    return fail('@napi-rs/keyring-linux-x64-gnu is not installed (npm ci on linux-x64 installs it)')
  }
}

// the full CLI's asset is this function's body; src/cli/bin-exe.ts calls it (loadFull)
const WRAP = ['(function (exports, require, module, __filename, __dirname) {', '\n})']

/** src/cli/bin-exe.ts (the SEA's main: fast path) and src/cli/exe-full.ts (the full CLI, an asset) */
async function bundle(work) {
  const { build } = await import('esbuild')
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version
  const common = {
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // smaller to parse at every start (bench/README.md); keepNames: error classes take their
    // name from new.target.name (src/errors.ts)
    minify: true,
    keepNames: true,
    // import() of Node's built-ins as require(): a single executable has no module loader for
    // import() (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), and its require() serves the built-ins
    supported: { 'dynamic-import': false },
    alias: { '@napi-rs/keyring': './src/store/keyring-exe.ts' },
    define: { 'import.meta.url': JSON.stringify(EXE_URL), MAILKEY_VERSION: JSON.stringify(version) },
    logLevel: 'warning',
  }
  const main = join(work, 'mailkey.cjs')
  const full = join(work, 'cli.cjs')
  await build({ ...common, entryPoints: ['src/cli/bin-exe.ts'], outfile: main })
  await build({
    ...common,
    entryPoints: ['src/cli/exe-full.ts'],
    outfile: full,
    banner: { js: WRAP[0] },
    footer: { js: WRAP[1] },
  })
  // V8's code cache for the full CLI, made by this node (the executable's own: the cache is tied to it)
  const script = new Script(readFileSync(full, 'utf8'), { filename: '/__mailkey_exe__/cli/cli.cjs' })
  const cache = join(work, 'cli.cache')
  writeFileSync(cache, script.createCachedData())
  return { main, full, cache }
}

function seaConfig(work, { main, full, cache }, addon) {
  return {
    main,
    output: join(work, 'sea-prep.blob'),
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: true,
    assets: { 'keyring.node': addon, 'cli.cjs': full, 'cli.cache': cache },
  }
}

async function inject(work, config) {
  const cfgFile = join(work, 'sea-config.json')
  writeFileSync(cfgFile, JSON.stringify(config, null, 2))
  const r = spawnSync(process.execPath, ['--experimental-sea-config', cfgFile], { encoding: 'utf8' })
  if (r.status !== 0) fail(`node --experimental-sea-config failed:\n${r.stdout}${r.stderr}`)
  const exe = join(work, 'mailkey')
  copyFileSync(process.execPath, exe)
  chmodSync(exe, 0o755)
  const { inject: postject } = createRequire(import.meta.url)('postject')
  await postject(exe, 'NODE_SEA_BLOB', readFileSync(config.output), { sentinelFuse: FUSE })
  return exe
}

async function main() {
  const base = checkHost()
  const addon = keyringAddon()
  mkdirSync(OUT, { recursive: true })
  const work = join(OUT, `.build-${process.pid}`)
  rmSync(work, { recursive: true, force: true })
  mkdirSync(work, { recursive: true })
  try {
    const parts = await bundle(work)
    const config = seaConfig(work, parts, addon)
    const key = createHash('sha256')
    const self = readFileSync(fileURLToPath(import.meta.url))
    for (const part of [readFileSync(parts.main), readFileSync(parts.full), readFileSync(addon), base, self])
      key.update(createHash('sha256').update(part).digest())
    key.update(JSON.stringify({ ...config, main: '', output: '', assets: Object.keys(config.assets) }))
    const digest = key.digest('hex')
    if (existsSync(EXE) && existsSync(KEY_FILE) && readFileSync(KEY_FILE, 'utf8').trim() === digest) {
      say(`${EXE} is up to date`)
      return
    }
    const exe = await inject(work, config)
    renameSync(exe, EXE)
    writeFileSync(`${KEY_FILE}.${process.pid}`, `${digest}\n`)
    renameSync(`${KEY_FILE}.${process.pid}`, KEY_FILE)
    say(`wrote ${EXE} (${(statSync(EXE).size / 1e6).toFixed(1)} MB) from ${process.execPath} ${process.version}`)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

await main()
console.log(EXE)
