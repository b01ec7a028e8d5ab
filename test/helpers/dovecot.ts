import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import { until } from './until.ts';

const DOVECOT = '/usr/sbin/dovecot';
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

import { freePort } from './free-port.ts';

async function systemUser(name: string): Promise<{ uid: number; gid: number } | undefined> {
  const passwd = await fs.readFile('/etc/passwd', 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** Every process below `root`, from /proc (Linux). */
async function descendants(root: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) parents.set(Number(entry), ppid);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [pid, ppid] of parents)
      if (ppid === parent) {
        found.push(pid);
        queue.push(pid);
      }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function groupName(gid: number): Promise<string> {
  const groups = await fs.readFile('/etc/group', 'utf8').catch(() => '');
  const line = groups.split('\n').find((l) => l.split(':')[2] === String(gid));
  return line?.split(':')[0] ?? String(gid);
}

/**
 * A real Dovecot IMAP server for one test file: its own configuration, Maildir and state in a
 * temporary directory, one user with a password (passwd-file, plaintext login on loopback only),
 * listening on a free loopback port. It can be stopped and started again on the same port, and
 * mail can be dropped into its Maildir while it is down, as a delivery agent would.
 */
export class DovecotServer {
  readonly user = 'switchboard';
  readonly password = randomBytes(12).toString('hex');
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly mailOwner: { uid: number; gid: number },
  ) {}

  /**
   * `oauth`: the server also takes OAuth2 logins (XOAUTH2, OAUTHBEARER); the token that passes is
   * the user's password (Dovecot checks the bearer token against the passdb as it would a password).
   */
  static async create(options: { oauth?: boolean } = {}): Promise<DovecotServer> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sbt-dovecot-'));
    // Dovecot's unprivileged processes read the configuration and the user list from here.
    await fs.chmod(dir, 0o755);
    const root = process.getuid?.() === 0;
    const internal = root ? await systemUser('dovecot') : undefined;
    const login = root ? ((await systemUser('dovenull')) ? 'dovenull' : 'nobody') : os.userInfo().username;
    // Dovecot refuses to run mail processes as root: as root, mail belongs to the dovecot user.
    const mailOwner = internal ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    const server = new DovecotServer(dir, await freePort(), mailOwner);
    await fs.mkdir(path.join(dir, 'run'));
    await fs.mkdir(path.join(dir, 'mail'));
    await fs.chown(path.join(dir, 'mail'), mailOwner.uid, mailOwner.gid);
    await fs.writeFile(
      path.join(dir, 'users'),
      `${server.user}:{PLAIN}${server.password}:${mailOwner.uid}:${mailOwner.gid}::${path.join(dir, 'mail', server.user)}\n`,
      { mode: 0o644 },
    );
    const internalUser = root ? 'dovecot' : os.userInfo().username;
    const group = root ? 'dovecot' : await groupName(process.getgid?.() ?? 0);
    await fs.writeFile(
      path.join(dir, 'dovecot.conf'),
      `# Written by test/helpers/dovecot.ts for one test run.
protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login${options.oauth ? ' xoauth2 oauthbearer' : ''}
first_valid_uid = ${Math.min(mailOwner.uid, 500)}
mail_location = maildir:~/Maildir
default_internal_user = ${internalUser}
default_internal_group = ${group}
default_login_user = ${login}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/users
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${server.port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`,
    );
    return server;
  }

  get logFile(): string {
    return path.join(this.dir, 'dovecot.log');
  }

  /** The Maildir folder of `folder` (Maildir++: `INBOX` is the root, others are `.Name`). */
  maildir(folder = 'INBOX'): string {
    const root = path.join(this.dir, 'mail', this.user, 'Maildir');
    return folder === 'INBOX' ? root : path.join(root, `.${folder}`);
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Starts the server in the foreground and waits until it greets on its port. */
  async start(): Promise<void> {
    if (this.child) return;
    const child = spawn(DOVECOT, ['-F', '-c', path.join(this.dir, 'dovecot.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    // Until it greets, or its master exits (then it never will).
    const state = await until(
      async () => ((await this.greets()) ? 'greets' : child.exitCode !== null ? 'exited' : 'starting'),
      (s) => s !== 'starting',
      START_TIMEOUT_MS,
      100,
    ).catch(() => 'timed out');
    if (state !== 'greets') {
      const log = await fs.readFile(this.logFile, 'utf8').catch(() => '');
      await this.stop();
      throw new Error(`dovecot did not start on port ${this.port} (${state}):\n${output.join('')}\n${log}`);
    }
  }

  /**
   * Stops the whole server and waits until it is gone. Dovecot's master exits on SIGTERM but
   * leaves its session processes running (they keep open IMAP connections alive, orphaned), so
   * every process of this server is ended, by pid, as a stopped server would be.
   */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const family = await descendants(child.pid);
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
      for (const pid of family) signal(pid, 'SIGTERM');
      // Those still running when the time is up are killed.
      await until(
        () => family.some(alive),
        (any) => !any,
        STOP_TIMEOUT_MS,
        50,
      ).catch(() => undefined);
      for (const pid of family.filter(alive)) signal(pid, 'SIGKILL');
    }
    this.child = undefined;
    // The master is gone; wait for the port to be free again before anyone starts it anew.
    await until(
      () => this.greets(),
      (greets) => !greets,
      STOP_TIMEOUT_MS,
      100,
    ).catch(() => undefined);
  }

  private greets(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, '127.0.0.1');
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(2_000, () => done(false));
      socket.once('error', () => done(false));
      socket.on('data', (d: Buffer) => {
        if (d.toString().includes('ready.')) done(true);
      });
    });
  }

  /** A logged-in IMAP client, for the test's own looks at the mailbox. Log it out after use. */
  async client(): Promise<ImapFlow> {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: this.port,
      secure: false,
      doSTARTTLS: false,
      auth: { user: this.user, pass: this.password },
      logger: false,
    });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  /**
   * Places a mail in a folder with IMAP APPEND; returns its UID. `arrived` sets its INTERNALDATE
   * (when the server received it), as a mail that has been waiting in the folder that long.
   */
  async append(
    raw: string | Buffer,
    folder = 'INBOX',
    flags: string[] = [],
    arrived?: Date,
  ): Promise<number> {
    const client = await this.client();
    try {
      if (folder !== 'INBOX') {
        const list = await client.list();
        if (!list.some((m) => m.path === folder)) await client.mailboxCreate(folder);
      }
      const result = await client.append(folder, raw, flags, arrived);
      const uid = result ? result.uid : undefined;
      if (!uid) throw new Error('APPEND returned no UID');
      return uid;
    } finally {
      await client.logout().catch(() => undefined);
    }
  }

  /** The flags of every mail in a folder, by Message-ID (for checking what was marked processed). */
  async flagsByMessageId(folder = 'INBOX'): Promise<Map<string, Set<string>>> {
    const client = await this.client();
    const out = new Map<string, Set<string>>();
    try {
      const box = await client.mailboxOpen(folder, { readOnly: true });
      if (box.exists === 0) return out;
      for await (const m of client.fetch('1:*', { envelope: true, flags: true })) {
        if (m.envelope?.messageId) out.set(m.envelope.messageId, m.flags ?? new Set());
      }
      return out;
    } finally {
      await client.logout().catch(() => undefined);
    }
  }

  /** Drops a mail into the folder's Maildir `new/` directly, as a delivery agent does (works while stopped). */
  async deliver(raw: string, folder = 'INBOX'): Promise<void> {
    const dir = this.maildir(folder);
    const name = `${Math.floor(Date.now() / 1000)}.M${randomBytes(6).toString('hex')}P${process.pid}.sbt`;
    const tmp = path.join(dir, 'tmp', name);
    await fs.writeFile(tmp, raw.replace(/\r?\n/g, '\r\n'));
    await fs.chown(tmp, this.mailOwner.uid, this.mailOwner.gid);
    await fs.rename(tmp, path.join(dir, 'new', name));
  }

  /**
   * Makes the server renumber a folder, as after a restore or a migration: with the server
   * stopped, its UID list and indexes are deleted, so the next start assigns a new UIDVALIDITY
   * and numbers the mail from 1 again. Flags kept in the Maildir file names survive.
   */
  async renumber(folder = 'INBOX'): Promise<void> {
    if (this.child) throw new Error('stop the server before renumbering');
    const dir = this.maildir(folder);
    for (const file of await fs.readdir(dir)) {
      if (file === 'dovecot-uidlist' || file.startsWith('dovecot.index')) await fs.rm(path.join(dir, file));
    }
  }

  /** The Maildir files in a folder's cur/ and new/ (to edit flags or remove mail while stopped). */
  async files(folder = 'INBOX'): Promise<string[]> {
    const dir = this.maildir(folder);
    const out: string[] = [];
    for (const sub of ['cur', 'new']) {
      for (const f of await fs.readdir(path.join(dir, sub)).catch(() => [] as string[]))
        out.push(path.join(dir, sub, f));
    }
    return out;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
