// A git repository with one commit (README, "hello"), for the tests that send a patch with
// git send-email: each git step must succeed.
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCommand } from './cli.js'

export async function repoWithOneCommit(repo: string, env: Record<string, string>, subject: string): Promise<void> {
  await mkdir(repo, { recursive: true })
  await writeFile(join(repo, 'README'), 'hello\n')
  for (const a of [
    ['init', '-q'],
    ['add', 'README'],
    ['commit', '-q', '-m', subject],
  ]) {
    const g = await runCommand('git', ['-C', repo, ...a], env)
    assert.equal(g.code, 0, g.stderr)
  }
}
