import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inboundFileFailures, REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';
import { LocalWebClient, personMedia } from '../helpers/whatsapp-web-client.ts';
import { startWhatsAppWebHub } from '../helpers/whatsapp-web-hub.ts';

const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
/** The waits before the retries (ATTACHMENT_RETRY_DELAYS_MS), short for the test and told apart. */
const RETRY_DELAYS_MS = [20, 40, 60];
/** The bot's `sessions.fileUnavailableNotice` (test/fixtures/files-notice), with the file's name. */
const NOTICE = (name: string) => `Não consegui receber "${name}". Pode enviar de novo?`;

/**
 * A file a person sends over WhatsApp Web that the library fails to download: the adapter's
 * production code (`WebSession`) against the local whatsapp-web.js stand-in. The library never
 * redelivers a message, so the session itself tries the download again, after the same delays as
 * the queue's attachment retry; then the person is told in the bot's words.
 */
describe('WhatsApp Web: a download that fails', () => {
  let running: RunningHub;
  const client = new LocalWebClient(true);
  const log = capturingLogger();
  let serial = 0;

  beforeAll(async () => {
    running = await startWhatsAppWebHub(
      client,
      'gallery',
      {
        configDir: path.join(REPO_ROOT, 'test/fixtures/files-notice'),
        attachmentRetryDelaysMs: RETRY_DELAYS_MS,
      },
      { logger: log.logger },
    );
  });
  afterAll(async () => {
    await running?.stop();
  });

  const chat = () => `55118${String(10_000_000 + ++serial * 7919).slice(0, 8)}@c.us`;
  const texts = (chatId: string) =>
    client.sent.filter((s) => s.chatId === chatId && !s.media).map((s) => s.text);
  const attemptsOf = (id: string) => client.downloadAttempts.filter((d) => d === id).length;
  const envelopeIdOf = (id: string) => `whatsapp:${id}`;
  const logged = log.about;
  const failureCount = (outcome: string) => inboundFileFailures(running, 'whatsapp', outcome);

  it('fails twice (the page threw, then nothing handed over), then arrives: stored once, and the text sent after it is answered after it', async () => {
    const from = chat();
    const photo = Buffer.concat([KETTLE, Buffer.from(`wweb-flaky-${from}`)]);
    const id = client.receiveMedia(from, personMedia(photo, 'image/png'), 'image', '', {
      fail: (n) =>
        n === 1
          ? new Error('Protocol error (Runtime.callFunctionOn): Target closed')
          : n === 2
            ? null
            : undefined,
    });
    client.receive({ from, body: 'after the photo' });
    const got = `Got photo (image/png, ${photo.length} bytes)`;
    await until(
      () => texts(from),
      (t) => t.includes('You said: after the photo'),
    );
    await settled(running.hub);
    expect(texts(from)).toEqual(['Send me a file.', got, 'You said: after the photo']);
    expect(attemptsOf(id)).toBe(3);
    const retries = logged('file.inbound_fetch_retry', envelopeIdOf(id));
    expect(retries.map((l) => [l.failures, l.retryInMs])).toEqual([
      [1, 20],
      [2, 40],
    ]);
    expect(logged('file.inbound_unavailable', envelopeIdOf(id))).toEqual([]);
    const stored = await running.hub.db.query('SELECT 1 FROM files WHERE size = $1', [photo.length]);
    expect(stored.rows).toHaveLength(1);
  });

  it('always fails: tried 1 + ATTACHMENT_RETRY_ATTEMPTS times, then the person is told in the bot’s words, logged and counted', async () => {
    const from = chat();
    const retriesBefore = await failureCount('retry');
    const gaveUpBefore = await failureCount('gave_up');
    const id = client.receiveMedia(
      from,
      personMedia(Buffer.concat([KETTLE, Buffer.from(`wweb-down-${from}`)]), 'image/png'),
      'image',
      'Taj Mahal',
      { fail: () => new Error('downloadMedia: net::ERR_CONNECTION_RESET') },
    );
    await until(
      () => texts(from),
      (t) => t.includes('You said: Taj Mahal'),
    );
    await settled(running.hub);
    const retries = running.hub.config.attachmentRetryAttempts;
    expect(retries).toBe(3);
    expect(attemptsOf(id)).toBe(1 + retries);
    expect(texts(from).sort()).toEqual([NOTICE('photo'), 'Send me a file.', 'You said: Taj Mahal'].sort());
    expect(logged('file.inbound_fetch_retry', envelopeIdOf(id)).map((l) => l.retryInMs)).toEqual(
      RETRY_DELAYS_MS,
    );
    expect(logged('file.inbound_unavailable', envelopeIdOf(id))).toEqual([
      expect.objectContaining({
        permanent: false,
        channel: 'whatsapp',
        err: expect.stringContaining('RESET'),
      }),
    ]);
    expect(await failureCount('retry')).toBe(retriesBefore + retries);
    expect(await failureCount('gave_up')).toBe(gaveUpBefore + 1);
    // On the message: listed as refused, reason unavailable.
    const { rows } = await running.hub.db.query<{ payload: { refusedAttachments?: unknown[] } }>(
      `SELECT m.payload FROM messages m WHERE m.envelope_id = $1 AND m.role = 'user'`,
      [envelopeIdOf(id)],
    );
    expect(rows[0]!.payload.refusedAttachments).toEqual([
      expect.objectContaining({ reason: 'unavailable', message: NOTICE('photo') }),
    ]);
  });

  it('a failure that cannot pass (404) is told at once: one download, no retry', async () => {
    const from = chat();
    const permanentBefore = await failureCount('permanent');
    const id = client.receiveMedia(
      from,
      personMedia(Buffer.from('%PDF-1.4 gone'), 'application/pdf', 'scan.pdf'),
      'document',
      'Taj Mahal',
      { fail: () => Object.assign(new Error('media download failed: 404'), { status: 404 }) },
    );
    await until(
      () => texts(from),
      (t) => t.includes('You said: Taj Mahal'),
    );
    await settled(running.hub);
    expect(attemptsOf(id)).toBe(1);
    expect(texts(from)).toContain(NOTICE('scan.pdf'));
    expect(logged('file.inbound_fetch_retry', envelopeIdOf(id))).toEqual([]);
    expect(logged('file.inbound_unavailable', envelopeIdOf(id))).toEqual([
      expect.objectContaining({ permanent: true }),
    ]);
    expect(await failureCount('permanent')).toBe(permanentBefore + 1);
  });
});
