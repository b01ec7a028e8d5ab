import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackAdapter, loadSlackConfig } from '../../adapters/slack/index.ts';
import { FileStore } from '../../src/files/store.ts';
import * as doc from '../fixtures/slack/events.ts';
import { EXE_BYTES, pdfBytes } from '../helpers/files.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { type SlackWebApi, startSlackWebApi } from '../helpers/slack-web-api.ts';
import { postSlackWebhook } from '../helpers/slack-webhook.ts';
import { until } from '../helpers/until.ts';

const SIGNING_SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
const BOT_TOKEN = 'xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy';
const TEAM = 'T123ABC456';
const PUBLIC_URL = 'https://bots.example.com';
const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
const MB = 1024 * 1024;

/** Files and cards over Slack, against the local Web API stand-in (file hosting, the upload flow). */
describe('Slack: files and Block Kit cards', () => {
  let api: SlackWebApi;
  let running: RunningHub;
  let serial = 0;
  let clock = 1_720_000_000;

  beforeAll(async () => {
    api = await startSlackWebApi(BOT_TOKEN);
    const config = loadSlackConfig({
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_API_URL: api.url,
      SLACK_BOT: 'gallery',
    })!;
    running = await startTestHub(
      // The attachment retry's waits, short for the test (ATTACHMENT_RETRY_DELAYS_MS).
      {
        configDir: path.join(REPO_ROOT, 'test/fixtures/files'),
        publicUrl: PUBLIC_URL,
        attachmentRetryDelaysMs: [10, 20, 30],
      },
      { adapters: [createSlackAdapter(config)] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await api?.close();
  });

  const person = () => {
    const n = String(++serial).padStart(4, '0');
    return { user: `U8${n}FILES`, dm: `D8${n}FILES` };
  };
  const ts = () => `${++clock}.000100`;
  const post = (route: '' | '/interactions', raw: string) =>
    postSlackWebhook(running.url, route, raw, { secret: SIGNING_SECRET });
  const say = (p: { user: string; dm: string }, text: string) => {
    const at = ts();
    return post(
      '',
      JSON.stringify(
        doc.wrap(
          { ...doc.directMessage, channel: p.dm, user: p.user, text, ts: at, event_ts: at },
          { eventId: `Ev${at}` },
        ),
      ),
    );
  };
  /** The documented `file_share` event, its file hosted by the stand-in at `url`. */
  const share = (p: { user: string; dm: string }, file: { name: string; url: string; size: number }) => {
    const at = ts();
    const event = structuredClone(doc.fileShare) as doc.Json;
    Object.assign(event, { channel: p.dm, user: p.user, ts: at, event_ts: at });
    Object.assign(event.files[0], {
      name: file.name,
      title: file.name,
      size: file.size,
      user: p.user,
      url_private_download: file.url,
      url_private: file.url.replace('/download/', '/'),
    });
    return post('', JSON.stringify(doc.wrap(event, { eventId: `Ev${at}` })));
  };
  /** The stand-in hosts `bytes` as Slack hosts a person's upload, then the person shares it. */
  const shareHosted = (p: { user: string; dm: string }, name: string, bytes: Buffer, mime: string) =>
    share(p, { name, url: api.hostFile(name, bytes, mime), size: bytes.length });
  const texts = (channel: string) => api.postedTo(channel).map((c) => c.args.text as string);
  const query = async <T>(sql: string, params: unknown[] = []) =>
    (await running.hub.db.query(sql, params)).rows as T[];
  const press = (p: { user: string; dm: string }, action: doc.Json) => {
    const payload = structuredClone(doc.blockActions) as doc.Json;
    payload.team.id = TEAM;
    payload.user = { id: p.user, username: 'ana', name: 'ana', team_id: TEAM };
    payload.channel = { id: p.dm, name: 'directmessage' };
    const at = ts();
    payload.container = { type: 'message', message_ts: at, channel_id: p.dm, is_ephemeral: false };
    payload.message = { ...payload.message, ts: at };
    payload.actions = [{ ...action, type: 'button', action_ts: `${at}1` }];
    return post('/interactions', doc.interactionBody(payload));
  };

  it('a shared file is downloaded with the bot token into the store, sniffed and within the limits', async () => {
    const p = person();
    const pdf = pdfBytes(200_000, p.user);
    expect((await shareHosted(p, 'invoice.pdf', pdf, 'application/pdf')).status).toBe(200);
    const got = `Got invoice.pdf (application/pdf, ${pdf.length} bytes)`;
    await until(
      () => texts(p.dm),
      (t) => t.includes(got),
    );
    const [row] = await query<{ id: string; session_id: string | null }>(
      'SELECT id, session_id FROM files WHERE name = $1 AND size = $2',
      ['invoice.pdf', pdf.length],
    );
    expect(row!.session_id).not.toBeNull();
    const files = new FileStore(running.hub.db);
    expect((await files.bytes((await files.get(row!.id))!)).equals(pdf)).toBe(true);
  });

  it('11 MB, or a program named .png, is refused with a message the person reads; nothing is kept', async () => {
    const p = person();
    const before = await query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks');
    const big = pdfBytes(11 * MB);
    await shareHosted(p, 'scan.pdf', big, 'application/pdf');
    await until(
      () => texts(p.dm),
      (t) => t.some((x) => x.includes('larger than 10 MB')),
    );
    await shareHosted(p, 'cat.png', EXE_BYTES, 'image/png');
    await until(
      () => texts(p.dm),
      (t) => t.some((x) => x.includes('cat.png') && !x.includes('larger')),
    );
    expect(await query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks')).toEqual(before);
    expect(await query('SELECT 1 FROM files WHERE name IN ($1, $2)', ['scan.pdf', 'cat.png'])).toEqual([]);
  });

  it('the bot token never goes to a host other than Slack’s: such a file is not fetched, and the person is told at once', async () => {
    const p = person();
    await share(p, {
      name: 'elsewhere.pdf',
      url: 'https://files.example.com/download/elsewhere.pdf',
      size: 10,
    });
    await until(
      () => texts(p.dm),
      (t) => t.includes('You said: Here is the invoice'),
    );
    expect(texts(p.dm)).toContain(
      '"elsewhere.pdf" could not be fetched from the chat service; please send it again',
    );
    expect(await query('SELECT 1 FROM files WHERE name = $1', ['elsewhere.pdf'])).toEqual([]);
  });

  it('a download Slack fails for now (503 twice) is tried again; then the file arrives, stored once', async () => {
    const p = person();
    const photo = Buffer.concat([KETTLE, Buffer.from(`slack-flaky-${p.user}`)]);
    const url = api.hostFile('flaky.png', photo, 'image/png');
    api.failFile(url, 2, 503);
    await share(p, { name: 'flaky.png', url, size: photo.length });
    await until(
      () => texts(p.dm),
      (t) => t.includes(`Got flaky.png (image/png, ${photo.length} bytes)`),
    );
    expect(api.fileAttempts(url)).toBe(3);
    expect(await query('SELECT 1 FROM files WHERE size = $1', [photo.length])).toHaveLength(1);
  });

  it('a download Slack fails every time (500) is tried 1 + ATTACHMENT_RETRY_ATTEMPTS times, then the person is told', async () => {
    const p = person();
    const url = api.hostFile('down.png', Buffer.concat([KETTLE, Buffer.from(`down-${p.user}`)]), 'image/png');
    api.failFile(url, Number.POSITIVE_INFINITY, 500);
    await share(p, { name: 'down.png', url, size: KETTLE.length + 20 });
    await until(
      () => texts(p.dm),
      (t) => t.includes('You said: Here is the invoice'),
    );
    expect(texts(p.dm)).toContain(
      '"down.png" could not be fetched from the chat service; please send it again',
    );
    expect(api.fileAttempts(url)).toBe(1 + running.hub.config.attachmentRetryAttempts);
  });

  it('SHOW IMAGE: getUploadURLExternal, the bytes to the upload URL, completeUploadExternal in the conversation', async () => {
    const p = person();
    await say(p, 'image');
    await until(
      () => api.shared.filter((s) => s.channel_id === p.dm),
      (s) => s.length === 1,
    );
    const [done] = api.shared.filter((s) => s.channel_id === p.dm);
    const upload = api.uploads.get(done!.files[0]!.id)!;
    expect(upload.filename).toBe('kettle.png');
    expect(upload.length).toBe(KETTLE.length);
    expect(upload.bytes!.equals(KETTLE)).toBe(true);
    expect(done!.files[0]!.title).toBe('kettle.png');
    expect(texts(p.dm)).toContain('Here is the kettle.');
    const calls = api.calls.map((c) => c.method);
    expect(calls.indexOf('files.getUploadURLExternal')).toBeLessThan(
      calls.indexOf('files.completeUploadExternal'),
    );
  });

  it("a card is Block Kit (section, image, actions); a press comes back as the button's value, a link's is not an answer", async () => {
    const p = person();
    await say(p, 'card');
    await until(
      () => api.postedTo(p.dm),
      (c) => c.some((x) => x.args.blocks),
    );
    const card = api.postedTo(p.dm).find((x) => x.args.blocks)!;
    const blocks = card.args.blocks as doc.Json[];
    expect(blocks[0]).toEqual({
      type: 'section',
      text: { type: 'mrkdwn', text: '*Kettle K-200*\n1.7 litres, boils in 3 minutes.' },
    });
    expect(blocks[1]).toMatchObject({ type: 'image', alt_text: 'Kettle K-200' });
    expect(blocks[1].image_url).toMatch(new RegExp(`^${PUBLIC_URL}/api/files/[0-9a-f-]+\\?exp=\\d+&sig=`));
    expect(blocks[2]).toEqual({
      type: 'actions',
      block_id: 'card-0',
      elements: [
        {
          type: 'button',
          action_id: 'card-0-0',
          text: { type: 'plain_text', text: 'Buy it', emoji: true },
          value: 'buy k200',
        },
        {
          type: 'button',
          action_id: 'link-0-1',
          text: { type: 'plain_text', text: 'Manual', emoji: true },
          url: 'https://example.com/k200',
        },
      ],
    });
    // The notification text is the card as text.
    expect(card.args.text).toContain('Kettle K-200');
    const link = blocks[2].elements[1];
    expect((await press(p, { action_id: link.action_id, block_id: 'card-0', text: link.text })).status).toBe(
      200,
    );
    const buy = blocks[2].elements[0];
    expect(
      (await press(p, { action_id: buy.action_id, block_id: 'card-0', text: buy.text, value: buy.value }))
        .status,
    ).toBe(200);
    await until(
      () => texts(p.dm),
      (t) => t.includes('You said: buy k200'),
    );
    expect(texts(p.dm).filter((t) => t.startsWith('You said'))).toEqual(['You said: buy k200']);
  });

  it('a carousel is several cards in one message, each with its own buttons', async () => {
    const p = person();
    await say(p, 'carousel');
    await until(
      () => api.postedTo(p.dm),
      (c) => c.some((x) => x.args.blocks),
    );
    const blocks = api.postedTo(p.dm).find((x) => x.args.blocks)!.args.blocks as doc.Json[];
    expect(blocks.map((b) => b.type)).toEqual(['section', 'actions', 'divider', 'section', 'actions']);
    expect(blocks[0].text.text).toBe('*K-200*\nThe classic.');
    expect(blocks[3].text.text).toBe('*K-300*\nThe quiet one.');
    expect([blocks[1].elements[0].value, blocks[4].elements[0].value]).toEqual(['pick k200', 'pick k300']);
  });
});
