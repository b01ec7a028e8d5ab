import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { adminClient, rowsMentioningAny } from '../helpers/admin.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

const APP_SECRET = 'erasure-in-flight-app-secret';
const ACCESS_TOKEN = 'EAAJB-erasure-in-flight-token';
const ADMIN_TOKEN = 'erasure-in-flight-admin-token-0123456789';
const NUMBER = '106540352242922';
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/files');
const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
/** What a person wrote before the erasure that must never be recorded. */
const secretOf = (name: string) => `IN-FLIGHT-SECRET of ${name}: my card ends 4242`;
/** The gallery bot's greeting: what a new session says first. */
const GREETING = 'Send me a file.';

/**
 * A message accepted for a person on a keyed channel (here the WhatsApp Cloud webhook) but not yet
 * processed when the person is erased is dropped when it comes to be processed: it makes no user,
 * identity, session or message, and nothing is sent. A message the person sends after the
 * erasure is a new contact. Both queue drivers: the embedded queue (the envelope in its in-memory
 * lane, behind a download in progress or waiting in its retry backoff, with its inbox row gone)
 * and the Redis lanes (accepted by a gateway alone, drained by a worker started after the erasure).
 */

/** What one WhatsApp person does and what the hub keeps of them, over `graph` and the hub at `url()`. */
function whatsAppPerson(graph: () => GraphApi, url: () => string, db: () => RunningHub['hub']['db']) {
  let serial = 0;
  return (phone: string, name: string) => {
    const message = (base: doc.Json, change: (m: doc.Json) => void) => {
      const p = doc.variant(base, {
        from: phone,
        suffix: `in-flight.${phone}.${++serial}`,
        timestamp: new Date(),
      }) as doc.Json;
      p.entry[0].changes[0].value.contacts[0].profile.name = name;
      change(p.entry[0].changes[0].value.messages[0]);
      return p;
    };
    const post = async (payload: unknown) => {
      const res = await postWhatsAppWebhook(url(), payload, APP_SECRET);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ accepted: 1, duplicates: 0 });
    };
    return {
      phone,
      secret: secretOf(name),
      text: (body: string) => post(message(doc.textMessage, (m) => (m.text.body = body))),
      photo: (mediaId: string) => post(message(doc.imageMessage, (m) => (m.image.id = mediaId))),
      /** The texts the hub sent them. */
      texts: () =>
        graph()
          .to(phone)
          .map((r) => r.body)
          .flatMap((b) => (b.type === 'text' ? [b.text.body as string] : [])),
      answered: (body: string) =>
        until(
          () =>
            graph()
              .to(phone)
              .map((r) => r.body)
              .flatMap((b) => (b.type === 'text' ? [b.text.body as string] : [])),
          (t) => t.includes(`You said: ${body}`),
          30_000,
        ),
      /** Their user, through their WhatsApp identity (undefined: none). */
      userId: async () =>
        (
          await db().query<{ user_id: string }>(
            `SELECT user_id FROM user_identities WHERE channel = 'whatsapp' AND native_id = $1`,
            [`+${phone}`],
          )
        ).rows[0]?.user_id,
      /** Every row of any table naming them or holding what they wrote before the erasure. */
      traces: async () => (await rowsMentioningAny(db(), [`+${phone}`, name, secretOf(name)])).found,
    };
  };
}

const fileCount = async (db: RunningHub['hub']['db']) =>
  (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM files')).rows[0]!.n;

async function erase(url: string, userId: string): Promise<void> {
  const res = await adminClient(url, ADMIN_TOKEN)('DELETE', `/api/users/${userId}`);
  expect(res.status).toBe(200);
}

/** A message after the erasure: a new contact (a new user and identity), greeted and answered. */
async function writesAgain(
  person: ReturnType<ReturnType<typeof whatsAppPerson>>,
  erasedUser: string,
): Promise<void> {
  const sentBefore = person.texts().length;
  await person.text('hello again, after the erasure');
  await person.answered('hello again, after the erasure');
  expect(person.texts().slice(sentBefore)).toEqual([GREETING, 'You said: hello again, after the erasure']);
  const user = await person.userId();
  expect(user).toBeDefined();
  expect(user).not.toBe(erasedUser);
}

describe('erasure drops what was accepted before it: the embedded queue', () => {
  let graph: GraphApi;
  let running: RunningHub;
  const log = capturingLogger('info');
  const person = whatsAppPerson(
    () => graph,
    () => running.url,
    () => running.hub.db,
  );
  const dropped = () => log.lines.filter((l) => l.event === 'erasure.envelope_dropped');

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    running = await startTestHub(
      {
        configDir: CONFIG_DIR,
        adminToken: ADMIN_TOKEN,
        // A failing download waits two seconds before each of its retries: the erasure comes
        // while the lane waits (and with eight tries, the lane is in backoff for long after).
        attachmentRetryDelaysMs: [2_000],
        attachmentRetryAttempts: 8,
      },
      {
        adapters: [
          whatsAppCloudAdapter({
            graphUrl: graph.url,
            numbers: `${NUMBER}:gallery`,
            accessToken: ACCESS_TOKEN,
            appSecret: APP_SECRET,
          }),
        ],
        logger: log.logger,
      },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await graph?.close();
  });

  const inboxOf = async (phone: string) =>
    (
      await running.hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM inbox WHERE lane = $1', [
        `gallery|whatsapp|+${phone}`,
      ])
    ).rows[0]!.n;

  it('behind a download in progress: the in-memory envelopes are dropped, with the file they brought; a new message is a new contact', async () => {
    expect(running.hub.queue.driver).toBe('in-process');
    const ana = person('4915199990001', 'Ana Example');
    await ana.text('hello');
    await ana.answered('hello');
    const user = (await ana.userId())!;
    expect(user).toBeDefined();

    // A photo whose download hangs holds the lane; the secret waits behind it, in memory.
    graph.addMedia('900000000701', Buffer.concat([KETTLE, Buffer.from('ana')]), 'image/png');
    const release = graph.hold('900000000701');
    await ana.photo('900000000701');
    await until(
      () => graph.waiting,
      (w) => w.includes('900000000701'),
    );
    await ana.text(ana.secret);
    const sentBefore = ana.texts().length;
    const droppedBefore = dropped().length;

    await erase(running.url, user);
    // The erasure took the inbox rows: only the queue's in-memory copies are left.
    expect(await inboxOf(ana.phone)).toBe(0);
    expect(await ana.traces()).toEqual([]);

    release();
    await settled(running.hub);
    expect(await ana.traces()).toEqual([]);
    expect(ana.texts().length).toBe(sentBefore);
    // The photo, whose download finished after the erasure, and the secret behind it.
    expect(dropped().slice(droppedBefore)).toEqual([
      expect.objectContaining({ bot: 'gallery', channel: 'whatsapp', kind: 'message', files: 1 }),
      expect.objectContaining({ bot: 'gallery', channel: 'whatsapp', kind: 'message', files: 0 }),
    ]);
    // The photo's file is not kept.
    expect(await fileCount(running.hub.db)).toBe(0);
    // The drop's line names no one: no phone number, no envelope id (a wamid encodes the number).
    for (const line of dropped()) expect(JSON.stringify(line)).not.toContain(ana.phone);

    await writesAgain(ana, user);
  });

  it('waiting in its retry backoff: the envelope is not fetched again, and is dropped with the one behind it', async () => {
    const ben = person('4915199990002', 'Ben Example');
    await ben.text('hello');
    await ben.answered('hello');
    const user = (await ben.userId())!;

    // A photo whose download keeps failing (503): its lane waits in backoff between the tries.
    graph.addMedia('900000000702', Buffer.concat([KETTLE, Buffer.from('ben')]), 'image/png');
    graph.failDownloads('900000000702', Number.POSITIVE_INFINITY, 503);
    await ben.photo('900000000702');
    // The lane waits for its retry.
    await until(
      () =>
        log.lines.filter(
          (l) => l.event === 'queue.envelope_retry' && String(l.envelopeId).includes(ben.phone),
        ),
      (retries) => retries.length > 0,
    );
    await ben.text(ben.secret);
    const sentBefore = ben.texts().length;
    const droppedBefore = dropped().length;

    await erase(running.url, user);
    // The platform would hand the photo over now.
    graph.failDownloads('900000000702', 0);

    await settled(running.hub);
    expect(await ben.traces()).toEqual([]);
    expect(ben.texts().length).toBe(sentBefore);
    expect(dropped().length - droppedBefore).toBe(2);
    // Not fetched again after the erasure, though the platform would have handed it over.
    expect(graph.downloads).not.toContain('900000000702');
    expect(await fileCount(running.hub.db)).toBe(0);
    // The count of the photo's failed downloads went with it (its envelope id is a wamid).
    const failures = await running.hub.db.query('SELECT 1 FROM attachment_fetch_failures');
    expect(failures.rows).toEqual([]);

    await writesAgain(ben, user);
  });

  it('the expiry job forgets an erased contact a week after the erasure', async () => {
    const erased = async () =>
      (await running.hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM erased_contacts')).rows[0]!
        .n;
    // Ana and Ben, erased above.
    expect(await erased()).toBe(2);
    expect((await running.hub.expire()).ran).toBe(true);
    expect(await erased()).toBe(2);
    await running.hub.db.query(
      `UPDATE erased_contacts SET erased_at = erased_at - interval '7 days 1 minute'
        WHERE erased_at = (SELECT min(erased_at) FROM erased_contacts)`,
    );
    expect((await running.hub.expire()).ran).toBe(true);
    expect(await erased()).toBe(1);
  });
});

describe('erasure drops what was accepted before it: the Redis lanes', () => {
  const redis = testRedisPrefix();
  let graph: GraphApi;
  let database: TestDatabase;
  let gateway: RunningHub;
  let worker: RunningHub | undefined;
  const log = capturingLogger('info');
  const person = whatsAppPerson(
    () => graph,
    () => gateway.url,
    () => gateway.hub.db,
  );

  const startHub = (role: 'gateway' | 'worker', logger = capturingLogger('warn').logger) =>
    startTestHub(
      {
        databaseUrl: database.url,
        redisUrl: TEST_REDIS_URL,
        redisPrefix: redis.prefix,
        configDir: CONFIG_DIR,
        adminToken: ADMIN_TOKEN,
      },
      {
        role,
        logger,
        adapters: [
          whatsAppCloudAdapter({
            graphUrl: graph.url,
            numbers: `${NUMBER}:gallery`,
            accessToken: ACCESS_TOKEN,
            appSecret: APP_SECRET,
          }),
        ],
      },
    );

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    database = await createTestDatabase();
    gateway = await startHub('gateway');
    worker = await startHub('worker');
  });
  afterAll(async () => {
    await worker?.stop();
    await gateway?.stop();
    await graph?.close();
    await database?.drop();
    await redis.cleanup();
  });

  it('accepted by a gateway while no worker runs, then erased: the worker that starts drops them; a new message is a new contact', async () => {
    expect(gateway.hub.queue.driver).toBe('redis-lanes');
    const cleo = person('4915199990003', 'Cleo Example');
    await cleo.text('hello');
    await cleo.answered('hello');
    const user = (await cleo.userId())!;
    expect(user).toBeDefined();
    await settled(gateway.hub);
    await worker!.stop();
    worker = undefined;

    // No worker: a photo and the secret wait in the person's Redis lane.
    graph.addMedia('900000000703', Buffer.concat([KETTLE, Buffer.from('cleo')]), 'image/png');
    await cleo.photo('900000000703');
    await cleo.text(cleo.secret);
    expect(await gateway.hub.queue.depth()).toBe(2);
    const sentBefore = cleo.texts().length;

    await erase(gateway.url, user);
    expect(await cleo.traces()).toEqual([]);
    // The lane still holds them.
    expect(await gateway.hub.queue.depth()).toBe(2);

    worker = await startHub('worker', log.logger);
    await settled(gateway.hub);
    expect(await cleo.traces()).toEqual([]);
    expect(cleo.texts().length).toBe(sentBefore);
    expect(log.lines.filter((l) => l.event === 'erasure.envelope_dropped')).toHaveLength(2);
    expect(graph.downloadAttempts).not.toContain('900000000703');
    expect(await fileCount(gateway.hub.db)).toBe(0);

    await writesAgain(cleo, user);
  });
});
