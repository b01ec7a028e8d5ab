import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { INBOUND_QUEUE } from '../../src/queue/redis-lane-queue.ts';
import { RedisLanes } from '../../src/queue/redis-lanes.ts';
import { type RunningHub, startTestHub } from './hub.ts';
import { TEST_REDIS_URL } from './redis.ts';
import { until } from './until.ts';

/** A wake job number BullMQ never had. */
export const GONE_WAKE = 999_999;

/**
 * Opens a session on a gateway and sends `text` through the API without waiting for the answer:
 * with no worker running, the session's start and the message wait in its lane. Answers the
 * session's authorization header.
 */
export async function queuedMessage(gatewayUrl: string, text: string): Promise<{ authorization: string }> {
  const opened = await fetch(`${gatewayUrl}/api/session`, { method: 'POST' });
  expect(opened.status).toBe(201);
  const { token } = (await opened.json()) as { token: string };
  const auth = { authorization: `Bearer ${token}` };
  const sent = await fetch(`${gatewayUrl}/api/chat?wait=false`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ text }),
  });
  expect(sent.status).toBe(202);
  return auth;
}

/** Waits until the session of `auth` has its answer (the person's message, then the bot's). */
export async function untilAnswered(gatewayUrl: string, auth: { authorization: string }): Promise<void> {
  const history = async () =>
    (await (await fetch(`${gatewayUrl}/api/session/messages`, { headers: auth })).json()) as {
      messages: unknown[];
    };
  await until(
    async () => (await history()).messages.length,
    (n) => n >= 2,
    20_000,
    50,
  );
}

/**
 * A queued message (`queuedMessage`, no worker running) whose session's lane is then stranded:
 * claimed by a wake job that never existed, with the wake job the accept added removed, as when
 * a run ends without releasing its claim. The lane then holds the session's start and the
 * message. Answers the session's authorization header.
 */
export async function strandedMessage(
  gatewayUrl: string,
  connection: Redis,
  prefix: string,
  text: string,
): Promise<{ authorization: string }> {
  const auth = await queuedMessage(gatewayUrl, text);
  const bull = new Queue(INBOUND_QUEUE, { connection, prefix: `${prefix}bull` });
  try {
    for (const job of await bull.getWaiting()) expect(await bull.remove(job.id!)).toBe(1);
  } finally {
    await bull.close();
  }
  const lanes = new RedisLanes(connection, { prefix, name: INBOUND_QUEUE });
  expect((await lanes.claim(GONE_WAKE, 32, 20)).lanes).toHaveLength(1);
  return auth;
}

/**
 * Starts a worker hub beside `gateway` (its database, Redis and prefix) that sweeps every 100 ms,
 * so it hands a stranded lane back at once, and waits until the session of `auth` has its
 * answer (the person's message, then the bot's). Answers the worker, for the caller to stop.
 */
export async function repairAndAnswer(
  gateway: RunningHub,
  prefix: string,
  auth: { authorization: string },
): Promise<RunningHub> {
  const worker = await startTestHub(
    {
      databaseUrl: gateway.hub.config.databaseUrl,
      redisUrl: TEST_REDIS_URL,
      redisPrefix: prefix,
      queueSweepMs: 100,
    },
    { role: 'worker' },
  );
  await untilAnswered(gateway.url, auth);
  return worker;
}
