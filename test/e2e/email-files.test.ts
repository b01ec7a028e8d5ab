import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/database.ts';
import type { DovecotServer } from '../helpers/dovecot.ts';
import { EXE_BYTES, PNG_1X1, pdfBytes } from '../helpers/files.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import {
  localEmailEnv,
  mailWith,
  startEmailHub,
  startMailServers,
  stopMailServers,
} from '../helpers/mail.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

/** The gallery bot answers each file it got with "Got <name> (<type>, <size> bytes)". */
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/files');
const OUR_ADDRESS = 'support@switchboard.test';
const MB = 1024 * 1024;

/**
 * Files by email through the real adapter (dovecot in, SMTP out): a file over the bot's limit, or
 * of a type it refuses, is refused with a reply in the thread and nothing of it is stored; the
 * rest of the mail is handled as usual.
 */
describe('email: attachments over the limits are refused, the person told', () => {
  let dovecot: DovecotServer;
  const smtp = new SmtpSink();
  let database: TestDatabase;
  let running: RunningHub | undefined;

  async function startHub(extra: Record<string, string> = {}): Promise<RunningHub> {
    running = await startEmailHub(
      { databaseUrl: database.url, configDir: CONFIG_DIR },
      { ...localEmailEnv(dovecot, smtp.port, 'INBOX=gallery', OUR_ADDRESS), ...extra },
    );
    return running;
  }

  const rows = async <T>(sql: string, params: unknown[] = []) =>
    (await running!.hub.db.query<T>(sql, params)).rows;
  const filesOf = (address: string) =>
    rows<{ name: string; size: number; session_id: string | null }>(
      `SELECT f.name, f.size::int AS size, f.session_id FROM files f JOIN sessions s ON s.id = f.session_id
       WHERE s.native_key LIKE $1 ORDER BY f.name`,
      [`${address}#%`],
    );

  beforeAll(async () => {
    ({ dovecot, database } = await startMailServers(smtp));
    await startHub();
  });
  afterAll(() => stopMailServers(running, smtp, { dovecot, database }));

  it('11 MB and a program named .png are refused in a reply in the thread; the text and the small file go on', async () => {
    const ana = 'ana@example.org';
    const chunksBefore = await rows<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks');
    await dovecot.append(
      mailWith(`Ana <${ana}>`, 'files.ana@example.org', 'It stopped working', [
        { name: 'scan.pdf', type: 'application/pdf', data: pdfBytes(11 * MB, 'mail') },
        { name: 'kettle.png', type: 'image/png', data: PNG_1X1 },
        { name: 'program.png', type: 'image/png', data: EXE_BYTES },
      ]),
    );
    const [reply] = await smtp.waitFor(ana, 1, 60_000);
    const parsed = reply!.parsed;
    expect(parsed.subject).toBe('Re: My kettle');
    expect((parsed.inReplyTo ?? '').replace(/^<|>$/g, '')).toBe('files.ana@example.org');
    const text = parsed.text ?? '';
    expect(text).toContain('"scan.pdf" (11 MB) is larger than 10 MB, the largest file this chat accepts');
    expect(text).toMatch(/"program\.png" is a file of type \S+, which this chat does not accept/);
    // The small file reached the bot (the gallery bot names each file it got); the rest did not.
    expect(text).toContain(`Got kettle.png (image/png, ${PNG_1X1.length} bytes)`);
    expect(text).not.toContain('Got scan.pdf');
    expect(text).not.toContain('Got program.png');

    // Only the small file is stored, in Ana's session; no bytes of the refused ones remain.
    const stored = await filesOf(ana);
    expect(stored.map((f) => [f.name, f.size])).toEqual([['kettle.png', PNG_1X1.length]]);
    const all = await rows<{ name: string }>('SELECT name FROM files ORDER BY name');
    expect(all.map((f) => f.name)).toEqual(['kettle.png']);
    const chunks = await rows<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks');
    expect(chunks[0]!.n).toBe(chunksBefore[0]!.n + 1);

    // The person's message is recorded with its text, the refused files listed, not kept.
    const [inbound] = await rows<{ content: string; refused: { name: string; reason: string }[] }>(
      `SELECT content, payload->'refusedAttachments' AS refused FROM messages WHERE envelope_id = $1`,
      ['email:files.ana@example.org'],
    );
    expect(inbound!.content).toBe('It stopped working');
    expect(inbound!.refused.map((r) => [r.name, r.reason])).toEqual([
      ['scan.pdf', 'too_large'],
      ['program.png', 'type_refused'],
    ]);
  });

  it('a file whose name is longer than an envelope holds is refused by that name cut; the mail is not lost', async () => {
    const bo = 'bo@example.org';
    // Longer than the envelope's MAX_ATTACHMENT_NAME (500), and than its refusal notice (1,000).
    const long = `${'a'.repeat(1_100)}.pdf`;
    await dovecot.append(
      mailWith(`Bo <${bo}>`, 'files.bo@example.org', 'Here is the scan', [
        { name: long, type: 'application/pdf', data: pdfBytes(11 * MB, 'long') },
      ]),
    );
    const [reply] = await smtp.waitFor(bo, 1, 60_000);
    expect(reply!.parsed.text ?? '').toContain(`"${'a'.repeat(500)}" (11 MB) is larger than 10 MB`);
    const [inbound] = await rows<{ content: string; refused: { name: string; reason: string }[] }>(
      `SELECT content, payload->'refusedAttachments' AS refused FROM messages WHERE envelope_id = $1`,
      ['email:files.bo@example.org'],
    );
    expect(inbound!.content).toBe('Here is the scan');
    expect(inbound!.refused.map((r) => [r.name.length, r.reason])).toEqual([[500, 'too_large']]);
  });

  it('EMAIL_MAX_ATTACHMENT_BYTES below the bot limit refuses at that size, with the same reply', async () => {
    await running!.stop();
    await startHub({ EMAIL_MAX_ATTACHMENT_BYTES: String(MB) });
    const ben = 'ben@example.org';
    await dovecot.append(
      mailWith(`Ben <${ben}>`, 'files.ben@example.org', 'The invoice', [
        { name: 'invoice.pdf', type: 'application/pdf', data: pdfBytes(2 * MB, 'ben') },
      ]),
    );
    const [reply] = await smtp.waitFor(ben, 1, 60_000);
    expect(reply!.parsed.text).toContain(
      '"invoice.pdf" (2 MB) is larger than 1 MB, the largest file this chat accepts',
    );
    // The turn is committed with its replies before the mail goes out: nothing was stored for Ben.
    expect(await filesOf(ben)).toEqual([]);
    expect(await rows('SELECT id FROM files WHERE name = $1', ['invoice.pdf'])).toEqual([]);
  });
});
