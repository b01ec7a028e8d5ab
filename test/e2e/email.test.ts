import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmailAdapter, type EmailConfig, loadEmailConfig } from '../../adapters/email/index.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { DovecotServer } from '../helpers/dovecot.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { mail, passed, TRUSTED_AUTHSERV_ID } from '../helpers/mail.ts';
import { ServerProcess } from '../helpers/server-process.ts';
import { type ReceivedMail, SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const OUR_ADDRESS = 'support@switchboard.test';
/** Tests that stop and start servers wait for reconnects with backoff (up to seconds each). */
const RESTART_TEST_TIMEOUT_MS = 180_000;

const bare = (id: string | undefined) => (id ?? '').replace(/^<|>$/g, '');
const refs = (m: ReceivedMail) => {
  const r = m.parsed.references;
  return (Array.isArray(r) ? r : r ? [r] : []).map(bare);
};

describe('email channel against a real IMAP server (dovecot) and a real SMTP server', () => {
  let dovecot: DovecotServer;
  const smtp = new SmtpSink();
  let database: TestDatabase;
  let running: RunningHub | undefined;

  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    EMAIL_IMAP_HOST: '127.0.0.1',
    EMAIL_IMAP_PORT: String(dovecot.port),
    EMAIL_IMAP_TLS: 'none',
    EMAIL_IMAP_USER: dovecot.user,
    EMAIL_IMAP_PASSWORD: dovecot.password,
    EMAIL_MAILBOXES: 'INBOX=default,Menu=menu',
    EMAIL_SMTP_HOST: '127.0.0.1',
    EMAIL_SMTP_PORT: String(smtp.port),
    EMAIL_SMTP_TLS: 'none',
    EMAIL_FROM: `Switchboard Support <${OUR_ADDRESS}>`,
    // Alice's mail carries the server's passing Authentication-Results: she is a known person.
    EMAIL_TRUSTED_AUTHSERV_ID: TRUSTED_AUTHSERV_ID,
    ...extra,
  });
  const config = (extra: Record<string, string> = {}): EmailConfig => loadEmailConfig(env(extra));

  async function startHub(extra: Record<string, string> = {}): Promise<RunningHub> {
    running = await startTestHub(
      { databaseUrl: database.url, configDir: FIXTURE_CONFIG },
      { adapters: [createEmailAdapter(config(extra))] },
    );
    await waitEmail('connected');
    return running;
  }

  async function stopHub(): Promise<void> {
    await running?.stop();
    running = undefined;
  }

  type Readiness = { checks: Record<string, string>; channels?: Record<string, string> };
  async function readyz(): Promise<{ status: number; body: Readiness }> {
    const res = await fetch(`${running!.url}/readyz`);
    return { status: res.status, body: (await res.json()) as Readiness };
  }

  /**
   * Until `/readyz` reports the email channel `state`: it never gates readiness (the mail server
   * is a third party), so the hub answers 200 either way.
   */
  async function waitEmail(state: 'connected' | 'disconnected'): Promise<void> {
    const answer = await until(readyz, (r) => r.body.channels?.email === state);
    expect(answer.status).toBe(200);
    expect(answer.body.checks).not.toHaveProperty('email');
  }

  /** `switchboard_email_imap_connected` of INBOX: the channel's connection, for alerting. */
  async function imapConnected(): Promise<number | undefined> {
    const text = await (await fetch(`${running!.url}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith('switchboard_email_imap_connected{') && l.includes('/inbox"'));
    return line === undefined ? undefined : Number(line.split(' ').at(-1));
  }

  const db = () => running!.hub.db;
  const rows = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    (await db().query<T>(sql, params)).rows;

  beforeAll(async () => {
    dovecot = await DovecotServer.create();
    await dovecot.start();
    const client = await dovecot.client();
    await client.mailboxCreate('Menu');
    await client.logout();
    await smtp.start();
    database = await createTestDatabase();
    await startHub();
  });

  afterAll(async () => {
    await stopHub().catch(() => undefined);
    await smtp.stop();
    await dovecot?.cleanup();
    await database?.drop();
  });

  it('answers a new mail in the same thread: In-Reply-To, References, one "Re: ", our Message-ID, replies joined', async () => {
    const alice = 'alice@example.org';
    await dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from: 'Alice Example <Alice@Example.org>',
        messageId: 'first.alice@example.org',
        subject: 'Opening hours',
        body: 'When are you open?\n\n-- \nAlice Example\nExample Org',
      }),
    );
    const [reply] = await smtp.waitFor(alice);
    const parsed = reply!.parsed;
    expect(bare(parsed.inReplyTo)).toBe('first.alice@example.org');
    expect(refs(reply!)).toEqual(['first.alice@example.org']);
    expect(parsed.subject).toBe('Re: Opening hours');
    expect(parsed.messageId).toMatch(/@switchboard\.test>$/);
    expect(parsed.from?.value[0]?.address).toBe(OUR_ADDRESS);
    expect(parsed.headers.get('auto-submitted')).toBe('auto-replied');
    // The greeting and the answer of one turn travel as one mail; the signature did not reach the bot.
    expect(parsed.text).toContain('welcome');
    expect(parsed.text).toContain('echo When are you open? #1');
    expect(parsed.text).not.toContain('Example Org');

    const [session] = await rows<{ id: string; native_key: string; user_id: string | null }>(
      `SELECT id, native_key, user_id FROM sessions WHERE channel = 'email' AND native_key LIKE $1`,
      [`${alice}#%`],
    );
    expect(session!.native_key).toBe(`${alice}#first.alice@example.org`);
    expect(session!.user_id).toBeTruthy();
    const sent = await until(
      () =>
        rows<{ delivery_status: string; channel_message_id: string }>(
          `SELECT delivery_status, channel_message_id FROM messages WHERE in_reply_to = $1 ORDER BY seq`,
          ['email:first.alice@example.org'],
        ),
      (r) => r.length === 2 && r.every((m) => m.delivery_status === 'sent'),
    );
    expect(sent.map((m) => m.channel_message_id)).toEqual([bare(parsed.messageId), bare(parsed.messageId)]);
    const flags = await dovecot.flagsByMessageId();
    expect(flags.get('<first.alice@example.org>')?.has('\\Seen')).toBe(true);
  });

  it('continues the session when the person answers our reply, with or without References', async () => {
    const alice = 'alice@example.org';
    const ours = bare((await smtp.waitFor(alice))[0]!.parsed.messageId);
    // Gmail: References carries the whole chain; the quoted previous mail is stripped.
    await dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from: 'Alice Example <alice@example.org>',
        messageId: 'second.alice@example.org',
        subject: 'Re: Opening hours',
        inReplyTo: ours,
        references: ['first.alice@example.org', ours],
        body: `And on Sundays?\n\nOn Tue, 4 Mar 2025 at 10:15, Switchboard Support <${OUR_ADDRESS}> wrote:\n> welcome\n> echo When are you open? #1\n`,
      }),
    );
    const [, second] = await smtp.waitFor(alice, 2);
    expect(second!.parsed.text).toContain('echo And on Sundays? #2');
    expect(second!.parsed.subject).toBe('Re: Opening hours');
    expect(bare(second!.parsed.inReplyTo)).toBe('second.alice@example.org');
    expect(refs(second!)).toEqual(['first.alice@example.org', ours, 'second.alice@example.org']);

    // A client that sends only In-Reply-To (no References) still lands in the same session.
    const oursAgain = bare(second!.parsed.messageId);
    await dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from: 'alice@example.org',
        messageId: 'third.alice@example.org',
        subject: 'RE: Re: Opening hours',
        inReplyTo: oursAgain,
        body: 'Thanks!',
      }),
    );
    const [, , third] = await smtp.waitFor(alice, 3);
    expect(third!.parsed.text).toContain('echo Thanks! #3');
    expect(third!.parsed.subject).toBe('Re: Opening hours');
    const sessions = await rows(`SELECT id FROM sessions WHERE channel = 'email' AND native_key LIKE $1`, [
      `${alice}#%`,
    ]);
    expect(sessions).toHaveLength(1);
  });

  it('records auto-replies, bounces and our own mail but never answers them', async () => {
    await dovecot.append(
      mail({
        from: 'Bob Away <bob@example.org>',
        messageId: 'vacation.bob@example.org',
        subject: 'Out of office: Re: Your order',
        headers: { 'Auto-Submitted': 'auto-replied', 'X-Autoreply': 'yes' },
        body: 'I am out of the office until Monday.',
      }),
    );
    await dovecot.append(
      [
        'Return-Path: <>',
        'From: Mail Delivery System <MAILER-DAEMON@mx.example.org>',
        `To: ${OUR_ADDRESS}`,
        'Subject: Undelivered Mail Returned to Sender',
        'Message-ID: <bounce.1@mx.example.org>',
        'MIME-Version: 1.0',
        'Content-Type: multipart/report; report-type=delivery-status; boundary="DSN"',
        '',
        '--DSN',
        'Content-Type: text/plain',
        '',
        'I am sorry to have to inform you that your message could not be delivered.',
        '--DSN',
        'Content-Type: message/delivery-status',
        '',
        'Reporting-MTA: dns; mx.example.org',
        '',
        'Final-Recipient: rfc822; gone@example.org',
        'Action: failed',
        'Status: 5.1.1',
        '--DSN--',
        '',
      ].join('\r\n'),
    );
    await dovecot.append(
      mail({
        from: `Switchboard Support <${OUR_ADDRESS}>`,
        to: 'someone@example.org',
        messageId: 'copy.of.our.own@elsewhere.example',
        subject: 'Re: Something',
        body: 'A copy of what we sent.',
      }),
    );
    // Handled in UID order: once Carol is answered, the three before her were handled.
    await dovecot.append(
      mail({
        from: 'carol@example.org',
        messageId: 'marker.carol@example.org',
        subject: 'Hi',
        body: 'Hello',
      }),
    );
    await smtp.waitFor('carol@example.org');

    const recipients = smtp.received.flatMap((m) => m.rcptTo);
    expect(recipients).not.toContain('bob@example.org');
    expect(recipients).not.toContain('mailer-daemon@mx.example.org');
    expect(recipients).not.toContain(OUR_ADDRESS);
    for (const id of [
      'vacation.bob@example.org',
      'bounce.1@mx.example.org',
      'copy.of.our.own@elsewhere.example',
    ]) {
      const inbound = await until(
        () =>
          rows<{ session_id: string }>('SELECT session_id FROM messages WHERE envelope_id = $1', [
            `email:${id}`,
          ]),
        (r) => r.length === 1,
      );
      const replies = await rows('SELECT 1 FROM messages WHERE session_id = $1 AND role = $2', [
        inbound[0]!.session_id,
        'assistant',
      ]);
      expect(replies, id).toHaveLength(0);
    }
    const reasons = await rows<{ message_id: string; no_reply: string }>(
      `SELECT message_id, no_reply FROM email_messages WHERE no_reply IS NOT NULL ORDER BY message_id`,
    );
    expect(reasons).toEqual([
      { message_id: 'bounce.1@mx.example.org', no_reply: 'bounce' },
      { message_id: 'copy.of.our.own@elsewhere.example', no_reply: 'own-message' },
      { message_id: 'vacation.bob@example.org', no_reply: 'auto-submitted' },
    ]);
    const flags = await dovecot.flagsByMessageId();
    expect(flags.get('<vacation.bob@example.org>')?.has('\\Seen')).toBe(true);
    expect(flags.get('<bounce.1@mx.example.org>')?.has('\\Seen')).toBe(true);
  });

  it('maps a numbered answer back to the offered choice (a second folder, served by another bot)', async () => {
    const dave = 'dave@example.org';
    await dovecot.append(
      mail({ from: dave, messageId: 'menu.1.dave@example.org', subject: 'Question', body: 'buttons' }),
      'Menu',
    );
    const [offer] = await smtp.waitFor(dave);
    expect(offer!.parsed.text).toContain('Which size?');
    expect(offer!.parsed.text).toContain('1. Small\n2. Medium\n3. Large');
    const ours = bare(offer!.parsed.messageId);
    await dovecot.append(
      mail({
        from: dave,
        messageId: 'menu.2.dave@example.org',
        subject: 'Re: Question',
        inReplyTo: ours,
        references: ['menu.1.dave@example.org', ours],
        body: `2\n\nSent from my iPhone\n\n> On 4 Mar 2025, at 10:15, Switchboard Support <${OUR_ADDRESS}> wrote:\n>\n> Which size?\n> 1. Small\n> 2. Medium\n> 3. Large\n`,
      }),
      'Menu',
    );
    const [, chosen] = await smtp.waitFor(dave, 2);
    expect(chosen!.parsed.text).toContain('menu got size:m');
    const [inbound] = await rows<{ content: string }>('SELECT content FROM messages WHERE envelope_id = $1', [
      'email:menu.2.dave@example.org',
    ]);
    expect(inbound!.content).toBe('size:m');
  });

  it('marks a reply the SMTP server rejects for good as failed at once, and retries a temporary refusal', async () => {
    let busyRefusals = 0;
    smtp.rcptPolicy = (address) => {
      if (address === 'gone@example.org') return { code: 550, message: '5.1.1 User unknown' };
      if (address === 'busy@example.org' && busyRefusals++ === 0)
        return { code: 451, message: '4.7.1 Greylisted, try again later' };
      return undefined;
    };
    try {
      await dovecot.append(
        mail({ from: 'gone@example.org', messageId: 'smtp.gone@example.org', subject: 'a', body: 'b' }),
      );
      await dovecot.append(
        mail({ from: 'busy@example.org', messageId: 'smtp.busy@example.org', subject: 'a', body: 'b' }),
      );
      const status = (envelope: string) =>
        rows<{ delivery_status: string; delivery_attempts: number; delivery_error: string | null }>(
          'SELECT delivery_status, delivery_attempts, delivery_error FROM messages WHERE in_reply_to = $1',
          [envelope],
        );
      const gone = await until(
        () => status('email:smtp.gone@example.org'),
        (r) => r.length === 2 && r.every((m) => m.delivery_status === 'failed'),
      );
      expect(gone.every((m) => m.delivery_attempts === 1 && /SMTP 550/.test(m.delivery_error ?? ''))).toBe(
        true,
      );
      await smtp.waitFor('busy@example.org');
      const busy = await until(
        () => status('email:smtp.busy@example.org'),
        (r) => r.length === 2 && r.every((m) => m.delivery_status === 'sent'),
      );
      expect(busy).toHaveLength(2);
      // Refused once, accepted on the retry.
      expect(busyRefusals).toBe(2);
    } finally {
      smtp.rcptPolicy = () => undefined;
    }
  });

  it(
    'fetches nothing twice and misses nothing when the adapter restarts mid-stream',
    async () => {
      const FIRST = 20;
      const LATER = 5;
      const people = Array.from({ length: FIRST + LATER }, (_, i) => `restart${i}@example.org`);
      const send = (i: number) =>
        dovecot.append(
          mail({
            from: people[i]!,
            messageId: `restart.${i}@example.org`,
            subject: `Batch ${i}`,
            body: `number ${i}`,
          }),
        );
      await stopHub();
      for (let i = 0; i < FIRST; i++) await send(i);
      await startHub();
      // Stop as soon as the first answers are out: the rest are somewhere between IMAP and SMTP.
      await until(
        async () => people.filter((p) => smtp.to(p).length > 0).length,
        (n) => n >= 2,
      );
      await stopHub();
      for (let i = FIRST; i < FIRST + LATER; i++) await send(i);
      await startHub();
      for (const p of people) await smtp.waitFor(p, 1, 60_000);
      await dovecot.append(
        mail({
          from: 'marker2@example.org',
          messageId: 'restart.marker@example.org',
          subject: 'x',
          body: 'y',
        }),
      );
      await smtp.waitFor('marker2@example.org');

      for (const p of people) expect(smtp.to(p), p).toHaveLength(1);
      const counts = await rows<{ envelope_id: string; n: number }>(
        `SELECT envelope_id, count(*)::int AS n FROM messages WHERE envelope_id LIKE 'email:restart.%' GROUP BY envelope_id`,
      );
      expect(counts).toHaveLength(FIRST + LATER + 1);
      expect(counts.every((c) => c.n === 1)).toBe(true);
    },
    RESTART_TEST_TIMEOUT_MS,
  );

  it(
    'reconnects after the IMAP server went away and handles the mail that arrived meanwhile',
    async () => {
      await dovecot.stop();
      // The mail server is a third party: the gateway stays ready (the widget, the API and the
      // other channels go on), and says the channel is disconnected, as the metric does.
      await waitEmail('disconnected');
      expect(await imapConnected()).toBe(0);
      await dovecot.deliver(
        mail({
          from: 'erin@example.org',
          messageId: 'down.1.erin@example.org',
          subject: 'Down?',
          body: 'Anyone there?',
        }),
      );
      await dovecot.deliver(
        mail({
          from: 'frank@example.org',
          messageId: 'down.2.frank@example.org',
          subject: 'Down?',
          body: 'Hello?',
        }),
      );
      await dovecot.start();
      await smtp.waitFor('erin@example.org', 1, 60_000);
      await smtp.waitFor('frank@example.org', 1, 60_000);
      await waitEmail('connected');
      expect(await imapConnected()).toBe(1);
    },
    RESTART_TEST_TIMEOUT_MS,
  );

  it(
    'resynchronises without duplicates when the server renumbers the folder (new UIDVALIDITY)',
    async () => {
      const [before] = await rows<{ uid_validity: string; last_uid: string }>(
        `SELECT uid_validity, last_uid FROM email_mailboxes WHERE mailbox LIKE '%/inbox'`,
      );
      const mailsBefore = smtp.received.length;
      await dovecot.stop();
      await waitEmail('disconnected');
      // A person marked an answered mail unread again, and deleted two others: after the
      // renumbering, UIDs no longer match anything stored and old mail looks new.
      const files = await dovecot.files();
      const answered = files.find((f) => /:2,[A-Z]*S$/.test(f))!;
      await fs.rename(answered, answered.replace(/:2,([A-Z]*)S$/, ':2,$1'));
      for (const f of files.filter((f) => f !== answered).slice(0, 2)) await fs.rm(f);
      await dovecot.renumber();
      await dovecot.deliver(
        mail({
          from: 'grace@example.org',
          messageId: 'renumbered.grace@example.org',
          subject: 'New',
          body: 'After',
        }),
      );
      await dovecot.start();
      await smtp.waitFor('grace@example.org', 1, 60_000);

      const [after] = await until(
        () =>
          rows<{ uid_validity: string; last_uid: string }>(
            `SELECT uid_validity, last_uid FROM email_mailboxes WHERE mailbox LIKE '%/inbox'`,
          ),
        (r) => r[0]?.uid_validity !== before!.uid_validity,
      );
      expect(Number(after!.last_uid)).toBeLessThan(Number(before!.last_uid));
      // Exactly one new mail went out: Grace's; the mail made unread again was not answered twice.
      expect(smtp.received.length).toBe(mailsBefore + 1);
      const dupes = await rows(
        `SELECT envelope_id FROM messages WHERE envelope_id LIKE 'email:%' GROUP BY envelope_id HAVING count(*) > 1`,
      );
      expect(dupes).toEqual([]);
      const flags = await dovecot.flagsByMessageId();
      expect([...flags.values()].every((f) => f.has('\\Seen'))).toBe(true);
    },
    RESTART_TEST_TIMEOUT_MS,
  );

  it('moves processed mail to the configured folder', async () => {
    await stopHub();
    await startHub({ EMAIL_PROCESSED_FOLDER: 'Processed' });
    await dovecot.append(
      mail({ from: 'heidi@example.org', messageId: 'moved.heidi@example.org', subject: 'Move', body: 'me' }),
    );
    await smtp.waitFor('heidi@example.org');
    const processed = await until(
      () => dovecot.flagsByMessageId('Processed'),
      (m) => m.has('<moved.heidi@example.org>'),
    );
    expect(processed.size).toBe(1);
    expect((await dovecot.flagsByMessageId()).has('<moved.heidi@example.org>')).toBe(false);
  });

  it(
    'runs from environment variables in the real server process',
    async () => {
      await stopHub();
      const server = new ServerProcess({
        PORT: '0',
        DATABASE_URL: database.url,
        CONFIG_DIR: FIXTURE_CONFIG,
        ...env(),
      });
      try {
        await server.start();
        await dovecot.append(
          mail({
            from: 'ivan@example.org',
            messageId: 'process.ivan@example.org',
            subject: 'Env',
            body: 'ping',
          }),
        );
        const [reply] = await smtp.waitFor('ivan@example.org', 1, 60_000);
        expect(reply!.parsed.text).toContain('echo ping #1');
        const ready = await until(
          async () => (await fetch(`${server.url}/readyz`)).status,
          (s) => s === 200,
        );
        expect(ready).toBe(200);
        expect(JSON.stringify(server.logLines())).not.toContain(dovecot.password);
      } finally {
        await server.stop();
      }
    },
    RESTART_TEST_TIMEOUT_MS,
  );
});
