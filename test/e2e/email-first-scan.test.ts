import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEmailAdapter, loadEmailConfig } from '../../adapters/email/index.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import type { MailServers } from '../helpers/mail.ts';
import { localEmailEnv, mail, startMailServers, stopMailServers } from '../helpers/mail.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const OUR_ADDRESS = 'support@switchboard.test';
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Tests that stop and start dovecot wait for reconnects with backoff. */
const RESTART_TEST_TIMEOUT_MS = 120_000;

/**
 * A folder's first scan (no stored state) and its rescan after a new UIDVALIDITY meet mail that
 * has waited there for any time: the first-scan policy (EMAIL_FIRST_SCAN) picks what is answered.
 * Each case watches a folder of its own, so each starts without stored state.
 */
describe('email first scan: the backlog already in a folder', () => {
  const smtp = new SmtpSink();
  let servers: MailServers;
  let running: RunningHub | undefined;
  let logs = capturingLogger('info');

  async function startHub(folder: string, extra: Record<string, string> = {}): Promise<void> {
    logs = capturingLogger('info');
    const env = {
      ...localEmailEnv(servers.dovecot, smtp.port, `${folder}=default`, OUR_ADDRESS),
      ...extra,
    };
    running = await startTestHub(
      { databaseUrl: servers.database.url, configDir: FIXTURE_CONFIG },
      { adapters: [createEmailAdapter(loadEmailConfig(env))], logger: logs.logger },
    );
  }

  async function stopHub(): Promise<void> {
    await running?.stop();
    running = undefined;
  }

  const rows = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    (await running!.hub.db.query<T>(sql, params)).rows;

  /** The folder's stored state once its scan is over (saved after the last mail it handled). */
  const scanned = (folder: string, other?: string) =>
    until(
      () =>
        rows<{ uid_validity: string }>('SELECT uid_validity FROM email_mailboxes WHERE mailbox LIKE $1', [
          `%/${folder.toLowerCase()}`,
        ]),
      (r) => r.length === 1 && r[0]!.uid_validity !== other,
    );

  /** Which of these Message-IDs the hub read (it records every mail it handles). */
  const recorded = async (ids: string[]) =>
    (
      await rows<{ message_id: string }>(
        `SELECT message_id FROM email_messages WHERE direction = 'in' AND message_id = ANY($1) ORDER BY message_id`,
        [ids],
      )
    ).map((r) => r.message_id);

  const skippedLines = () => logs.lines.filter((l) => l.event === 'email.backlog_skipped');

  /** A mail from `from` that arrived in `folder` at `arrived`. */
  const waiting = (folder: string, from: string, id: string, arrived: Date, flags: string[] = []) =>
    servers.dovecot.append(
      mail({ from, messageId: id, subject: 'Waiting', body: `sent ${arrived.toISOString()}`, date: arrived }),
      folder,
      flags,
      arrived,
    );

  beforeAll(async () => {
    servers = await startMailServers(smtp, ['Recent', 'Unread', 'None', 'Moved']);
  });

  afterEach(async () => {
    await stopHub();
    // A case that failed midway may have left dovecot stopped.
    await servers.dovecot.start();
  });

  afterAll(async () => {
    await stopMailServers(running, smtp, servers ?? {});
  });

  it(
    'answers only the last 24 hours by default, leaves older mail untouched and counts it, and does the same after a new UIDVALIDITY',
    async () => {
      const now = Date.now();
      await waiting('Recent', 'old@example.org', 'old.recent@example.org', new Date(now - 10 * DAY_MS));
      // Within the day SINCE asks for (it compares dates only), outside the 24 hours by INTERNALDATE.
      await waiting(
        'Recent',
        'yesterday@example.org',
        'yesterday.recent@example.org',
        new Date(now - 30 * HOUR_MS),
      );
      await waiting('Recent', 'fresh@example.org', 'fresh.recent@example.org', new Date(now - HOUR_MS));
      await startHub('Recent');

      const [reply] = await smtp.waitFor('fresh@example.org');
      expect(reply!.parsed.text).toContain('echo sent');
      const [{ uid_validity: first }] = (await scanned('Recent')) as [{ uid_validity: string }];
      expect(await recorded(['old.recent@example.org', 'yesterday.recent@example.org'])).toEqual([]);
      expect(smtp.to('old@example.org')).toHaveLength(0);
      expect(smtp.to('yesterday@example.org')).toHaveLength(0);
      const skipped = skippedLines();
      expect(skipped).toHaveLength(1);
      expect(skipped[0]).toMatchObject({ mailbox: 'Recent', count: 2, policy: 'recent' });
      // Left as they were on the server: unread, so a person still sees them.
      let flags = await servers.dovecot.flagsByMessageId('Recent');
      expect(flags.get('<old.recent@example.org>')?.has('\\Seen')).toBe(false);
      expect(flags.get('<yesterday.recent@example.org>')?.has('\\Seen')).toBe(false);
      expect(flags.get('<fresh.recent@example.org>')?.has('\\Seen')).toBe(true);

      // The server renumbers the folder (a restore, a migration): the stored UID means nothing,
      // the old unread mail looks new again, and the same policy applies.
      await stopHub();
      await servers.dovecot.stop();
      await servers.dovecot.renumber('Recent');
      await servers.dovecot.deliver(
        mail({
          from: 'after@example.org',
          messageId: 'after.recent@example.org',
          subject: 'New',
          body: 'after',
        }),
        'Recent',
      );
      await servers.dovecot.start();
      await startHub('Recent');
      await smtp.waitFor('after@example.org', 1, 60_000);
      await scanned('Recent', first);
      expect(await recorded(['old.recent@example.org', 'yesterday.recent@example.org'])).toEqual([]);
      expect(smtp.to('old@example.org')).toHaveLength(0);
      expect(smtp.to('yesterday@example.org')).toHaveLength(0);
      expect(smtp.to('fresh@example.org')).toHaveLength(1);
      expect(skippedLines()).toEqual([expect.objectContaining({ count: 2, policy: 'recent' })]);
      flags = await servers.dovecot.flagsByMessageId('Recent');
      expect(flags.get('<old.recent@example.org>')?.has('\\Seen')).toBe(false);
    },
    RESTART_TEST_TIMEOUT_MS,
  );

  it('answers every unread mail, of any age, with EMAIL_FIRST_SCAN=unread', async () => {
    const now = Date.now();
    await waiting('Unread', 'old-unread@example.org', 'old.unread@example.org', new Date(now - 10 * DAY_MS));
    await waiting('Unread', 'fresh-unread@example.org', 'fresh.unread@example.org', new Date(now - HOUR_MS));
    await startHub('Unread', { EMAIL_FIRST_SCAN: 'unread' });
    await smtp.waitFor('old-unread@example.org');
    await smtp.waitFor('fresh-unread@example.org');
    await scanned('Unread');
    expect(skippedLines()).toEqual([]);
  });

  it('answers only mail arriving from then on with EMAIL_FIRST_SCAN=none', async () => {
    await waiting('None', 'before@example.org', 'before.none@example.org', new Date(Date.now() - 60_000));
    await startHub('None', { EMAIL_FIRST_SCAN: 'none' });
    await scanned('None');
    await servers.dovecot.append(
      mail({ from: 'later@example.org', messageId: 'later.none@example.org', subject: 'Hi', body: 'later' }),
      'None',
    );
    await smtp.waitFor('later@example.org');
    expect(await recorded(['before.none@example.org'])).toEqual([]);
    expect(smtp.to('before@example.org')).toHaveLength(0);
    expect(skippedLines()).toEqual([expect.objectContaining({ mailbox: 'None', count: 1, policy: 'none' })]);
    const flags = await servers.dovecot.flagsByMessageId('None');
    expect(flags.get('<before.none@example.org>')?.has('\\Seen')).toBe(false);
  });

  it('with EMAIL_PROCESSED_FOLDER (every mail in the folder is unprocessed, read or not) leaves old mail in place', async () => {
    const now = Date.now();
    await waiting('Moved', 'old-read@example.org', 'old.moved@example.org', new Date(now - 10 * DAY_MS), [
      '\\Seen',
    ]);
    await waiting('Moved', 'fresh-read@example.org', 'fresh.moved@example.org', new Date(now - HOUR_MS), [
      '\\Seen',
    ]);
    await startHub('Moved', { EMAIL_PROCESSED_FOLDER: 'Processed' });
    await smtp.waitFor('fresh-read@example.org');
    await scanned('Moved');
    expect(await recorded(['old.moved@example.org'])).toEqual([]);
    expect(smtp.to('old-read@example.org')).toHaveLength(0);
    expect([...(await servers.dovecot.flagsByMessageId('Moved')).keys()]).toEqual([
      '<old.moved@example.org>',
    ]);
    expect([...(await servers.dovecot.flagsByMessageId('Processed')).keys()]).toEqual([
      '<fresh.moved@example.org>',
    ]);
    expect(skippedLines()).toEqual([expect.objectContaining({ count: 1, policy: 'recent' })]);
  });
});
