import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmailAdapter, loadEmailConfig } from '../../adapters/email/index.ts';
import { DovecotServer } from '../helpers/dovecot.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { localEmailEnv, mail, passed } from '../helpers/mail.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const OUR_ADDRESS = 'support@switchboard.test';
/** What Microsoft 365 answers AUTH with a wrong password or an expired token. */
const REFUSED = { code: 535, message: '5.7.3 Authentication unsuccessful' };

/**
 * The hub's own mail credentials failing: a refused SMTP login is a failure of the channel, not a
 * verdict on the reply, so the reply waits and goes out once the login passes (until 2026-12-07 a
 * 535 failed every reply at its first try); and OAuth2 access tokens read from a file are read
 * again at each connection, so a token refreshed there by a process beside the hub is taken up
 * without a restart (IMAP and SMTP).
 */
describe('email: refused logins and access tokens refreshed in a file', () => {
  let dovecot: DovecotServer;
  const smtp = new SmtpSink();
  let running: RunningHub | undefined;
  let tokens: string;

  beforeAll(async () => {
    dovecot = await DovecotServer.create({ oauth: true });
    await dovecot.start();
    await smtp.start();
    tokens = await fs.mkdtemp(path.join(os.tmpdir(), 'sbt-tokens-'));
  });
  afterAll(async () => {
    await running?.stop().catch(() => undefined);
    await smtp.stop();
    await dovecot?.cleanup();
    await fs.rm(tokens, { recursive: true, force: true });
  });

  async function startHub(env: Record<string, string>, log: ReturnType<typeof capturingLogger>) {
    running = await startTestHub(
      {
        configDir: FIXTURE_CONFIG,
        deliveryRetryBaseMs: 50,
        deliveryRetryCapMs: 300,
        // Retries wait on the scheduler: the embedded one looks for due jobs this often.
        schedulerPollMs: 20,
      },
      { adapters: [createEmailAdapter(loadEmailConfig(env))], logger: log.logger },
    );
    return running;
  }
  async function stopHub() {
    await running?.stop();
    running = undefined;
  }
  const replies = async (hub: RunningHub, envelopeId: string) =>
    (
      await hub.hub.db.query<{ delivery_status: string; delivery_attempts: number }>(
        `SELECT delivery_status, delivery_attempts FROM messages WHERE in_reply_to = $1 ORDER BY seq`,
        [envelopeId],
      )
    ).rows;
  const ask = (from: string, messageId: string) =>
    dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from,
        messageId,
        subject: 'Opening hours',
        body: 'When are you open?',
      }),
    );

  it('a refused SMTP login (535) is retried, logged at error, and the reply goes out once the login passes', async () => {
    const log = capturingLogger();
    const hub = await startHub(
      {
        ...localEmailEnv(dovecot, smtp.port, 'INBOX=default', OUR_ADDRESS),
        EMAIL_SMTP_USER: 'relay-user',
        EMAIL_SMTP_PASSWORD: 'rotated-password',
      },
      log,
    );
    try {
      // The relay refuses the first three logins, as while its password is being rotated.
      let refusals = 3;
      smtp.authPolicy = () => (refusals-- > 0 ? REFUSED : undefined);
      await ask('Ann <ann@example.org>', 'ann.1@example.org');
      const [reply] = await smtp.waitFor('ann@example.org');
      expect(reply!.parsed.text).toContain('echo When are you open? #1');
      expect(smtp.logins.map((l) => [l.username, l.password, l.accepted])).toEqual([
        ['relay-user', 'rotated-password', false],
        ['relay-user', 'rotated-password', false],
        ['relay-user', 'rotated-password', false],
        ['relay-user', 'rotated-password', true],
      ]);
      const rows = await until(
        () => replies(hub, 'email:ann.1@example.org'),
        (r) => r.length === 2 && r.every((m) => m.delivery_status === 'sent'),
      );
      expect(rows.map((r) => r.delivery_attempts)).toEqual([4, 4]);
      const refused = log.lines.filter((l) => l.event === 'email.smtp_refused_us');
      expect(refused).toHaveLength(3);
      expect(refused[0]).toMatchObject({ level: 50, stage: 'AUTH PLAIN', responseCode: 535 });
      expect(JSON.stringify(log.lines)).not.toContain('rotated-password');
      expect(log.lines.filter((l) => l.event === 'delivery.failed')).toEqual([]);
    } finally {
      smtp.authPolicy = () => undefined;
      smtp.logins.length = 0;
      await stopHub();
    }
  });

  it('reads OAuth2 access tokens from their files at each connection: a token refreshed there is taken up without a restart', async () => {
    const imapToken = path.join(tokens, 'imap-token');
    const smtpToken = path.join(tokens, 'smtp-token');
    // The hub starts with the tokens of an hour ago: both servers refuse them.
    await fs.writeFile(imapToken, 'expired-imap-token\n');
    await fs.writeFile(smtpToken, 'expired-smtp-token\n');
    const freshSmtp = 'fresh-smtp-token';
    smtp.authPolicy = (l) => (l.method === 'XOAUTH2' && l.accessToken === freshSmtp ? undefined : REFUSED);
    const log = capturingLogger();
    const env = localEmailEnv(dovecot, smtp.port, 'INBOX=default', OUR_ADDRESS);
    delete env.EMAIL_IMAP_PASSWORD;
    const hub = await startHub(
      {
        ...env,
        EMAIL_IMAP_ACCESS_TOKEN_FILE: imapToken,
        EMAIL_SMTP_USER: OUR_ADDRESS,
        EMAIL_SMTP_ACCESS_TOKEN_FILE: smtpToken,
      },
      log,
    );
    // The IMAP connection as `/readyz` reports it (never gating readiness: the hub stays ready).
    const imapConnected = async () => {
      const res = await fetch(`${hub.url}/readyz`);
      const body = (await res.json()) as { channels?: Record<string, string> };
      expect(res.status).toBe(200);
      return body.channels?.email === 'connected';
    };
    try {
      await until(
        () => log.lines.filter((l) => l.event === 'email.imap_connect_failed'),
        (lines) => lines.some((l) => l.level === 50 && l.credentials === true),
      );
      expect(await imapConnected()).toBe(false);

      // The sidecar writes the new IMAP token: the next reconnection reads it.
      await fs.writeFile(imapToken, `${dovecot.password}\n`);
      await until(imapConnected, Boolean, 60_000, 100);
      await ask('Bo <bo@example.org>', 'bo.1@example.org');
      // The answer is tried with the old SMTP token, refused, and waits (queued, not failed).
      await until(
        () => smtp.logins.filter((l) => !l.accepted).length,
        (n) => n >= 2,
      );
      expect(smtp.logins.every((l) => l.method === 'XOAUTH2' && l.accessToken === 'expired-smtp-token')).toBe(
        true,
      );
      expect((await replies(hub, 'email:bo.1@example.org')).map((r) => r.delivery_status)).toEqual([
        'queued',
        'queued',
      ]);

      // Now the new SMTP token: the next retry reads it and the answer goes out.
      await fs.writeFile(smtpToken, `${freshSmtp}\n`);
      const [reply] = await smtp.waitFor('bo@example.org');
      expect(reply!.parsed.text).toContain('echo When are you open? #1');
      expect(smtp.logins.filter((l) => l.accepted).map((l) => [l.username, l.accessToken])).toEqual([
        [OUR_ADDRESS, freshSmtp],
      ]);
      await until(
        () => replies(hub, 'email:bo.1@example.org'),
        (r) => r.length === 2 && r.every((m) => m.delivery_status === 'sent'),
      );
      expect(JSON.stringify(log.lines)).not.toMatch(/expired-(imap|smtp)-token|fresh-smtp-token/);
    } finally {
      smtp.authPolicy = () => undefined;
      smtp.logins.length = 0;
      await stopHub();
    }
  }, 120_000);
});
