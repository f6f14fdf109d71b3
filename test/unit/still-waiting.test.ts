// Without a terminal, a device sign-in says "still waiting" once a minute, never right after the
// prompt that already said when the code expires (issue 15, item 7).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { stillWaiting } from '../../src/cli/commands/add.js'

describe('add: still waiting, without a terminal', () => {
  it('nothing at the first tick after the prompt, then a line once a minute, none after expiry', () => {
    let last: number | undefined
    const said: number[] = []
    for (let left = 600; left >= -5; left -= 5) {
      const n = stillWaiting(last, left)
      last = n.lastSaid
      if (n.say) said.push(left)
    }
    assert.deepEqual(said, [540, 480, 420, 360, 300, 240, 180, 120, 60])
  })

  it('irregular ticks (a slow poll) still say it at most once a minute', () => {
    let last: number | undefined
    const said: number[] = []
    for (const left of [600, 598, 530, 529, 470, 469, 468, 300]) {
      const n = stillWaiting(last, left)
      last = n.lastSaid
      if (n.say) said.push(left)
    }
    assert.deepEqual(said, [530, 470, 300])
  })
})
