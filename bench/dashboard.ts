/**
 * `npm run bench -- dashboard`: the operator dashboard's queries (issue 25) on a database preloaded
 * like the `size` part (bench/preload.ts: 100,000 sessions, 1,000,000 messages over 30 days):
 * each analytics metric for 24 hours by hour and 30 days by day — the first call (which rolls up
 * the closed buckets) and the median of five after it — then transcript search and the audit log.
 * Target: every dashboard query under 200 ms once rolled up.
 *
 *   node --import tsx bench/dashboard.ts     (or through bench/run.ts)
 *
 * Environment: BENCH_DATABASE_URL (a server to create a scratch database on),
 * BENCH_PRELOAD_SESSIONS, BENCH_PRELOAD_MESSAGES.
 */
import { analytics, METRICS } from '../src/analytics/metrics.ts';
import { bucketEnd, bucketStart, clearLiveRows, type Grain } from '../src/analytics/rollup.ts';
import { searchMessages } from '../src/analytics/transcripts.ts';
import { createLogger } from '../src/logger.ts';
import { listAudit, recordAudit } from '../src/store/audit.ts';
import { migrate } from '../src/store/migrate.ts';
import { openPostgres } from '../src/store/postgres.ts';
import { withDatabase } from './database.ts';
import { preload } from './preload.ts';

const SESSIONS = Number(process.env.BENCH_PRELOAD_SESSIONS ?? 100_000);
const MESSAGES = Number(process.env.BENCH_PRELOAD_MESSAGES ?? 1_000_000);
const TARGET_MS = 200;
const DAY_MS = 86_400_000;
const silent = createLogger('silent');

export interface DashboardTiming {
  query: string;
  firstMs: number;
  medianMs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(fn: () => Promise<unknown>): Promise<number> {
  // Each query computes its open buckets itself (the hub shares them between requests for 2 s).
  clearLiveRows();
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function measure(query: string, fn: () => Promise<unknown>): Promise<DashboardTiming> {
  const firstMs = await time(fn);
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) runs.push(await time(fn));
  return { query, firstMs, medianMs: median(runs) };
}

export async function runDashboardBench(): Promise<DashboardTiming[]> {
  return withDatabase(async (url) => {
    const db = openPostgres({ url, poolSize: 2, logger: silent });
    try {
      await migrate(db, silent);
      const loaded = await preload(db, { sessions: SESSIONS, messages: MESSAGES });
      console.error(
        `preload: ${loaded.sessions} sessions, ${loaded.messages} messages in ${loaded.seconds.toFixed(1)} s`,
      );
      await db.query('ANALYZE');
      const timings: DashboardTiming[] = [];
      const now = Date.now();
      const ranges: [string, Grain, number, number][] = [
        ['24 h by hour', 'hour', bucketEnd(now, 'hour') - DAY_MS, bucketEnd(now, 'hour')],
        ['30 days by day', 'day', bucketStart(now - 29 * DAY_MS, 'day'), bucketEnd(now, 'day')],
      ];
      for (const [label, bucket, from, to] of ranges) {
        for (const metric of METRICS) {
          timings.push(
            await measure(`${metric}, ${label}`, () => analytics(db, { metric, bucket, from, to })),
          );
        }
        timings.push(
          await measure(`messages, ${label}, bot support`, () =>
            analytics(db, { metric: 'messages', bot: 'support', bucket, from, to }),
          ),
        );
        // What the page does: all nine charts at once, the open buckets computed once for them.
        timings.push(
          await measure(`the whole dashboard (nine charts at once), ${label}`, () =>
            Promise.all(METRICS.map((metric) => analytics(db, { metric, bucket, from, to }))),
          ),
        );
      }
      timings.push(
        await measure('search a rare word ("4242")', () => searchMessages(db, { text: '4242', limit: 50 })),
      );
      timings.push(
        await measure('search a rare word in one channel, last 7 days', () =>
          searchMessages(db, {
            text: '4242',
            channel: 'whatsapp',
            from: new Date(now - 7 * DAY_MS),
            limit: 50,
          }),
        ),
      );
      timings.push(
        await measure('search a word in half the messages ("question")', () =>
          searchMessages(db, { text: 'question', limit: 50 }),
        ),
      );
      for (let i = 0; i < 10_000; i += 1_000) {
        await db.query(
          `INSERT INTO transcript_reads (actor, action, session_id, via, ip, at)
         SELECT 'operator', 'transcript.read', md5('preload-session-' || g)::uuid, 'admin-api', '127.0.0.1',
                now() - make_interval(secs => g) FROM generate_series($1::int, $2::int) AS g`,
          [i, i + 999],
        );
      }
      await recordAudit(db, {
        actor: 'operator',
        agentId: null,
        action: 'transcript.read',
        sessionId: null,
        via: 'admin-api',
        ip: null,
        userAgent: null,
      });
      timings.push(await measure('audit log, newest 100 of 10,000', () => listAudit(db, { limit: 100 })));
      return timings;
    } finally {
      await db.close();
    }
  });
}

export function dashboardLines(timings: DashboardTiming[]): string[] {
  return timings.map(
    (t) =>
      `- ${t.query}: first ${t.firstMs.toFixed(0)} ms, then ${t.medianMs.toFixed(0)} ms (target < ${TARGET_MS} ms): ${t.medianMs < TARGET_MS ? 'met' : 'MISSED'}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const timings = await runDashboardBench();
  console.log(
    `\nDashboard queries, ${SESSIONS.toLocaleString('en-US')} sessions / ${MESSAGES.toLocaleString('en-US')} messages:\n`,
  );
  for (const line of dashboardLines(timings)) console.log(line);
}
