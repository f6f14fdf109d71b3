// A real Secret Service for tests: a private D-Bus session bus and gnome-keyring-daemon, unlocked
// with a non-empty password (an empty one makes it look for a GUI prompter). Debian packages:
// dbus (dbus-daemon, dbus-send), gnome-keyring, and libsecret-tools (secret-tool, to look inside).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const KEYRING_INSTALL_HINT = 'apt-get install dbus gnome-keyring libsecret-tools'

export function keyringAvailable(): boolean {
  return ['dbus-daemon', 'gnome-keyring-daemon', 'secret-tool'].every(
    (c) => spawnSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }).status === 0,
  )
}

export interface Keyring {
  /** DBUS_SESSION_BUS_ADDRESS (and the keyring's own dirs) for the processes that use it */
  env: Record<string, string>
  /** secret-tool lookup service S username U: the stored value, or undefined */
  lookup(service: string, username: string): string | undefined
  /** how the daemon and the bus are doing (exit status, last stderr lines): for failure messages */
  diagnose(): string
  stop(): Promise<void>
}

export async function startKeyring(): Promise<Keyring> {
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-keyring-'))
  const run = join(dir, 'run')
  await mkdir(run, { mode: 0o700 })
  await mkdir(join(dir, 'data'), { mode: 0o700 })
  const children: ChildProcess[] = []
  // A bus of our own with no service directories: nothing is started on demand. With Debian's
  // session.conf the bus would start a second gnome-keyring (locked, in the real HOME) or a
  // prompter if ours were gone, and a test would fail far from the cause.
  const conf = join(dir, 'bus.conf')
  await writeFile(conf, busConfig(join(dir, 'bus')), { mode: 0o600 })
  const bus = spawn('dbus-daemon', [`--config-file=${conf}`, '--nofork', '--print-address=1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(bus)
  const logs = { bus: '', gk: '' }
  const exits: string[] = []
  const watch = (name: 'bus' | 'gk', c: ChildProcess): void => {
    c.stderr?.on('data', (d: Buffer) => (logs[name] = (logs[name] + d.toString()).slice(-4000)))
    c.once('exit', (code, sig) =>
      exits.push(`${name === 'bus' ? 'dbus-daemon' : 'gnome-keyring-daemon'} (pid ${c.pid}) exited: ${sig ?? code}`),
    )
  }
  watch('bus', bus)
  const address = await new Promise<string>((resolve, reject) => {
    let out = ''
    const t = setTimeout(() => reject(new Error('dbus-daemon printed no address')), 5000)
    bus.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n')[0]
      if (out.includes('\n') && line) {
        clearTimeout(t)
        resolve(line.trim())
      }
    })
    bus.once('exit', () => reject(new Error('dbus-daemon exited')))
  })
  const env = { DBUS_SESSION_BUS_ADDRESS: address, XDG_DATA_HOME: join(dir, 'data'), GNOME_KEYRING_RUN: run }
  const gk = spawn('gnome-keyring-daemon', ['--unlock', '--components=secrets', '--foreground'], {
    // its own HOME and cache too: gnome-keyring leaves a ~/.cache/keyring-* directory otherwise
    env: {
      ...process.env,
      HOME: dir,
      XDG_CACHE_HOME: join(dir, 'cache'),
      DBUS_SESSION_BUS_ADDRESS: address,
      XDG_DATA_HOME: env.XDG_DATA_HOME,
      XDG_RUNTIME_DIR: run,
    },
    stdio: ['pipe', 'ignore', 'pipe'],
  })
  children.push(gk)
  watch('gk', gk)
  gk.stdin?.end('mailkey-test-keyring') // non-empty: an empty password needs a GUI prompter
  const secretEnv = {
    ...process.env,
    DBUS_SESSION_BUS_ADDRESS: address,
    XDG_RUNTIME_DIR: run,
    XDG_DATA_HOME: env.XDG_DATA_HOME,
  }
  // Wait until our daemon owns the Secret Service name: asking earlier makes the bus start
  // another, locked daemon of its own.
  for (let i = 0; ; i++) {
    const owned = spawnSync(
      'dbus-send',
      [
        '--session',
        '--print-reply',
        '--dest=org.freedesktop.DBus',
        '/org/freedesktop/DBus',
        'org.freedesktop.DBus.NameHasOwner',
        'string:org.freedesktop.secrets',
      ],
      { env: secretEnv, encoding: 'utf8', timeout: 5000 },
    )
    if (/boolean true/.test(owned.stdout ?? '')) break
    if (i > 100 || gk.exitCode !== null) throw new Error('gnome-keyring-daemon did not take the Secret Service name')
    await new Promise((r) => setTimeout(r, 50))
  }
  // ready when secret-tool can store and read back
  for (let i = 0; ; i++) {
    const st = spawnSync('secret-tool', ['store', '--label=probe', 'service', 'mailkey-test', 'username', 'probe'], {
      input: 'ok',
      env: secretEnv,
      timeout: 5000,
    })
    if (st.status === 0) break
    if (i > 50) throw new Error('gnome-keyring-daemon did not come up')
    await new Promise((r) => setTimeout(r, 100))
  }
  /** the pid owning org.freedesktop.secrets on our bus, or undefined */
  const owner = (): string | undefined => {
    const r = spawnSync(
      'dbus-send',
      [
        '--session',
        '--print-reply',
        '--dest=org.freedesktop.DBus',
        '/org/freedesktop/DBus',
        'org.freedesktop.DBus.GetConnectionUnixProcessID',
        'string:org.freedesktop.secrets',
      ],
      { env: secretEnv, encoding: 'utf8', timeout: 5000 },
    )
    return /uint32 (\d+)/.exec(r.stdout ?? '')?.[1]
  }
  return {
    env: { DBUS_SESSION_BUS_ADDRESS: address },
    lookup(service, username) {
      const r = spawnSync('secret-tool', ['lookup', 'service', service, 'username', username], {
        env: secretEnv,
        encoding: 'utf8',
        timeout: 5000,
      })
      return r.status === 0 && r.stdout ? r.stdout : undefined
    },
    diagnose() {
      return [
        `our gnome-keyring-daemon: pid ${gk.pid}, ${gk.exitCode === null && gk.signalCode === null ? 'running' : 'gone'}; the Secret Service name is owned by ${owner() ?? 'nobody'}`,
        ...exits,
        logs.gk && `gnome-keyring-daemon stderr:\n${logs.gk}`,
        logs.bus && `dbus-daemon stderr:\n${logs.bus}`,
      ]
        .filter(Boolean)
        .join('\n')
    },
    async stop() {
      for (const c of children.reverse()) c.kill('SIGTERM')
      await new Promise((r) => setTimeout(r, 100))
      await rm(dir, { recursive: true, force: true })
    },
  }
}

function busConfig(socket: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`
}
