import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INBOUND_QUEUE } from '../../src/queue/redis-lane-queue.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';
import { cloudMessage, postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

const APP_SECRET = 'test-app-secret';
const ACCESS_TOKEN = 'EAAJB-retry-token';
const NUMBER = '106540352242922';
/**
 * The waits before the attachment retries: long enough that a retry never comes on its own in
 * the test. The test sees each failed lane's job wait in BullMQ's delayed set with exactly this
 * delay, then promotes it.
 */
const RETRY_DELAY_MS = 600_000;
const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));

/**
 * The attachment retry (src/files/pending.ts) over the Redis lanes queue: the lane's own retry
 * runs the message again after the attachment's delay (the drain job waits in BullMQ's delayed
 * set, holding no worker), the count of failures is PostgreSQL's, the session's next message
 * waits behind it, and other sessions go on meanwhile. The in-process queue's side is in
 * whatsapp-files.test.ts.
 */
describe('WhatsApp Cloud media host failing, on the Redis lanes queue', () => {
  let graph: GraphApi;
  let running: RunningHub;
  let bull: Queue;
  let connection: Redis;
  const redis = testRedisPrefix();
  const log = capturingLogger();
  let serial = 0;

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    const adapter = whatsAppCloudAdapter({
      graphUrl: graph.url,
      numbers: `${NUMBER}:gallery`,
      accessToken: ACCESS_TOKEN,
      appSecret: APP_SECRET,
    });
    running = await startTestHub(
      {
        configDir: path.join(REPO_ROOT, 'test/fixtures/files'),
        redisUrl: TEST_REDIS_URL,
        redisPrefix: redis.prefix,
        attachmentRetryDelaysMs: [RETRY_DELAY_MS],
      },
      { adapters: [adapter], logger: log.logger },
    );
    connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    bull = new Queue(INBOUND_QUEUE, { connection, prefix: `${redis.prefix}bull` });
  });
  afterAll(async () => {
    await bull?.close();
    connection?.disconnect();
    await running?.stop();
    await graph?.close();
    await redis.cleanup();
  });

  const person = () => `1650666${String(1000 + ++serial).padStart(4, '0')}`;
  const post = (payload: unknown) => postWhatsAppWebhook(running.url, payload, APP_SECRET);
  const texts = (waId: string) =>
    graph
      .to(waId)
      .map((r) => r.body)
      .flatMap((b) => (b.type === 'text' ? [b.text.body as string] : []));
  const envelopeIdOf = async (from: string) =>
    (
      await running.hub.db.query<{ envelope_id: string }>(
        `SELECT m.envelope_id FROM messages m JOIN sessions s ON s.id = m.session_id
          WHERE s.native_key = $1 AND m.role = 'user' ORDER BY m.seq LIMIT 1`,
        [`+${from}`],
      )
    ).rows[0]!.envelope_id;
  const logged = log.about;
  /** Waits until a failed drain job waits in the delayed set. */
  const retryWaiting = () =>
    until(
      () => bull.getDelayedCount(),
      (n) => n > 0,
    );
  /** Waits for the failed drain job in the delayed set, checks the delay it was given, and runs it now. */
  const promoteRetry = async () => {
    const [job] = await until(
      () => bull.getDelayed(),
      (jobs) => jobs.length > 0,
    );
    expect(job!.delay).toBe(RETRY_DELAY_MS);
    await job!.promote();
    await until(
      () => bull.getDelayedCount(),
      (n) => n === 0,
    );
  };

  it('fails twice, then the file arrives: stored once, answered once, and the text sent after it is answered after it', async () => {
    expect(running.hub.queue.driver).toBe('redis-lanes');
    const from = person();
    const photo = Buffer.concat([KETTLE, Buffer.from(`redis-flaky-${from}`)]);
    graph.addMedia('900000000104', photo, 'image/png');
    graph.failDownloads('900000000104', 2, 502);
    await post(
      cloudMessage(doc.imageMessage, from, 1, (m) => {
        m.image.id = '900000000104';
      }),
    );
    await post(cloudMessage(doc.textMessage, from, 2, (m) => (m.text.body = 'after the photo')));
    // While the photo's lane waits for its retry, another session is answered: no worker is held.
    const other = person();
    await retryWaiting();
    await post(cloudMessage(doc.textMessage, other, 1, (m) => (m.text.body = 'meanwhile')));
    await until(
      () => texts(other),
      (t) => t.includes('You said: meanwhile'),
    );
    expect(texts(from)).toEqual([]);
    await promoteRetry();
    await promoteRetry();
    const got = `Got photo (image/png, ${photo.length} bytes)`;
    await until(
      () => texts(from),
      (t) => t.includes('You said: after the photo'),
    );
    await settled(running.hub);
    // The session's order held: the photo's answer before the next message's.
    expect(texts(from)).toEqual(['Send me a file.', got, 'You said: after the photo']);
    expect(graph.downloadAttempts.filter((id) => id === '900000000104')).toHaveLength(3);
    const stored = await running.hub.db.query('SELECT 1 FROM files WHERE size = $1', [photo.length]);
    expect(stored.rows).toHaveLength(1);
    expect(logged('file.inbound_fetch_retry', await envelopeIdOf(from)).map((l) => l.retryInMs)).toEqual([
      RETRY_DELAY_MS,
      RETRY_DELAY_MS,
    ]);
  });

  it('a download refused for good (403) is told at once: no retry, nothing delayed', async () => {
    const from = person();
    graph.addMedia('900000000106', Buffer.concat([KETTLE, Buffer.from(`redis-403-${from}`)]), 'image/png');
    graph.failDownloads('900000000106', Number.POSITIVE_INFINITY, 403);
    await post(
      cloudMessage(doc.imageMessage, from, 1, (m) => {
        m.image.id = '900000000106';
      }),
    );
    await until(
      () => texts(from),
      (t) => t.includes('You said: Taj Mahal'),
    );
    await settled(running.hub);
    expect(graph.downloadAttempts.filter((id) => id === '900000000106')).toHaveLength(1);
    expect(texts(from).filter((t) => t.includes('could not be fetched'))).toEqual([
      '"photo" could not be fetched from the chat service; please send it again',
    ]);
    const envelopeId = await envelopeIdOf(from);
    expect(logged('file.inbound_fetch_retry', envelopeId)).toEqual([]);
    expect(logged('file.inbound_unavailable', envelopeId)).toEqual([
      expect.objectContaining({ permanent: true }),
    ]);
    expect(await bull.getDelayedCount()).toBe(0);
  });

  it('always fails: tried 1 + ATTACHMENT_RETRY_ATTEMPTS times, then answered and the person told, one event', async () => {
    const from = person();
    graph.addMedia('900000000105', Buffer.concat([KETTLE, Buffer.from(`redis-down-${from}`)]), 'image/png');
    graph.failDownloads('900000000105', Number.POSITIVE_INFINITY, 504);
    await post(
      cloudMessage(doc.imageMessage, from, 1, (m) => {
        m.image.id = '900000000105';
      }),
    );
    for (let i = 0; i < running.hub.config.attachmentRetryAttempts; i++) await promoteRetry();
    await until(
      () => texts(from),
      (t) => t.includes('You said: Taj Mahal'),
    );
    await settled(running.hub);
    expect(graph.downloadAttempts.filter((id) => id === '900000000105')).toHaveLength(
      1 + running.hub.config.attachmentRetryAttempts,
    );
    expect(texts(from).filter((t) => t.includes('could not be fetched'))).toEqual([
      '"photo" could not be fetched from the chat service; please send it again',
    ]);
    const envelopeId = await envelopeIdOf(from);
    expect(logged('file.inbound_unavailable', envelopeId)).toHaveLength(1);
    expect(logged('queue.envelope_failed', envelopeId)).toEqual([]);
  });
});
