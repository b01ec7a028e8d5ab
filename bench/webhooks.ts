/**
 * `npm run bench -- webhooks`: what the event webhooks' trigger on `messages` (issue 26) costs the
 * message insert, the hot path of every turn. In a scratch PostgreSQL database, `BENCH_WEBHOOK_ROWS`
 * reply rows are inserted into one session in one statement (the trigger fires once for the
 * statement since migration 0130, once per row before),
 * in a transaction rolled back after (so every case starts from the same table); the cases in
 * turn, seven rounds, the fastest run of each:
 *
 *   - trigger off: `messages_webhook_recorded` disabled (the floor);
 *   - no endpoint at all;
 *   - endpoints of another bot only (subscribed to `message.sent`): the case migrations 0041 and
 *     0042 fixed, and the same with 0026's trigger for comparison;
 *   - the session's own bot subscribed: the event really written to the outbox.
 *
 * Printed: microseconds per row, and the extra over the floor. Not asserted: figures depend on
 * the machine.
 *
 *   node --import tsx bench/webhooks.ts     (or through bench/run.ts)
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createLogger } from '../src/logger.ts';
import type { Queryable } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { openPostgres } from '../src/store/postgres.ts';
import { withDatabase } from './database.ts';

const ROWS = Number(process.env.BENCH_WEBHOOK_ROWS ?? 20_000);
const RUNS = 7;
const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

export interface WebhookTriggerTiming {
  case: string;
  usPerRow: number;
  extraUsPerRow: number;
}

/** 0026's `webhook_on_message` and its insert trigger, as they were before 0041 and 0042 (read from the migration, not copied). */
async function triggerOf0026(): Promise<string[]> {
  const sql = await fs.readFile(path.join(REPO, 'src/store/migrations/0026_event_webhooks.sql'), 'utf8');
  const between = (from: string, to: string) => {
    const start = sql.indexOf(from);
    return sql.slice(start, sql.indexOf(to, start) + to.length);
  };
  return [
    between('CREATE FUNCTION webhook_on_message()', 'END $$;').replace(
      'CREATE FUNCTION',
      'CREATE OR REPLACE FUNCTION',
    ),
    'DROP TRIGGER messages_webhook_recorded ON messages',
    between('CREATE TRIGGER messages_webhook_recorded', ';'),
  ];
}

export async function runWebhookTriggerBench(): Promise<WebhookTriggerTiming[]> {
  const silent = createLogger('silent');
  return withDatabase(async (url) => {
    const db = openPostgres({ url, poolSize: 2, logger: silent });
    try {
      await migrate(db, silent);
      const session = randomUUID();
      await db.query(
        `INSERT INTO sessions (id, bot, channel, native_key, expires_at) VALUES ($1, 'shop', 'api', $2, now() + interval '1 day')`,
        [session, `bench-${session}`],
      );
      const old = await triggerOf0026();
      const endpoint = (bot: string) => async (tx: Queryable) => {
        await tx.query(
          `INSERT INTO webhook_endpoints (endpoint, bot, url, events) VALUES ($1, $2, 'http://127.0.0.1:9/', '{message.sent}')`,
          [`${bot} bench`, bot],
        );
      };
      const cases: [string, (tx: Queryable) => Promise<void>][] = [
        [
          'trigger off',
          async (tx) =>
            void (await tx.query('ALTER TABLE messages DISABLE TRIGGER messages_webhook_recorded')),
        ],
        ['no endpoint at all', async () => {}],
        ['endpoints of another bot only', endpoint('other')],
        [
          'endpoints of another bot only, 0026 trigger',
          async (tx) => {
            for (const statement of old) await tx.query(statement);
            await endpoint('other')(tx);
          },
        ],
        ["the session's bot subscribed (event written)", endpoint('shop')],
      ];
      // The cases in turn, RUNS rounds: a busy moment of the machine hits every case alike; the
      // fastest run of each is its cost (noise only ever adds).
      const runs = cases.map(() => [] as number[]);
      for (let round = 0; round < RUNS; round++)
        for (const [i, [, setup]] of cases.entries()) {
          const ms = await db
            .transaction(async (tx) => {
              await setup(tx);
              const t = performance.now();
              await tx.query(
                `INSERT INTO messages (session_id, seq, role, content, delivery_status)
                 SELECT $1, g, 'assistant', 'Your order A-1043 is ready for pickup.', 'sent' FROM generate_series(1, $2) g`,
                [session, ROWS],
              );
              throw new Rollback(performance.now() - t);
            })
            .catch((err: unknown) => {
              if (err instanceof Rollback) return err.ms;
              throw err;
            });
          runs[i]!.push(ms);
        }
      const timings = cases.map(([name], i) => ({
        case: name,
        usPerRow: (Math.min(...runs[i]!) * 1000) / ROWS,
      }));
      const floor = timings[0]!.usPerRow;
      return timings.map((t) => ({ ...t, extraUsPerRow: t.usPerRow - floor }));
    } finally {
      await db.close();
    }
  });
}

/** Thrown to roll the measured transaction back, carrying its time. */
class Rollback extends Error {
  constructor(readonly ms: number) {
    super('rollback');
  }
}

export function webhookTriggerLines(timings: WebhookTriggerTiming[]): string[] {
  return timings.map(
    (t) =>
      `- ${t.case}: ${t.usPerRow.toFixed(2)} µs per message insert (${t.extraUsPerRow >= 0 ? '+' : ''}${t.extraUsPerRow.toFixed(2)} µs over the trigger off)`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(
    `Event webhook trigger on messages, ${ROWS.toLocaleString('en-US')} rows, median of ${RUNS}:\n`,
  );
  for (const line of webhookTriggerLines(await runWebhookTriggerBench())) console.log(line);
  process.exit(0);
}
