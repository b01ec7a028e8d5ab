import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import { inboundFileFailures, REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';
import { LocalWebClient, personMedia } from '../helpers/whatsapp-web-client.ts';
import { startWhatsAppWebHub } from '../helpers/whatsapp-web-hub.ts';

const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/files-notice');
/** The bot's `sessions.fileUnavailableNotice` (test/fixtures/files-notice), with the file's name. */
const NOTICE = (name: string) => `Não consegui receber "${name}". Pode enviar de novo?`;

/**
 * WhatsApp Web never redelivers a message, and only the gateway holding the client can fetch its
 * file: a file store that fails (its database away) is tried again like a download, then the
 * person is told; a gateway stopped while a file waits for its retry hands the message on.
 */
describe('WhatsApp Web: the file store failing, and a stop during a retry', () => {
  let serial = 0;
  const chat = () => `55119${String(10_000_000 + ++serial * 7919).slice(0, 8)}@c.us`;

  describe('the file store fails', () => {
    const client = new LocalWebClient(true);
    const log = capturingLogger();
    let running: RunningHub;
    const delays = [20, 40, 60];

    beforeAll(async () => {
      running = await startWhatsAppWebHub(
        client,
        'gallery',
        { configDir: CONFIG_DIR, attachmentRetryDelaysMs: delays },
        { logger: log.logger },
      );
    });
    afterAll(async () => {
      await running?.stop();
    });

    it('on every try: the message goes on, the file refused as unavailable, the person told, logged and counted', async () => {
      const from = chat();
      const texts = () => client.sent.filter((s) => s.chatId === from && !s.media).map((s) => s.text);
      const gaveUpBefore = await inboundFileFailures(running, 'whatsapp', 'gave_up');
      // The store's table away: every write of the file fails in PostgreSQL, as with its database down.
      await running.hub.db.query('ALTER TABLE file_chunks RENAME TO file_chunks_away');
      let id: string;
      try {
        id = client.receiveMedia(
          from,
          personMedia(Buffer.concat([KETTLE, Buffer.from(`store-down-${from}`)]), 'image/png'),
          'image',
          'Taj Mahal',
        );
        await until(
          () => log.about('file.inbound_unavailable', `whatsapp:${id}`),
          (lines) => lines.length === 1,
        );
      } finally {
        await running.hub.db.query('ALTER TABLE file_chunks_away RENAME TO file_chunks');
      }
      await until(texts, (t) => t.includes('You said: Taj Mahal'));
      await settled(running.hub);
      expect(texts()).toContain(NOTICE('photo'));
      expect(log.about('file.inbound_store_retry', `whatsapp:${id}`).map((l) => l.retryInMs)).toEqual(delays);
      expect(log.about('file.inbound_unavailable', `whatsapp:${id}`)).toEqual([
        expect.objectContaining({ permanent: false, err: expect.stringContaining('the file store failed') }),
      ]);
      expect(await inboundFileFailures(running, 'whatsapp', 'gave_up')).toBe(gaveUpBefore + 1);
      const { rows } = await running.hub.db.query<{ payload: { refusedAttachments?: unknown[] } }>(
        `SELECT payload FROM messages WHERE envelope_id = $1 AND role = 'user'`,
        [`whatsapp:${id}`],
      );
      expect(rows[0]!.payload.refusedAttachments).toEqual([
        expect.objectContaining({ reason: 'unavailable', message: NOTICE('photo') }),
      ]);
    });
  });

  it('a gateway stopped while a file waits for its retry hands the message on (the file refused as unavailable) before it stops', async () => {
    const client = new LocalWebClient(true);
    const log = capturingLogger();
    const database = await createTestDatabase();
    try {
      const running = await startWhatsAppWebHub(
        client,
        'gallery',
        // A retry ten minutes away: only the stop can end the wait.
        { configDir: CONFIG_DIR, databaseUrl: database.url, attachmentRetryDelaysMs: [600_000] },
        { logger: log.logger },
      );
      const from = chat();
      const id = client.receiveMedia(
        from,
        personMedia(Buffer.concat([KETTLE, Buffer.from(`stopped-${from}`)]), 'image/png'),
        'image',
        'Taj Mahal',
        { fail: () => new Error('downloadMedia: net::ERR_CONNECTION_RESET') },
      );
      await until(
        () => log.about('file.inbound_fetch_retry', `whatsapp:${id}`),
        (lines) => lines.length === 1,
      );
      await running.stop();

      const db = new pg.Client({ connectionString: database.url });
      await db.connect();
      try {
        const { rows } = await db.query<{ envelope: { refusedAttachments?: unknown[] } }>(
          'SELECT envelope FROM inbox WHERE envelope_id = $1',
          [`whatsapp:${id}`],
        );
        expect(rows).toHaveLength(1);
        expect(rows[0]!.envelope.refusedAttachments).toEqual([
          expect.objectContaining({ reason: 'unavailable', message: NOTICE('photo') }),
        ]);
      } finally {
        await db.end();
      }
    } finally {
      await database.drop();
    }
  });
});
