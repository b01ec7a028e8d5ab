import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWhatsAppAdapter, loadWhatsAppConfig } from '../../adapters/whatsapp/index.ts';
import { signatureHeader } from '../../adapters/whatsapp/webhook/verify.ts';
import type { Json } from '../fixtures/whatsapp/cloud-payloads.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { pdfBytes } from '../helpers/files.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const APP_SECRET = 'test-app-secret';
const ACCESS_TOKEN = 'EAAJB-files-token';
const NUMBER = '106540352242922';
const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
const MB = 1024 * 1024;

/** Files and cards over the WhatsApp Cloud API, against a local Graph API (media ids, downloads, uploads). */
describe('WhatsApp Cloud: files and cards', () => {
  let graph: GraphApi;
  let running: RunningHub;
  let serial = 0;

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    const config = loadWhatsAppConfig(
      {
        WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
        WHATSAPP_APP_SECRET: APP_SECRET,
        WHATSAPP_VERIFY_TOKEN: 'verify',
        WHATSAPP_GRAPH_URL: graph.url,
        WHATSAPP_NUMBERS: `${NUMBER}:gallery`,
      },
      '/tmp/unused',
    )!;
    running = await startTestHub(
      { configDir: path.join(REPO_ROOT, 'test/fixtures/files') },
      { adapters: [createWhatsAppAdapter(config)] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await graph?.close();
  });

  const person = () => `1650777${String(1000 + ++serial).padStart(4, '0')}`;
  const post = (payload: unknown) => {
    const raw = JSON.stringify(payload);
    return fetch(`${running.url}/webhooks/whatsapp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-hub-signature-256': signatureHeader(raw, APP_SECRET),
      },
      body: raw,
    });
  };
  const message = (base: Json, from: string, n: number, change: (m: Json) => void) => {
    const p = doc.variant(base, { from, suffix: `${from}.${n}`, timestamp: new Date() }) as Json;
    change(p.entry[0].changes[0].value.messages[0]);
    return p;
  };
  const sentTo = (waId: string) => graph.to(waId).map((r) => r.body);
  const texts = (waId: string) => sentTo(waId).flatMap((b) => (b.type === 'text' ? [b.text.body] : []));
  const query = async <T>(sql: string, params: unknown[] = []) =>
    (await running.hub.db.query(sql, params)).rows as T[];

  it('downloads a photo by media id with the token and stores it once, however often it is sent', async () => {
    const from = person();
    const photo = Buffer.concat([KETTLE, Buffer.from(from)]);
    graph.addMedia('900000000001', photo, 'image/jpeg');
    const photoMessage = (n: number) =>
      message(doc.imageMessage, from, n, (m) => {
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
    const webhook = message(doc.imageMessage, from, 1, (m) => {
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

  it('refuses an 11 MB document with a message the person reads, and keeps nothing', async () => {
    const from = person();
    graph.addMedia('900000000002', pdfBytes(11 * MB), 'application/pdf');
    const before = await query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks');
    await post(
      message(doc.documentMessage, from, 1, (m) => {
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
    await post(message(doc.textMessage, from, 1, (m) => (m.text.body = 'image')));
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
    await post(message(doc.textMessage, from, 1, (m) => (m.text.body = 'card')));
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
      message(doc.buttonReply, from, 2, (m) => {
        m.interactive.button_reply = { id: 'buy k200', title: 'Buy it' };
      }),
    );
    await until(
      () => texts(from),
      (t) => t.includes('You said: buy k200'),
    );
  });
});
