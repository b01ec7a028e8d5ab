import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { noMoreArguments, UsageError } from './cli-usage.ts';
import { loadConfig } from './config/env.ts';
import { OUTBOUND_QUEUE } from './delivery/redis-outbox.ts';
import { redisDependency, untilAnswers } from './dependencies.ts';
import { openDatabase } from './hub.ts';
import { commandLogger, type Logger } from './logger.ts';
import { LaneRunner } from './queue/lane-runner.ts';
import { formatLaneQueueStatus, inboxQueueStatus } from './queue/lane-status.ts';
import { createRedisLaneQueue, INBOUND_QUEUE } from './queue/redis-lane-queue.ts';
import { RedisLanes } from './queue/redis-lanes.ts';
import { connectRedis } from './redis.ts';
import { createBullmqScheduler } from './scheduler/bullmq-scheduler.ts';
import { schedulerCommand } from './scheduler/cli.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import { createTableScheduler } from './scheduler/table-scheduler.ts';
import type { Db } from './store/db.ts';
import { failedInbox, inboxCounts, requeueFailedInbox } from './store/inbox.ts';
import { failedReplies, requeueFailedReplies } from './store/messages.ts';
import { webhooksCommand } from './webhooks/cli.ts';

type OperatorOption = 'json' | 'session' | 'id';

/** Each area's actions, the options each takes, and whether it takes ids (`scheduler replay [ID…]`). */
const OPERATOR_ACTIONS: Readonly<
  Record<string, Readonly<Record<string, { options: readonly OperatorOption[]; ids?: true }>>>
> = {
  queue: { status: { options: ['json'] }, failed: { options: ['json'] }, replay: { options: [] } },
  outbox: { failed: { options: ['json'] }, replay: { options: ['session'] } },
  webhooks: { failed: { options: ['json'] }, replay: { options: ['id'] } },
  scheduler: { failed: { options: ['json'] }, replay: { options: [], ids: true } },
};

export interface OperatorArguments {
  action: string;
  session?: string;
  json?: boolean;
  id?: string;
  ids?: readonly string[];
}

/**
 * `switchboard <area> <action> [options]` read and checked before anything is opened: an unknown
 * action, an option the action does not take or an argument too many is a UsageError.
 */
export function parseOperatorArguments(area: string, args: string[]): OperatorArguments {
  const actions = OPERATOR_ACTIONS[area];
  if (!actions) throw new UsageError(`unknown area "${area}": use queue, outbox, webhooks or scheduler`);
  const { values, positionals } = parseArgs({
    args,
    options: { session: { type: 'string' }, id: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
  const [action = '', ...rest] = positionals;
  const names = Object.keys(actions);
  const spec = actions[action];
  if (!spec)
    throw new UsageError(
      `${action ? `unknown action "${area} ${action}"` : `${area} needs an action`}: use ${names.slice(0, -1).join(', ')}${names.length > 1 ? ' or ' : ''}${names.at(-1)}`,
    );
  for (const option of Object.keys(values) as OperatorOption[])
    if (!spec.options.includes(option)) throw new UsageError(`${area} ${action} takes no --${option}`);
  if (!spec.ids) noMoreArguments(`${area} ${action}`, rest);
  return { action, ...values, ids: rest };
}

/**
 * Operator commands: what the pipeline set aside, and putting it back. Envelopes that kept
 * failing are in the queue's dead letters (Redis) or marked failed in the inbox (embedded);
 * replies that exhausted their delivery attempts are `failed` in PostgreSQL; scheduled jobs that
 * failed their last attempt are in BullMQ's failed set (Redis) or marked failed in their table.
 */
export async function runOperatorCommand(area: string, args: OperatorArguments): Promise<number> {
  const { action } = args;
  const config = loadConfig();
  const logger = commandLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  // It answered (openDatabase asks): a server that does not fails the command, naming it.
  const db = await openDatabase(config, logger);
  const out = (rows: unknown[]) => {
    if (args.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else
      for (const row of rows)
        process.stdout.write(
          `${Object.values(row as object)
            .map(String)
            .join('\t')}\n`,
        );
  };
  try {
    if (area === 'outbox') return await outbox(db, action, args, out);
    if (area === 'queue' && action === 'status') return await queueStatus(db, config, args, logger);
    if (area === 'queue') return await queue(db, config, action, out, logger);
    if (area === 'webhooks') return await webhooksCommand(db, action, args, out);
    if (area === 'scheduler') {
      const opened = await openScheduler(db, config, logger);
      try {
        return await schedulerCommand(opened.scheduler, action, args, out);
      } finally {
        await opened.close();
      }
    }
    process.stderr.write(`unknown area "${area}": use queue, outbox, webhooks or scheduler\n`);
    return 2;
  } finally {
    await db.close();
  }
}

/**
 * A connection to the hub's Redis once it answered, within DEPENDENCY_TIMEOUT_SECONDS: BullMQ
 * waits for its connection without limit, and a command would hang while Redis is away.
 */
async function connectAnswering(
  redisUrl: string,
  config: ReturnType<typeof loadConfig>,
  logger: Logger,
): Promise<Redis> {
  // Until it answers, its errors are the command's failure, said once (a DependencyError on
  // stderr): not a warning line too. Once it answered, losing it is one (`redis.error`).
  const connectionLogger = logger.child({}, { level: 'silent' });
  const redis = connectRedis(redisUrl, connectionLogger, 'switchboard-operator');
  try {
    await untilAnswers(redisDependency(redisUrl, redis), {
      timeoutMs: config.dependencyTimeoutMs,
      retry: false,
    });
    connectionLogger.level = logger.level;
    return redis;
  } catch (err) {
    redis.disconnect();
    throw err;
  }
}

/** The hub's durable scheduler, as its processes open it (never started: it runs no job here). */
async function openScheduler(
  db: Db,
  config: ReturnType<typeof loadConfig>,
  logger: Logger,
): Promise<{ scheduler: Scheduler; close(): Promise<void> }> {
  const { redisUrl } = config;
  if (!redisUrl) {
    const scheduler = createTableScheduler({ db, logger });
    return { scheduler, close: () => scheduler.stop() };
  }
  const redis = await connectAnswering(redisUrl, config, logger);
  const scheduler = createBullmqScheduler({ redis, redisUrl, prefix: config.redisPrefix, logger });
  return {
    scheduler,
    async close() {
      await scheduler.stop();
      redis.disconnect();
    },
  };
}

async function outbox(
  db: Db,
  action: string,
  args: { session?: string },
  out: (rows: unknown[]) => void,
): Promise<number> {
  if (action === 'failed') {
    const rows = await failedReplies(db, 1000);
    out(
      rows.map((m) => ({
        session: m.sessionId,
        seq: m.seq,
        bot: m.bot,
        channel: m.channel,
        attempts: m.deliveryAttempts,
        error: m.deliveryError,
        text: m.content.slice(0, 60),
      })),
    );
    return 0;
  }
  if (action === 'replay') {
    const sessions = await requeueFailedReplies(db, args.session);
    process.stdout.write(
      `requeued the failed replies of ${sessions.length} session(s); the workers send them within a minute\n`,
    );
    return 0;
  }
  process.stderr.write(`unknown action "outbox ${action}": use failed or replay\n`);
  return 2;
}

/**
 * `switchboard queue status`: what the queues hold now. With Redis, both shared queues (their
 * lanes, wake jobs and claims: `src/queue/lane-status.ts`); embedded, the inbox's envelopes. As
 * text, a last line counts the scheduled jobs set aside (`switchboard scheduler failed`); the
 * JSON stays one entry a queue (`GET /api/admin/queue` has the count as `scheduler`).
 */
async function queueStatus(
  db: Db,
  config: ReturnType<typeof loadConfig>,
  args: { json?: boolean },
  logger: Logger,
): Promise<number> {
  const code = await queuesStatus(db, config, args, logger);
  if (code === 0 && !args.json) {
    const opened = await openScheduler(db, config, logger);
    try {
      const failed = await opened.scheduler.countFailed();
      process.stdout.write(
        `scheduler (${opened.scheduler.driver}): ${failed} job(s) set aside${failed > 0 ? ' (switchboard scheduler failed)' : ''}\n`,
      );
    } finally {
      await opened.close();
    }
  }
  return code;
}

async function queuesStatus(
  db: Db,
  config: ReturnType<typeof loadConfig>,
  args: { json?: boolean },
  logger: Logger,
): Promise<number> {
  const { redisUrl } = config;
  if (!redisUrl) {
    const status = inboxQueueStatus(await inboxCounts(db));
    process.stdout.write(
      args.json
        ? `${JSON.stringify([status], null, 2)}\n`
        : `${status.queue} (embedded): ${status.depth} queued; ${status.deadLetters} set aside\n`,
    );
    return 0;
  }
  const redis = await connectAnswering(redisUrl, config, logger);
  // Each queue's lane runner, never started: it reads its lanes and wake jobs as a worker's does.
  const runners = [INBOUND_QUEUE, OUTBOUND_QUEUE].map(
    (name) =>
      new LaneRunner({
        name,
        redisUrl,
        prefix: config.redisPrefix,
        lanes: new RedisLanes(redis, { prefix: config.redisPrefix, name }),
        logger,
        connection: redis,
      }),
  );
  try {
    const statuses = await Promise.all(runners.map((runner) => runner.status()));
    process.stdout.write(
      args.json
        ? `${JSON.stringify(statuses, null, 2)}\n`
        : statuses.map((s) => `${formatLaneQueueStatus(s)}\n`).join(''),
    );
    return 0;
  } finally {
    await Promise.all(runners.map((runner) => runner.stop()));
    redis.disconnect();
  }
}

async function queue(
  db: Db,
  config: ReturnType<typeof loadConfig>,
  action: string,
  out: (rows: unknown[]) => void,
  logger: Logger,
): Promise<number> {
  if (!config.redisUrl) {
    if (action === 'failed') {
      out(
        (await failedInbox(db)).map((e) => ({
          envelope: e.envelope.id,
          attempts: e.attempts,
          error: e.lastError,
        })),
      );
      return 0;
    }
    if (action === 'replay') {
      process.stdout.write(
        `requeued ${await requeueFailedInbox(db)} envelope(s); the hub picks them up within a minute\n`,
      );
      return 0;
    }
  } else {
    const redis = await connectAnswering(config.redisUrl, config, logger);
    const q = createRedisLaneQueue({
      redis,
      redisUrl: config.redisUrl,
      prefix: config.redisPrefix,
      logger,
      concurrency: 1,
    });
    try {
      if (action === 'failed') {
        out(
          (await q.deadLetters()).map((d) => ({
            envelope: (JSON.parse(d.item) as { id: string }).id,
            attempts: d.attempts,
            at: d.at,
            error: d.error,
          })),
        );
        return 0;
      }
      if (action === 'replay') {
        process.stdout.write(`requeued ${await q.replayDeadLetters()} envelope(s)\n`);
        return 0;
      }
    } finally {
      await q.stop();
      redis.disconnect();
    }
  }
  process.stderr.write(`unknown action "queue ${action}": use status, failed or replay\n`);
  return 2;
}
