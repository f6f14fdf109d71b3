#!/usr/bin/env node
// A BROWSER command for tests: opens <url> in a real headless Chromium, signs in on the lab
// authorization server's pages (login, consent, device confirmation) and waits until the browser has
// loaded the client's loopback redirect (auth code flow) or the device success page. Then closes
// Chromium and removes its temporary profile. No dependencies: Chromium is driven over the DevTools
// protocol with Node's built-in WebSocket (re-executes itself with --experimental-websocket on Node 20).
//
//   node test/harness/chromium-open.mjs <url | page file>
//
// Environment:
//   LAB_LOGIN        login name to sign in with (default: the login_hint, else alice@example.test)
//   LAB_ISSUER       origin of the authorization server (default: the origin of <url>)
//   LAB_DENY=1       press Cancel/Deny/Abort instead of approving
//   LAB_USER_CODE    user code to type when the device code input page is shown
//   LAB_SCREENSHOT   save a PNG of the final page there
//   LAB_TIMEOUT_MS   overall time limit (default 30000)
//   LAB_CHROMIUM     Chromium binary (default /usr/lib/chromium/chromium, then /usr/bin/chromium)
//   LAB_VERBOSE=1    log each step to stderr
// Exit status: 0 done, 1 failure, 2 usage, 124 timeout. Never prints query strings (codes, tokens).
import { spawn } from 'node:child_process'
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

const NAME = 'chromium-open'

class Failure extends Error {
  constructor(message, exitCode = 1) {
    super(message)
    this.exitCode = exitCode
  }
}

function verbose(message) {
  if (process.env.LAB_VERBOSE === '1') process.stderr.write(`${NAME}: ${message}\n`)
}

/** URL without query and fragment: codes and tokens never reach the output. */
function safeUrl(href) {
  try {
    const u = new URL(href)
    return u.protocol.startsWith('http') ? `${u.origin}${u.pathname}` : `${u.protocol}${u.host}${u.pathname}`
  } catch {
    return '(unparseable url)'
  }
}

function findChromium() {
  const candidates = [
    process.env.LAB_CHROMIUM,
    '/usr/lib/chromium/chromium',
    '/usr/bin/chromium',
    '/usr/bin/chromium-browser',
  ].filter(Boolean)
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // next
    }
  }
  throw new Failure(`no Chromium found (tried ${candidates.join(', ')}); ` + 'install it: apt-get install chromium')
}

class Cdp {
  #ws
  #nextId = 1
  #pending = new Map()

  constructor(ws) {
    this.#ws = ws
    ws.addEventListener('message', (event) => {
      let msg
      try {
        msg = JSON.parse(String(event.data))
      } catch {
        return
      }
      const waiter = msg.id === undefined ? undefined : this.#pending.get(msg.id)
      if (!waiter) return
      this.#pending.delete(msg.id)
      if (msg.error) waiter.reject(new Error(`${waiter.method}: ${msg.error.message}`))
      else waiter.resolve(msg.result)
    })
    ws.addEventListener('close', () => {
      for (const waiter of this.#pending.values()) waiter.reject(new Error('DevTools connection closed'))
      this.#pending.clear()
    })
  }

  static connect(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url)
      ws.addEventListener('open', () => resolve(new Cdp(ws)), { once: true })
      const fail = () => reject(new Failure('cannot connect to Chromium DevTools'))
      ws.addEventListener('error', fail, { once: true })
    })
  }

  /** Every call fails at `deadline` (ms since epoch) at the latest. */
  deadline = Infinity

  send(method, params = {}, sessionId = undefined) {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++
      const timer = setTimeout(
        () => {
          this.#pending.delete(id)
          reject(new Failure(`timed out waiting for ${method}`, 124))
        },
        Math.max(0, Math.min(this.deadline - Date.now(), 2 ** 31 - 1)),
      )
      const done = (fn) => (value) => {
        clearTimeout(timer)
        fn(value)
      }
      this.#pending.set(id, { resolve: done(resolve), reject: done(reject), method })
      try {
        this.#ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }))
      } catch (err) {
        this.#pending.delete(id)
        done(reject)(err)
      }
    })
  }

  close() {
    try {
      this.#ws.close()
    } catch {
      // already closed
    }
  }
}

// Runs in the page: recognises the lab's pages by their <main id>, presses the right button once per
// document, and reports where the browser is.
function pageStep(login, deny, userCode) {
  const out = { href: location.href, ready: document.readyState, page: null, acted: null, text: '' }
  const main = document.querySelector('main[id]')
  out.page = main ? main.id : null
  if (out.page === 'lab-error') out.text = main.innerText.replace(/\s+/g, ' ').slice(0, 300)
  if (location.protocol === 'chrome-error:') {
    out.text = document.querySelector('.error-code')?.textContent ?? ''
  }
  if (document.readyState === 'loading' || window.__labActed) return out
  const click = (selector, what) => {
    const button = document.querySelector(selector)
    if (!button) return
    window.__labActed = true
    out.acted = what
    button.click()
  }
  if (out.page === 'lab-login') {
    if (deny) {
      click('form#deny button[type=submit]', 'cancel login')
      return out
    }
    const input = document.querySelector('form#login input[name=login]')
    if (login || !input.value) input.value = login || 'alice@example.test'
    document.querySelector('form#login input[name=password]').value = 'lab'
    click('form#login button[type=submit]', 'login')
  } else if (out.page === 'lab-consent') {
    const form = deny ? 'form#deny' : 'form#consent'
    click(`${form} button[type=submit]`, deny ? 'deny' : 'consent')
  } else if (out.page === 'lab-device-confirm') {
    click(
      deny ? 'button[form="op.deviceConfirmForm"][name=abort]' : 'button[form="op.deviceConfirmForm"]:not([name])',
      deny ? 'abort device' : 'confirm device',
    )
  } else if ((out.page === 'lab-device-input' || out.page === 'lab-device-bad-code') && userCode) {
    if (out.page === 'lab-device-bad-code') return out
    document.querySelector('#op\\.deviceInputForm input[name=user_code]').value = userCode
    click('button[form="op.deviceInputForm"]', 'user code')
  }
  return out
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]'])

async function drive(cdp, sessionId, url, issuerOrigin, deadline) {
  const login = process.env.LAB_LOGIN ?? ''
  const deny = process.env.LAB_DENY === '1'
  const userCode = process.env.LAB_USER_CODE ?? ''
  const args = [JSON.stringify(login), String(deny), JSON.stringify(userCode)].join(', ')
  const expression = `(${pageStep.toString()})(${args})`

  const nav = await cdp.send('Page.navigate', { url }, sessionId)
  if (nav.errorText) throw new Failure(`cannot open ${safeUrl(url)}: ${nav.errorText}`)

  let last = ''
  while (Date.now() < deadline) {
    let state
    try {
      const r = await cdp.send('Runtime.evaluate', { expression, returnByValue: true }, sessionId)
      state = r.result?.value
    } catch {
      state = undefined // the document is being replaced by a navigation
    }
    if (state) {
      const where = `${safeUrl(state.href)} [${state.page ?? state.ready}]`
      if (where !== last) verbose(`at ${where}`)
      last = where
      if (state.acted) verbose(`pressed ${state.acted}`)
      if (state.href.startsWith('chrome-error:') && state.ready !== 'loading') {
        const history = await cdp.send('Page.getNavigationHistory', {}, sessionId).catch(() => undefined)
        const failed = history?.entries?.[history.currentIndex]?.url
        throw new Failure(
          `navigation to ${failed ? safeUrl(failed) : 'a page'} failed` +
            `${state.text ? ` (${state.text})` : ''}; is the redirect target listening?`,
        )
      }
      const u = new URL(state.href)
      if (
        u.protocol === 'http:' &&
        LOOPBACK_HOSTS.has(u.hostname) &&
        u.origin !== issuerOrigin &&
        state.ready === 'complete'
      ) {
        verbose(`loaded the loopback redirect ${safeUrl(state.href)}`)
        return
      }
      if (state.page === 'lab-device-success') return
      if (state.page === 'lab-device-aborted' && deny) return
      if (state.page === 'lab-error') throw new Failure(`authorization server error page: ${state.text}`)
      if (state.page === 'lab-device-aborted') throw new Failure('the device sign-in was interrupted')
      if (state.page === 'lab-device-bad-code') throw new Failure('the device user code was rejected')
      if (state.page === 'lab-device-input' && !userCode && state.ready === 'complete') {
        throw new Failure('device code input page reached but LAB_USER_CODE is not set')
      }
    }
    await sleep(50)
  }
  throw new Failure(`timed out at ${last || safeUrl(url)}`, 124)
}

async function waitForFile(path, child, deadline) {
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return undefined
    try {
      const text = await readFile(path, 'utf8')
      const [port, wsPath] = text.split('\n')
      if (port && wsPath) return { port: Number(port), wsPath }
    } catch {
      // not written yet
    }
    await sleep(25)
  }
  return undefined
}

function logTail(path) {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l && !l.includes('dbus'))
      .slice(-5)
      .join('\n')
  } catch {
    return ''
  }
}

async function main() {
  // mailkey hands the browser a private page that forwards to the sign-in URL (never the URL
  // itself: argv is public); a path or a file: URL is opened as that page.
  const arg = process.argv[2]
  const url = arg && !/^(https?|file):/.test(arg) && existsSync(arg) ? pathToFileURL(resolve(arg)).href : arg
  if (!url || process.argv.length > 3 || !/^(https?|file):\/\//.test(url)) {
    process.stderr.write(`usage: ${NAME} <http(s) url | page file>\n`)
    process.exit(2)
  }
  if (url.startsWith('file:') && !process.env.LAB_ISSUER) {
    process.stderr.write(`${NAME}: LAB_ISSUER is needed with a page file\n`)
    process.exit(2)
  }
  const timeoutMs = Number(process.env.LAB_TIMEOUT_MS ?? 30_000) || 30_000
  const deadline = Date.now() + timeoutMs
  const issuerOrigin = process.env.LAB_ISSUER ? new URL(process.env.LAB_ISSUER).origin : new URL(url).origin

  let base
  let child
  let cdp
  let exitCode = 0
  let interrupted = false
  const onSignal = (signal) => {
    if (interrupted) return
    interrupted = true
    process.stderr.write(`${NAME}: interrupted by ${signal}\n`)
    void cleanup().finally(() => process.exit(130))
  }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, onSignal)
  // Last resort if a DevTools call hangs: kill Chromium's process group and leave.
  const watchdog = setTimeout(() => {
    process.stderr.write(`${NAME}: timed out after ${timeoutMs} ms (hard limit)\n`)
    try {
      if (child) process.kill(-child.pid, 'SIGKILL')
    } catch {
      // gone
    }
    if (base) rmSync(base, { recursive: true, force: true })
    process.exit(124)
  }, timeoutMs + 5000)
  watchdog.unref()

  async function cleanup() {
    if (cdp) {
      cdp.deadline = Date.now() + 1500
      await cdp.send('Browser.close').catch(() => undefined)
      cdp.close()
      cdp = undefined
    }
    if (child) {
      const exited =
        child.exitCode !== null || child.signalCode !== null
          ? Promise.resolve()
          : new Promise((resolve) => child.once('exit', resolve))
      await Promise.race([exited, sleep(1500)])
      try {
        process.kill(-child.pid, 'SIGKILL') // the whole process group: renderers, zygote, crashpad
      } catch {
        // already gone
      }
      await Promise.race([exited, sleep(1500)])
      child = undefined
    }
    if (base) {
      await rm(base, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 }).catch(() => undefined)
      base = undefined
    }
  }

  try {
    const chromium = findChromium()
    base = await mkdtemp(join(tmpdir(), 'mailkey-chromium-'))
    const profile = join(base, 'profile')
    const log = join(base, 'chromium.log')
    const logFd = openSync(log, 'w')
    const flags = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-breakpad',
      '--disable-crash-reporter',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE ::1',
      '--remote-debugging-address=127.0.0.1',
      '--remote-debugging-port=0',
      `--user-data-dir=${profile}`,
      'about:blank',
    ]
    verbose(`launching ${chromium}`)
    child = spawn(chromium, flags, { detached: true, stdio: ['ignore', 'ignore', logFd] })
    closeSync(logFd)
    child.on('error', () => undefined)

    const startDeadline = Math.min(deadline, Date.now() + 15_000)
    const active = await waitForFile(join(profile, 'DevToolsActivePort'), child, startDeadline)
    if (!active) {
      const tail = logTail(log)
      const why = Date.now() >= deadline ? ` within ${timeoutMs} ms` : ''
      throw new Failure(`Chromium did not start${why}${tail ? `:\n${tail}` : ''}`, why ? 124 : 1)
    }
    cdp = await Cdp.connect(`ws://127.0.0.1:${active.port}${active.wsPath}`)
    cdp.deadline = deadline
    const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' })
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true })
    await cdp.send('Page.enable', {}, sessionId)

    await drive(cdp, sessionId, url, issuerOrigin, deadline)

    if (process.env.LAB_SCREENSHOT) {
      const shot = await cdp.send('Page.captureScreenshot', { format: 'png' }, sessionId)
      await writeFile(process.env.LAB_SCREENSHOT, Buffer.from(shot.data, 'base64'))
      verbose(`screenshot saved to ${process.env.LAB_SCREENSHOT}`)
    }
  } catch (err) {
    exitCode = err instanceof Failure ? err.exitCode : 1
    if (!interrupted) process.stderr.write(`${NAME}: ${err instanceof Error ? err.message : String(err)}\n`)
  } finally {
    if (!interrupted) await cleanup()
  }
  if (!interrupted) process.exit(exitCode)
}

if (typeof globalThis.WebSocket !== 'function') {
  // Node 20 needs --experimental-websocket: run this script again with it.
  const args = ['--experimental-websocket', ...process.execArgv, ...process.argv.slice(1)]
  const child = spawn(process.execPath, args, { stdio: 'inherit' })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal))
  }
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
} else {
  await main()
}
