import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createAdapterStore } from '../../src/channels/host-services.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate, readMigrations } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

const EMAIL_MIGRATIONS = path.join(REPO_ROOT, 'adapters/email/migrations');
// Attachments are in the file store since email/0055: email_attachments is gone.
const EMAIL_TABLES = ['email_failures', 'email_mailboxes', 'email_messages'];

describe('channel storage: own migrations, own keyed store', () => {
  const opened: { db: Db; database: TestDatabase }[] = [];
  const open = async () => {
    const database = await createTestDatabase();
    const db = openPostgres({ url: database.url, poolSize: 2, logger: silentLogger });
    opened.push({ db, database });
    return db;
  };
  const versions = async (db: Db) =>
    (await db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version')).rows.map(
      (r) => r.version,
    );
  const tables = async (db: Db) =>
    (
      await db.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name LIKE 'email\\_%' ORDER BY table_name`,
      )
    ).rows.map((r) => r.table_name);

  afterEach(async () => {
    for (const { db, database } of opened.splice(0)) {
      await db.close();
      await database.drop();
    }
  });

  it('a new database gets the email tables from the email adapter’s own migrations', async () => {
    const db = await open();
    const applied = await migrate(db);
    expect(applied).toContain('email/0001_email');
    expect(applied).toContain('email/0002_email_failures');
    expect(applied).not.toContain('0006_email');
    // Core first, then the channel's own.
    expect(applied.indexOf('email/0001_email')).toBeGreaterThan(applied.indexOf('0001_init'));
    expect(await tables(db)).toEqual(EMAIL_TABLES);
    expect(await migrate(db)).toEqual([]);
  });

  it('a database that applied the old core email migrations upgrades in place: they are adopted, not re-run', async () => {
    const db = await open();
    // The database as the core migrations left it before the move: the same SQL, under the core's names.
    await db.exec(
      'CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const core = await readMigrations();
    const email = await readMigrations(EMAIL_MIGRATIONS);
    const old = [
      ...core.filter((m) => m.version < '0006'),
      { version: '0006_email', sql: email[0]!.sql },
      ...core.filter((m) => m.version > '0006' && m.version < '0011'),
      { version: '0011_email_failures', sql: email[1]!.sql },
      // Before the keyed store existed (and so before what changed it since).
      ...core.filter((m) => m.version >= '0011' && !m.version.includes('_channel_values')),
    ];
    for (const m of old) {
      await db.exec(m.sql);
      await db.query('INSERT INTO schema_migrations (version) VALUES ($1)', [m.version]);
    }
    await db.query(
      `INSERT INTO email_messages (message_id, direction, thread) VALUES ('kept@example.org', 'in', 'kept@example.org')`,
    );
    await db.query(
      `INSERT INTO email_mailboxes (mailbox, uid_validity, last_uid) VALUES ('support/INBOX', 7, 42)`,
    );

    const applied = await migrate(db);
    expect(applied).toEqual([
      '0027_channel_values',
      '0125_channel_values_lifecycle',
      'email/0001_email',
      'email/0002_email_failures',
      'email/0055_attachments_in_file_store',
      'email/0150_email_fetch_failures',
    ]);
    // The recorded core rows stay; the mail and the mailbox position are still there.
    expect(await versions(db)).toEqual(expect.arrayContaining(['0006_email', '0011_email_failures']));
    expect(await tables(db)).toEqual(EMAIL_TABLES);
    const { rows } = await db.query<{ last_uid: string }>('SELECT last_uid FROM email_mailboxes');
    expect(rows.map((r) => Number(r.last_uid))).toEqual([42]);
    expect((await db.query('SELECT 1 FROM email_messages')).rows).toHaveLength(1);
    expect(await migrate(db)).toEqual([]);
  });

  it('email/0055 moves attachment bytes into the file store under the same ids, stored once, and drops the table', async () => {
    const db = await open();
    await migrate(db);
    const email = await readMigrations(EMAIL_MIGRATIONS);
    const moving = email.find((m) => m.version === '0055_attachments_in_file_store')!;
    // The table as email/0001 made it, with rows of two mails of one session (one content twice)
    // and of a mail that became no session's message.
    await db.exec(email[0]!.sql.slice(email[0]!.sql.indexOf('CREATE TABLE email_attachments')));
    const session = '5e55a0e5-0000-4000-8000-000000000001';
    await db.query(
      `INSERT INTO sessions (id, bot, channel, native_key) VALUES ($1, 'default', 'email', 'a@example.org#t')`,
      [session],
    );
    const big = Buffer.alloc(600_000, 7);
    big.write('%PDF-1.4');
    const ids = [
      'a0000000-0000-4000-8000-000000000001',
      'a0000000-0000-4000-8000-000000000002',
      'a0000000-0000-4000-8000-000000000003',
    ];
    for (const [n, mail] of [1, 2, 3].entries()) {
      await db.query(
        `INSERT INTO email_messages (message_id, direction, thread, envelope_id) VALUES ($1, 'in', 't', $2)`,
        [`m${mail}@example.org`, `email:m${mail}`],
      );
      if (mail < 3)
        await db.query(
          `INSERT INTO messages (session_id, seq, role, content, envelope_id, delivery_status) VALUES ($1, $2, 'user', 'see attached', $3, 'received')`,
          [session, n + 1, `email:m${mail}`],
        );
      await db.query(
        `INSERT INTO email_attachments (id, message_id, filename, content_type, size, content) VALUES ($1, $2, 'scan.pdf', 'application/pdf', $3, $4)`,
        [ids[n], `m${mail}@example.org`, big.length, big],
      );
    }
    await db.exec(moving.sql);

    expect(await tables(db)).toEqual(EMAIL_TABLES);
    const files = (
      await db.query<{ id: string; session_id: string; name: string; size: string }>(
        'SELECT id, session_id, name, size FROM files ORDER BY id',
      )
    ).rows;
    expect(files.map((f) => [f.id, f.session_id, f.name, Number(f.size)])).toEqual([
      [ids[0], session, 'scan.pdf', big.length],
      [ids[1], session, 'scan.pdf', big.length],
    ]);
    // One content, three chunks of at most 256 KiB, whose bytes are the attachment's.
    const { rows: chunks } = await db.query<{ data: Uint8Array }>(
      'SELECT data FROM file_chunks ORDER BY seq',
    );
    expect(chunks.map((c) => c.data.length)).toEqual([262144, 262144, 600_000 - 2 * 262144]);
    expect(Buffer.concat(chunks.map((c) => Buffer.from(c.data))).equals(big)).toBe(true);
    const { readEmailAttachment } = await import('../../adapters/email/store.ts');
    const read = await readEmailAttachment(db, `email-attachment:${ids[1]}`);
    expect(read?.content.equals(big)).toBe(true);
    expect(read?.filename).toBe('scan.pdf');
    // Erasing the session takes the files, and the bytes with the last of them.
    await db.query('DELETE FROM sessions WHERE id = $1', [session]);
    expect((await db.query('SELECT 1 FROM file_chunks')).rows).toEqual([]);
  });

  it('every moved core migration is gone from the core folder and never reused', async () => {
    const files = await fs.readdir(path.join(REPO_ROOT, 'src/store/migrations'));
    expect(files.filter((f) => f.startsWith('0006_') || f === '0011_email_failures.sql')).toEqual([]);
  });

  it('an adapter’s keyed store keeps JSON values under its own keys, apart from other channels’', async () => {
    const db = await open();
    await migrate(db);
    const telegram = createAdapterStore(db, 'telegram');
    const slack = createAdapterStore(db, 'slack');
    expect(await telegram.get('webhook')).toBeUndefined();
    await telegram.set('webhook', { url: 'https://bots.example.com/webhooks/telegram', at: 1 });
    await slack.set('webhook', 'other');
    expect(await telegram.get('webhook')).toEqual({
      url: 'https://bots.example.com/webhooks/telegram',
      at: 1,
    });
    await telegram.set('webhook', { at: 2 });
    expect(await telegram.get('webhook')).toEqual({ at: 2 });
    await telegram.delete('webhook');
    expect(await telegram.get('webhook')).toBeUndefined();
    expect(await slack.get('webhook')).toBe('other');
  });
});
