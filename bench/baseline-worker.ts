/**
 * The bare baseline's worker: plain BullMQ, one two-row INSERT per message, no session logic,
 * no ordering, no deduplication. What Switchboard's pipeline is measured against.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';

const env = process.env as Record<string, string>;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 10 });
// An idle client's connection ends when the bench drops its database at the end ("terminating
// connection due to administrator command"); without a listener that 'error' event is thrown
// and its stack printed. The pool drops the client either way; nothing to do.
pool.on('error', () => {});
const connection = new Redis(env.REDIS_URL!, { maxRetriesPerRequest: null });
const publisher = new Redis(env.REDIS_URL!);

const worker = new Worker(
  'baseline',
  async (job) => {
    const { s, t, id } = job.data as { s: string; t: string; id: string };
    await pool.query(
      'INSERT INTO bench_baseline (session, role, content) VALUES ($1, $2, $3), ($1, $4, $5)',
      [s, 'user', t, 'assistant', `echo ${t}`],
    );
    // The same notice Switchboard's engine publishes after its commit, so latency is measured alike.
    await publisher.publish(`${env.PREFIX}done`, id);
  },
  {
    connection,
    prefix: env.PREFIX,
    concurrency: Number(env.CONCURRENCY ?? 64),
    removeOnComplete: { count: 0 },
  },
);
worker.on('ready', () => process.stdout.write(`${JSON.stringify({ event: 'hub.started', port: 0 })}\n`));
process.on('SIGTERM', () => {
  void worker.close().then(() => process.exit(0));
});
