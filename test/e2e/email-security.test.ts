import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/files/store.ts';
import type { TestDatabase } from '../helpers/database.ts';
import type { DovecotServer } from '../helpers/dovecot.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import {
  localEmailEnv,
  mail,
  passed,
  startEmailHub,
  startMailServers,
  stopMailServers,
  TRUSTED_AUTHSERV_ID,
} from '../helpers/mail.ts';
import { type ReceivedMail, SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const OUR_ADDRESS = 'support@switchboard.test';
const VICTIM = 'victoria@bank.example';
const ATTACKER = 'mallory@elsewhere.example';

/** A mail with an attachment named `refused.bin` (what the tests' database trigger refuses). */
function withRefusedAttachment(from: string, messageId: string): string {
  return [
    `From: ${from}`,
    `To: ${OUR_ADDRESS}`,
    'Subject: Attached',
    `Message-ID: <${messageId}>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'see attached',
    '--b1',
    'Content-Type: text/plain',
    'Content-Disposition: attachment; filename="refused.bin"',
    'Content-Transfer-Encoding: base64',
    '',
    // "attached notes": text, a type every bot accepts, so it reaches the file store.
    'YXR0YWNoZWQgbm90ZXM=',
    '--b1--',
    '',
  ].join('\r\n');
}

const bare = (id: string | undefined) => (id ?? '').replace(/^<|>$/g, '');
const texts = (mails: ReceivedMail[]) => mails.map((m) => m.parsed.text ?? '');

/**
 * The email channel's trust boundary, with real mail in a real IMAP server (dovecot) and answers
 * caught by a real SMTP server: who a mail is from (Authentication-Results of the receiving
 * server, issue 16 item 1), and mail that would stop the mailbox (item 2).
 */
describe('email: who a mail is from, and mail that cannot be handled', () => {
  let dovecot: DovecotServer;
  const smtp = new SmtpSink();
  let database: TestDatabase;
  let running: RunningHub | undefined;

  async function startHub(extra: Record<string, string> = {}): Promise<void> {
    running = await startEmailHub(
      { databaseUrl: database.url, configDir: FIXTURE_CONFIG },
      { ...localEmailEnv(dovecot, smtp.port, 'INBOX=default,Memo=memo', OUR_ADDRESS), ...extra },
    );
  }

  const rows = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    (await running!.hub.db.query<T>(sql, params)).rows;

  const sessionOf = (envelopeId: string) =>
    until(
      () =>
        rows<{
          native_key: string;
          user_id: string | null;
          auth_level: string;
          meta: Record<string, unknown>;
        }>(
          `SELECT s.native_key, s.user_id, s.auth_level, s.meta FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE m.envelope_id = $1`,
          [envelopeId],
        ),
      (r) => r.length === 1,
    ).then((r) => r[0]!);

  beforeAll(async () => {
    ({ dovecot, database } = await startMailServers(smtp, ['Memo']));
    await startHub();
  });

  afterAll(() => stopMailServers(running, smtp, { dovecot, database }));

  it('a forged From of a known person gets a session of its own: no user, no USER MEMORY, answered to From, never to Reply-To', async () => {
    // Victoria, verified by the receiving server, tells the bot her name (kept in USER MEMORY).
    await dovecot.append(
      mail({
        authResults: [passed('bank.example')],
        from: `Victoria <${VICTIM}>`,
        messageId: 'name.victoria@bank.example',
        subject: 'Hello',
        body: 'call me Victoria',
      }),
      'Memo',
    );
    const [own] = await smtp.waitFor(VICTIM);
    expect(own!.parsed.text).toContain('hello Victoria');
    const real = await sessionOf('email:name.victoria@bank.example');
    expect(real.native_key).toBe(`${VICTIM}#name.victoria@bank.example`);
    expect(real.user_id).toBeTruthy();

    // Mallory writes as Victoria, into her thread, asking for answers at his own address. The
    // receiving server found DMARC failing (topmost header); the "pass" below it is Mallory's own.
    await dovecot.append(
      mail({
        authResults: [
          `${TRUSTED_AUTHSERV_ID}; spf=fail smtp.mailfrom=elsewhere.example; dkim=none; dmarc=fail (p=none) header.from=bank.example`,
        ],
        from: `Victoria <${VICTIM}>`,
        messageId: 'forged.1@elsewhere.example',
        subject: 'Re: Hello',
        inReplyTo: bare(own!.parsed.messageId),
        references: ['name.victoria@bank.example', bare(own!.parsed.messageId)],
        headers: {
          'Reply-To': ATTACKER,
          'Authentication-Results': `${TRUSTED_AUTHSERV_ID}; dkim=pass header.d=bank.example; dmarc=pass header.from=bank.example`,
        },
        body: 'what is my name?',
      }),
      'Memo',
    );
    const [, forgedAnswer] = await smtp.waitFor(VICTIM, 2);
    // The answer went to the From address, and it knows nobody.
    expect(forgedAnswer!.rcptTo).toEqual([VICTIM]);
    expect(forgedAnswer!.parsed.text).toContain('hello stranger');
    expect(forgedAnswer!.parsed.text).toContain('auth anonymous, user none');
    expect(forgedAnswer!.parsed.text).not.toContain('Victoria');
    expect(smtp.to(ATTACKER)).toHaveLength(0);

    const forged = await sessionOf('email:forged.1@elsewhere.example');
    expect(forged.native_key).toBe(`unverified:${VICTIM}#name.victoria@bank.example`);
    expect(forged.user_id).toBeNull();
    expect(forged.auth_level).toBe('anonymous');
    expect(await rows('SELECT 1 FROM user_identities WHERE native_id LIKE $1', ['unverified:%'])).toEqual([]);
    const [inbound] = await rows<{ meta: Record<string, unknown> }>(
      `SELECT meta FROM sessions WHERE native_key = $1`,
      [forged.native_key],
    );
    expect(inbound!.meta).toMatchObject({
      senderVerified: false,
      replyToIgnored: { address: ATTACKER, reason: 'unverified sender' },
    });

    // Victoria's own session and memory are untouched: she is still known by name.
    await dovecot.append(
      mail({
        authResults: [passed('bank.example')],
        from: VICTIM,
        messageId: 'again.victoria@bank.example',
        subject: 'Again',
        body: 'hi',
      }),
      'Memo',
    );
    const [, , again] = await smtp.waitFor(VICTIM, 3);
    expect(again!.parsed.text).toContain('hello Victoria');
    expect(again!.parsed.text).toContain('user known');
  });

  it('trusts only the configured server: mail without its results, or with another server’s, is unverified', async () => {
    const cases = [
      { id: 'none.1@bank.example', authResults: [] },
      // A real pass, but written by a server the hub does not trust.
      { id: 'other.1@bank.example', authResults: [passed('bank.example', 'mx.google.com')] },
      // DKIM passes, for a domain of another organisation (a mailing service's own).
      {
        id: 'foreign.1@bank.example',
        authResults: [
          `${TRUSTED_AUTHSERV_ID}; dkim=pass header.d=mailer.example.net; dmarc=none header.from=bank.example`,
        ],
      },
    ];
    for (const c of cases)
      await dovecot.append(
        mail({
          authResults: c.authResults,
          from: VICTIM,
          messageId: c.id,
          subject: 'Who?',
          body: 'who am I',
        }),
        'Memo',
      );
    for (const c of cases) {
      const session = await sessionOf(`email:${c.id}`);
      expect(session.native_key, c.id).toBe(`unverified:${VICTIM}#${c.id}`);
      expect(session.user_id, c.id).toBeNull();
    }
    const answers = await smtp.waitFor(VICTIM, 3 + cases.length);
    for (const text of texts(answers.slice(3))) expect(text).toContain('hello stranger');
  });

  it('verifies DKIM aligned within the organisation, and honours Reply-To only inside it', async () => {
    // Signed by a subdomain of the From domain (relaxed alignment), no DMARC result; Reply-To
    // names a colleague in the same organisation: answered there.
    await dovecot.append(
      mail({
        authResults: [`${TRUSTED_AUTHSERV_ID}; dkim=pass header.d=mail.bank.example header.s=s1`],
        from: VICTIM,
        messageId: 'dkim.1@bank.example',
        subject: 'Desk',
        headers: { 'Reply-To': 'Desk <desk@support.bank.example>' },
        body: 'please answer the desk',
      }),
      'Memo',
    );
    const [toDesk] = await smtp.waitFor('desk@support.bank.example');
    expect(toDesk!.parsed.text).toContain('hello Victoria');
    const verified = await sessionOf('email:dkim.1@bank.example');
    expect(verified.native_key).toBe(`${VICTIM}#dkim.1@bank.example`);
    expect(verified.user_id).toBeTruthy();

    // Verified, but Reply-To points outside the organisation: ignored, answered to From.
    const before = smtp.to(VICTIM).length;
    await dovecot.append(
      mail({
        authResults: [passed('bank.example')],
        from: VICTIM,
        messageId: 'outside.1@bank.example',
        subject: 'Outside',
        headers: { 'Reply-To': ATTACKER },
        body: 'x',
      }),
      'Memo',
    );
    await smtp.waitFor(VICTIM, before + 1);
    expect(smtp.to(ATTACKER)).toHaveLength(0);
    expect((await sessionOf('email:outside.1@bank.example')).meta).toMatchObject({
      senderVerified: true,
      replyToIgnored: { address: ATTACKER, reason: 'another organisational domain' },
    });
  });

  it('a NUL byte (=00 in quoted-printable) no longer stops the mailbox: that mail and the two after it are answered', async () => {
    await dovecot.append(
      mail({
        from: 'nul@example.org',
        messageId: 'nul.1@example.org',
        subject: 'Poison',
        encoding: 'quoted-printable',
        body: 'before=00after',
      }),
    );
    for (const n of [1, 2])
      await dovecot.append(
        mail({
          from: `after${n}@example.org`,
          messageId: `after.${n}@example.org`,
          subject: 'Next',
          body: `next ${n}`,
        }),
      );
    const [poison] = await smtp.waitFor('nul@example.org');
    expect(poison!.parsed.text).toContain('echo before\uFFFDafter #1');
    expect((await smtp.waitFor('after1@example.org'))[0]!.parsed.text).toContain('echo next 1 #1');
    expect((await smtp.waitFor('after2@example.org'))[0]!.parsed.text).toContain('echo next 2 #1');
  });

  it('sets a mail that keeps failing aside after EMAIL_MAX_FAILURES tries: flagged, moved, recorded; the two after it are answered', async () => {
    await running!.stop();
    running = undefined;
    await startHub({ EMAIL_UNUSABLE_FOLDER: 'Unusable' });
    // Stands for any fault a mail can still trip: the file store refuses this mail's attachment.
    await running!.hub.db.exec(`
      CREATE FUNCTION sbt_refuse_attachment() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.name = 'refused.bin' THEN RAISE EXCEPTION 'refused by the test'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER sbt_refuse_attachment BEFORE INSERT ON files
        FOR EACH ROW EXECUTE FUNCTION sbt_refuse_attachment();`);
    try {
      await dovecot.append(withRefusedAttachment('stuck@example.org', 'stuck.1@example.org'));
      for (const n of [1, 2])
        await dovecot.append(
          mail({
            from: `later${n}@example.org`,
            messageId: `later.${n}@example.org`,
            subject: 'Later',
            body: `later ${n}`,
          }),
        );
      await smtp.waitFor('later1@example.org', 1, 60_000);
      await smtp.waitFor('later2@example.org', 1, 60_000);
      expect(smtp.to('stuck@example.org')).toHaveLength(0);

      const [record] = await rows<{ failures: number; reason: string; moved_to: string; message_id: string }>(
        'SELECT failures, reason, moved_to, message_id FROM email_failures WHERE set_aside_at IS NOT NULL',
      );
      expect(record).toMatchObject({ failures: 3, moved_to: 'Unusable', message_id: 'stuck.1@example.org' });
      expect(record!.reason).toMatch(/^failed 3 times: .*refused by the test/);
      const aside = await until(
        () => dovecot.flagsByMessageId('Unusable'),
        (m) => m.has('<stuck.1@example.org>'),
      );
      expect(aside.get('<stuck.1@example.org>')?.has('\\Flagged')).toBe(true);
      expect((await dovecot.flagsByMessageId()).has('<stuck.1@example.org>')).toBe(false);
    } finally {
      await running!.hub.db.exec(
        'DROP TRIGGER sbt_refuse_attachment ON files; DROP FUNCTION sbt_refuse_attachment()',
      );
    }
  });

  it('never sets a mail aside for the database being away: it is retried, and answered once the database is back', async () => {
    await running!.stop();
    running = undefined;
    await startHub({ EMAIL_MAX_FAILURES: '2' });
    // The database answers this mail's writes with 57P03 ("cannot connect now"), as a restarting
    // server does; a sequence (outside every transaction) counts the attempts.
    await running!.hub.db.exec(`
      CREATE SEQUENCE sbt_attempts;
      CREATE FUNCTION sbt_away() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.name = 'refused.bin' THEN
          PERFORM nextval('sbt_attempts');
          RAISE EXCEPTION 'the database system is starting up' USING ERRCODE = '57P03';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER sbt_away BEFORE INSERT ON files FOR EACH ROW EXECUTE FUNCTION sbt_away();`);
    const failuresRecorded = () => rows('SELECT mailbox, uid, failures FROM email_failures ORDER BY uid');
    const before = await failuresRecorded();
    let away = true;
    try {
      await dovecot.append(withRefusedAttachment('patient@example.org', 'patient.1@example.org'));
      // Retried with backoff, on its own (no new mail arrives), more often than EMAIL_MAX_FAILURES.
      await until(
        () => rows<{ n: string }>('SELECT last_value AS n FROM sbt_attempts WHERE is_called'),
        (r) => Number(r[0]?.n ?? 0) >= 4,
      );
      expect(await failuresRecorded()).toEqual(before);
      await running!.hub.db.exec('DROP TRIGGER sbt_away ON files');
      away = false;
      const [answer] = await smtp.waitFor('patient@example.org', 1, 60_000);
      expect(answer!.parsed.text).toContain('echo see attached #1');
      expect(await failuresRecorded()).toEqual(before);
      // The attachment is in the file store, once, in the mail's session: the only copy there is.
      const kept = await rows<{ id: string; session_id: string | null }>(
        "SELECT id, session_id FROM files WHERE name = 'refused.bin'",
      );
      expect(kept).toHaveLength(1);
      expect(kept[0]!.session_id).not.toBeNull();
      const store = new FileStore(running!.hub.db);
      expect((await store.bytes((await store.get(kept[0]!.id))!)).toString()).toBe('attached notes');
    } finally {
      if (away) await running!.hub.db.exec('DROP TRIGGER sbt_away ON files');
      await running!.hub.db.exec('DROP FUNCTION sbt_away(); DROP SEQUENCE sbt_attempts');
    }
  }, 120_000);
});
