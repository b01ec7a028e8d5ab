import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { DovecotServer } from '../helpers/dovecot.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import { localEmailEnv, mail, passed, startEmailHub } from '../helpers/mail.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

/** Its bot takes 2 messages a minute per session (bot.json), so a burst of four mails is enough. */
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/email-limit');
const NOTICE = 'Too many mails at once: please wait a minute and send that again.';
const OUR_ADDRESS = 'support@switchboard.test';

describe('the rate limit through the real email adapter (dovecot in, SMTP out)', () => {
  let dovecot: DovecotServer;
  const smtp = new SmtpSink();
  let database: TestDatabase;
  let running: RunningHub;

  beforeAll(async () => {
    dovecot = await DovecotServer.create();
    await dovecot.start();
    await smtp.start();
    database = await createTestDatabase();
    running = await startEmailHub(
      { databaseUrl: database.url, configDir: CONFIG_DIR },
      localEmailEnv(dovecot, smtp.port, 'INBOX=default', OUR_ADDRESS),
    );
  });
  afterAll(async () => {
    await running?.stop();
    await smtp.stop();
    await dovecot?.cleanup();
    await database?.drop();
  });

  it('a burst of mails in one thread: two answered, the rest recorded as refused, and exactly one notice mail', async () => {
    const bob = 'bob@example.org';
    const first = 'burst-1.bob@example.org';
    for (let i = 1; i <= 4; i++) {
      await dovecot.append(
        mail({
          authResults: [passed('example.org')],
          from: `Bob <${bob}>`,
          messageId: `burst-${i}.bob@example.org`,
          subject: i === 1 ? 'Order 1234' : 'Re: Order 1234',
          ...(i === 1 ? {} : { inReplyTo: first, references: [first] }),
          body: `mail ${i}`,
        }),
      );
    }
    const q = async <T>(sql: string) => (await running.hub.db.query<T>(sql, [`${bob}#%`])).rows;
    // All four are recorded in the one session; the last two as refused.
    const inbound = await until(
      () =>
        q<{ content: string; refused: string | null }>(
          `SELECT m.content, m.payload->>'refused' AS refused FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.channel = 'email' AND s.native_key LIKE $1 AND m.role = 'user' ORDER BY m.seq`,
        ),
      (rows) => rows.length === 4,
    );
    expect(inbound.map((r) => [r.content, r.refused])).toEqual([
      ['mail 1', null],
      ['mail 2', null],
      ['mail 3', 'rate_limited'],
      ['mail 4', 'rate_limited'],
    ]);
    // A turn commits its inbound row and its replies together: all replies exist now. The signal
    // that nothing more is on its way: every one has been handed to the SMTP server (sent).
    const replies = await until(
      () =>
        q<{ content: string; status: string; notice: string | null }>(
          `SELECT m.content, m.delivery_status AS status, m.payload->>'notice' AS notice
           FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.channel = 'email' AND s.native_key LIKE $1 AND m.role = 'assistant' ORDER BY m.seq`,
        ),
      (rows) => rows.every((r) => r.status === 'sent'),
    );
    expect(replies.map((r) => [r.content, r.notice])).toEqual([
      ['welcome', null],
      ['echo mail 1 #1', null],
      ['echo mail 2 #2', null],
      [NOTICE, 'true'],
    ]);
    const mails = smtp.to(bob);
    const notices = mails.filter((m) => m.parsed.text?.includes(NOTICE));
    expect(notices).toHaveLength(1);
    expect(notices[0]!.parsed.subject).toBe('Re: Order 1234');
    // Two answers (the greeting travels with the first) and the one notice.
    expect(mails).toHaveLength(3);
  });
});
