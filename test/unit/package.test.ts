// What the npm tarball holds, read from `npm pack --dry-run --json` (scripts skipped: no build, no
// dist/ written under other tests' feet, a few seconds): the licence and the README, every docs/
// file the README names, nothing from test/ or bench/, no install-time script that a user's npm
// would flag or run; and no packed tarball committed to git.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** the paths `npm pack` would put in the tarball, relative to the package root */
function packedFiles(): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const [report] = JSON.parse(out) as { files: { path: string }[] }[]
  assert.ok(report, 'npm pack reported a package')
  return report.files.map((f) => f.path)
}

/** every docs/ path the README names, in a link or in the text, without trailing punctuation */
function docsNamedIn(readme: string): string[] {
  const names = readme.match(/(?<![\w/.])docs\/[\w./-]*/g) ?? []
  return [...new Set(names.map((n) => n.replace(/[.,;:]+$/, '')))]
}

it('the tarball: LICENSE, README, the docs the README names; no tests or benchmarks', async () => {
  const files = packedFiles()
  assert.ok(files.includes('LICENSE'), 'LICENSE is packed')
  assert.ok(files.includes('README.md'), 'README.md is packed')
  const license = await readFile(`${ROOT}/LICENSE`, 'utf8')
  assert.match(license, /^MIT License\n\nCopyright \(c\) \d{4} the mailkey authors\n/)
  const pkg = JSON.parse(await readFile(`${ROOT}/package.json`, 'utf8')) as { license: string }
  assert.equal(pkg.license, 'MIT')
  const readme = await readFile(`${ROOT}/README.md`, 'utf8')
  const named = docsNamedIn(readme)
  assert.ok(named.length > 0, 'the README names docs/ files')
  for (const doc of named) {
    // "docs/adr/" (a folder) and "docs/adr/0011" (a prefix) name whatever starts so
    assert.ok(
      files.some((f) => f === doc || (doc.endsWith('/') ? f.startsWith(doc) : f.startsWith(`${doc}-`))),
      `${doc}, named in README.md, is packed`,
    )
  }
  const stray = files.filter((f) => /^(test|bench|\.ci|scripts|src)\//.test(f) || f.endsWith('.tgz'))
  assert.deepEqual(stray, [], 'no tests, benchmarks, CI, sources or tarballs in the package')
})

it('the package runs no script when installed, and no tarball is in git', async () => {
  const pkg = JSON.parse(await readFile(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> }
  // npm flags (and, once allowed, runs) these in an installed package; the build needs devDependencies
  for (const event of ['preinstall', 'install', 'postinstall', 'prepare']) {
    assert.equal(pkg.scripts[event], undefined, `no "${event}" script`)
  }
  assert.equal(pkg.scripts.prepack, 'npm run build', 'npm pack and npm publish build first')
  const tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n')
  assert.deepEqual(
    tracked.filter((f) => f.endsWith('.tgz')),
    [],
    'no .tgz in git',
  )
  const ignored = await readFile(`${ROOT}/.gitignore`, 'utf8')
  assert.ok(ignored.split('\n').includes('*.tgz'), '.gitignore ignores packed tarballs')
})
