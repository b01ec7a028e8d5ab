import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { pdfBytes } from '../helpers/files.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { inboundFileFailures, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';
import { cloudMessage, postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

const APP_SECRET = 'test-app-secret';
const ACCESS_TOKEN = 'EAAJB-files-token';
const NUMBER = '106540352242922';
const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
const MB = 1024 * 1024;
/** The waits before the attachment retries (ATTACHMENT_RETRY_DELAYS_MS), short for the test and told apart. */
const RETRY_DELAYS_MS = [30, 60, 90];
const UNAVAILABLE = '"photo" could not be fetched from the chat service; please send it again';

/** Files and cards over the WhatsApp Cloud API, against a local Graph API (media ids, downloads, uploads). */
describe('WhatsApp Cloud: files and cards', () => {
  let graph: GraphApi;
  let running: RunningHub;
  let serial = 0;
  const log = capturingLogger();

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    const adapter = whatsAppCloudAdapter({
      graphUrl: graph.url,
      numbers: `${NUMBER}:gallery`,
      accessToken: ACCESS_TOKEN,
      appSecret: APP_SECRET,
    });
    running = await startTestHub(
      { configDir: path.join(REPO_ROOT, 'test/fixtures/files'), attachmentRetryDelaysMs: RETRY_DELAYS_MS },
      { adapters: [adapter], logger: log.logger },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await graph?.close();
  });

  const person = () => `1650777${String(1000 + ++serial).padStart(4, '0')}`;
  const post = (payload: unknown) => postWhatsAppWebhook(running.url, payload, APP_SECRET);
  const sentTo = (waId: string) => graph.to(waId).map((r) => r.body);
  const texts = (waId: string) => sentTo(waId).flatMap((b) => (b.type === 'text' ? [b.text.body] : []));
  const query = async <T>(sql: string, params: unknown[] = []) =>
    (await running.hub.db.query(sql, params)).rows as T[];

  it('downloads a photo by media id with the token and stores it once, however often it is sent', async () => {
    const from = person();
    const photo = Buffer.concat([KETTLE, Buffer.from(from)]);
    graph.addMedia('900000000001', photo, 'image/jpeg');
    const photoMessage = (n: number) =>
      cloudMessage(doc.imageMessage, from, n, (m) => {
        m.image.id = '900000000001';
      });
    expect((await post(photoMessage(1))).status).toBe(200);
    const got = `Got photo (image/png, ${photo.length} bytes)`;
    await until(
      () => texts(from),
      (t) => t.includes(got),
    );
    expect((await post(photoMessage(2))).status).toBe(200);
    await until(
      () => texts(from),
      (t) => t.filter((x) => x === got).length === 2,
    );
    expect(graph.downloads.filter((id) => id === '900000000001')).toHaveLength(2);
    const rows = await query<{ sha256: string; session_id: string | null }>(
      "SELECT sha256, session_id FROM files WHERE name = 'photo' AND size = $1",
      [photo.length],
    );
    expect(rows).toHaveLength(2);
    expect(rows.every((r) => r.session_id !== null)).toBe(true);
    expect(new Set(rows.map((r) => r.sha256)).size).toBe(1);
    expect(await query('SELECT 1 FROM file_blobs WHERE sha256 = $1', [rows[0]!.sha256])).toHaveLength(1);
  });

  it('acknowledges the webhook before the media is downloaded; the worker downloads it before the turn', async () => {
    const from = person();
    const photo = Buffer.concat([KETTLE, Buffer.from(`held-${from}`)]);
    graph.addMedia('900000000003', photo, 'image/png');
    const release = graph.hold('900000000003');
    const webhook = cloudMessage(doc.imageMessage, from, 1, (m) => {
      m.image.id = '900000000003';
    });
    // The answer comes while the platform still holds the bytes back.
    const res = await post(webhook);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accepted: 1 });
    expect(graph.downloads).not.toContain('900000000003');
    expect(texts(from)).toEqual([]);
    // The worker is the one waiting for them.
    await until(
      () => graph.waiting,
      (w) => w.includes('900000000003'),
    );
    release();
    await until(
      () => texts(from),
      (t) => t.includes(`Got photo (image/png, ${photo.length} bytes)`),
    );
    expect(graph.downloads.filter((id) => id === '900000000003')).toHaveLength(1);
  });

  /** The person's session rows by role, and what the log says of their envelopes. */
  const rowsOf = (from: string) =>
    query<{ role: string; envelope_id: string | null }>(
      `SELECT m.role, m.envelope_id FROM messages m JOIN sessions s ON s.id = m.session_id
        WHERE s.channel = 'whatsapp' AND s.native_key = $1 ORDER BY m.seq`,
      [`+${from}`],
    );
  const logged = log.about;
  const failureCount = (outcome: string) => inboundFileFailures(running, 'whatsapp', outcome);

  it('a download the media host fails twice (503) is tried again in the lane: stored once, one turn, one answer', async () => {
    const from = person();
    const photo = Buffer.concat([KETTLE, Buffer.from(`flaky-${from}`)]);
    graph.addMedia('900000000004', photo, 'image/png');
    graph.failDownloads('900000000004', 2, 503);
    const webhook = cloudMessage(doc.imageMessage, from, 1, (m) => {
      m.image.id = '900000000004';
    });
    expect((await post(webhook)).status).toBe(200);
    const got = `Got photo (image/png, ${photo.length} bytes)`;
    await until(
      () => texts(from),
      (t) => t.includes(got),
    );
    await settled(running.hub);
    expect(graph.downloadAttempts.filter((id) => id === '900000000004')).toHaveLength(3);
    expect(texts(from)).toEqual(['Send me a file.', got]);
    const rows = await rowsOf(from);
    expect(rows.map((r) => r.role)).toEqual(['user', 'assistant', 'assistant']);
    const envelopeId = rows[0]!.envelope_id!;
    expect(logged('file.inbound_fetch_retry', envelopeId)).toHaveLength(2);
    expect(logged('file.inbound_unavailable', envelopeId)).toHaveLength(0);
    // The queue waited as the attachment retry asked (1st, 2nd delay), not its own backoff.
    expect(logged('queue.envelope_retry', envelopeId).map((l) => l.retryInMs)).toEqual([30, 60]);
    expect(await query('SELECT 1 FROM files WHERE size = $1', [photo.length])).toHaveLength(1);
    expect(
      await query('SELECT 1 FROM attachment_fetch_failures WHERE envelope_id = $1', [envelopeId]),
    ).toEqual([]);
  });

  it('a download that always fails (500) is tried ATTACHMENT_RETRY_ATTEMPTS more times; then answered, the person told, one event', async () => {
    const from = person();
    graph.addMedia('900000000005', Buffer.concat([KETTLE, Buffer.from(`down-${from}`)]), 'image/png');
    graph.failDownloads('900000000005', Number.POSITIVE_INFINITY, 500);
    const webhook = cloudMessage(doc.imageMessage, from, 1, (m) => {
      m.image.id = '900000000005';
    });
    expect((await post(webhook)).status).toBe(200);
    await until(
      () => texts(from),
      (t) => t.some((x) => x.startsWith('You said')),
    );
    await settled(running.hub);
    const retries = running.hub.config.attachmentRetryAttempts;
    expect(retries).toBe(3);
    expect(graph.downloadAttempts.filter((id) => id === '900000000005')).toHaveLength(1 + retries);
    expect(texts(from).sort()).toEqual([UNAVAILABLE, 'Send me a file.', 'You said: Taj Mahal']);
    const rows = await rowsOf(from);
    expect(rows.filter((r) => r.role === 'user')).toHaveLength(1);
    const envelopeId = rows[0]!.envelope_id!;
    expect(logged('file.inbound_fetch_retry', envelopeId)).toHaveLength(retries);
    expect(logged('queue.envelope_retry', envelopeId).map((l) => l.retryInMs)).toEqual(RETRY_DELAYS_MS);
    expect(await failureCount('gave_up')).toBeGreaterThanOrEqual(1);
    expect(logged('file.inbound_unavailable', envelopeId)).toEqual([
      expect.objectContaining({ permanent: false, err: expect.stringContaining('500') }),
    ]);
    expect(
      await query('SELECT 1 FROM attachment_fetch_failures WHERE envelope_id = $1', [envelopeId]),
    ).toEqual([]);
  });

  it('a download refused for good (404) is not tried again: the person is told at once, the bot runs on', async () => {
    const from = person();
    graph.addMedia('900000000006', Buffer.concat([KETTLE, Buffer.from(`gone-${from}`)]), 'image/png');
    graph.failDownloads('900000000006', Number.POSITIVE_INFINITY, 404);
    const before = await failureCount('permanent');
    const webhook = cloudMessage(doc.imageMessage, from, 1, (m) => {
      m.image.id = '900000000006';
    });
    expect((await post(webhook)).status).toBe(200);
    await until(
      () => texts(from),
      (t) => t.some((x) => x.startsWith('You said')),
    );
    await settled(running.hub);
    expect(graph.downloadAttempts.filter((id) => id === '900000000006')).toHaveLength(1);
    expect(texts(from).sort()).toEqual([UNAVAILABLE, 'Send me a file.', 'You said: Taj Mahal']);
    const rows = await rowsOf(from);
    const envelopeId = rows[0]!.envelope_id!;
    expect(logged('file.inbound_fetch_retry', envelopeId)).toHaveLength(0);
    expect(logged('queue.envelope_retry', envelopeId)).toHaveLength(0);
    expect(logged('file.inbound_unavailable', envelopeId)).toEqual([
      expect.objectContaining({ permanent: true, channel: 'whatsapp' }),
    ]);
    expect(await failureCount('permanent')).toBe(before + 1);
  });

  it('a media id the Graph API no longer knows (expired) is told at once: no download, no retry', async () => {
    const from = person();
    const webhook = cloudMessage(doc.imageMessage, from, 1, (m) => {
      m.image.id = '900000000099';
    });
    expect((await post(webhook)).status).toBe(200);
    await until(
      () => texts(from),
      (t) => t.some((x) => x.startsWith('You said')),
    );
    await settled(running.hub);
    expect(graph.downloadAttempts).not.toContain('900000000099');
    expect(texts(from).sort()).toEqual([UNAVAILABLE, 'Send me a file.', 'You said: Taj Mahal']);
    const envelopeId = (await rowsOf(from))[0]!.envelope_id!;
    expect(logged('file.inbound_fetch_retry', envelopeId)).toHaveLength(0);
    expect(logged('file.inbound_unavailable', envelopeId)).toEqual([
      expect.objectContaining({ permanent: true }),
    ]);
  });

  it('refuses an 11 MB document with a message the person reads, and keeps nothing', async () => {
    const from = person();
    graph.addMedia('900000000002', pdfBytes(11 * MB), 'application/pdf');
    const before = await query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks');
    await post(
      cloudMessage(doc.documentMessage, from, 1, (m) => {
        m.document.id = '900000000002';
        m.document.filename = 'scan.pdf';
      }),
    );
    await until(
      () => texts(from),
      (t) => t.some((x) => x.includes('larger than 10 MB')),
    );
    expect(texts(from)).toContain('"scan.pdf" is larger than 10 MB, the largest file this chat accepts');
    expect(await query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks')).toEqual(before);
  });

  it('SHOW IMAGE: uploads the image to the media endpoint, then sends it by id with the caption', async () => {
    const from = person();
    await post(cloudMessage(doc.textMessage, from, 1, (m) => (m.text.body = 'image')));
    await until(
      () => sentTo(from),
      (s) => s.some((b) => b.type === 'image'),
    );
    const upload = graph.uploads.find((u) => u.bytes.equals(KETTLE));
    expect(upload).toMatchObject({ phoneNumberId: NUMBER, type: 'image/png', name: 'kettle.png' });
    expect(sentTo(from).find((b) => b.type === 'image')).toMatchObject({
      messaging_product: 'whatsapp',
      to: from,
      type: 'image',
      image: { id: upload!.id, caption: 'Here is the kettle.' },
    });
  });

  it('a card becomes reply buttons with the image as header; a press comes back as the value', async () => {
    const from = person();
    await post(cloudMessage(doc.textMessage, from, 1, (m) => (m.text.body = 'card')));
    await until(
      () => sentTo(from),
      (s) => s.some((b) => b.type === 'interactive'),
    );
    const card = sentTo(from).find((b) => b.type === 'interactive')!;
    expect(card.interactive).toEqual({
      type: 'button',
      header: { type: 'image', image: { id: expect.any(String) } },
      body: { text: '*Kettle K-200*\n1.7 litres, boils in 3 minutes.\nManual: https://example.com/k200' },
      action: { buttons: [{ type: 'reply', reply: { id: 'buy k200', title: 'Buy it' } }] },
    });
    await post(
      cloudMessage(doc.buttonReply, from, 2, (m) => {
        m.interactive.button_reply = { id: 'buy k200', title: 'Buy it' };
      }),
    );
    await until(
      () => texts(from),
      (t) => t.includes('You said: buy k200'),
    );
  });
});
