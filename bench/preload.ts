/**
 * A database the size of a hub that has run for a while: 100,000 sessions and 1,000,000 history
 * rows by default, written by PostgreSQL itself (INSERT … SELECT over generate_series, in chunks),
 * so it takes seconds, not a client's round trips. Used by `npm run bench -- size` and by anyone
 * who wants to time queries on realistic volumes (the dashboard).
 *
 *   node --import tsx bench/preload.ts [--sessions 100000] [--messages 1000000] [--days 30]
 *
 * against DATABASE_URL (migrated first), or the embedded database under DATA_DIR when it is unset.
 *
 * What it writes, deterministically (running it twice adds nothing the second time):
 * - sessions spread evenly over the last `days` days, channels in turn whatsapp, web, api, teams,
 *   email; bots `default` (two in three) and `support`;
 * - for whatsapp, teams and email sessions a user with that channel identity; web and api sessions
 *   older than the default anonymous retention (7 days) signed in (a user, `authenticated`);
 * - every session idle for longer than the default idle timeout (30 minutes) ended ('idle');
 * - `messages / sessions` history rows per session, person and bot in turn (user rows with an
 *   envelope id, bot rows answering them, delivered), 30 seconds apart;
 * - one session_state row per session.
 * So the data is what a hub with the default rules holds after running that long: its hourly
 * expiry would have deleted anonymous sessions past their retention, and its idle sweep (every
 * minute) ended the idle ones. A preload that left them would have a hub started on it spend its
 * first minute on that backlog (~30,000 sessions and ~300,000 messages deleted 30 s after start,
 * ~3,300 end turns), in the middle of whatever is being measured.
 * Native ids are the channel's own shape with a prefix that no benchmark or test uses
 * (`+1666…`, `preload-…`), so the bench's own sessions never meet them.
 */
import { parseArgs } from 'node:util';
import type { Queryable } from '../src/store/db.ts';

export interface PreloadOptions {
  sessions?: number;
  messages?: number;
  /** Sessions are spread over this many days back from now. */
  days?: number;
  /** Sessions per statement. */
  chunk?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface PreloadResult {
  sessions: number;
  messages: number;
  seconds: number;
}

/** The hub's default rules (src/config/bots.ts, src/lifecycle/rules.ts), as the data would have met them. */
const ANONYMOUS_RETENTION = `interval '7 days'`;
const IDLE_TIMEOUT = `interval '30 minutes'`;

const CHANNELS = `(ARRAY['whatsapp','web','api','teams','email'])[1 + i % 5]`;

/** Writes the data (see the module comment) through `db`, a migrated database. */
export async function preload(db: Queryable, options: PreloadOptions = {}): Promise<PreloadResult> {
  const sessions = options.sessions ?? 100_000;
  const messages = options.messages ?? 1_000_000;
  const days = options.days ?? 30;
  const chunk = options.chunk ?? 10_000;
  const perSession = Math.max(1, Math.round(messages / sessions));
  const started = performance.now();
  const spanSeconds = days * 86_400;

  for (let lo = 0; lo < sessions; lo += chunk) {
    const hi = Math.min(sessions, lo + chunk) - 1;
    // One CTE per chunk: the rows of sessions lo..hi, and their derived columns.
    const rows = `
      WITH s AS (
        SELECT i,
               md5('preload-session-' || i)::uuid AS id,
               md5('preload-user-' || i)::uuid AS user_id,
               ${CHANNELS} AS channel,
               CASE WHEN i % 3 = 2 THEN 'support' ELSE 'default' END AS bot,
               now() - make_interval(secs => $3::float8 * ($4::int - i) / $4::int) AS created_at
          FROM generate_series($1::int, $2::int) AS i
      ), k0 AS (
        SELECT s.*,
               CASE channel
                 WHEN 'whatsapp' THEN '+1666' || lpad(i::text, 7, '0')
                 WHEN 'web' THEN md5('preload-web-' || i)::uuid::text
                 WHEN 'api' THEN id::text
                 WHEN 'teams' THEN '29:preload-' || i
                 ELSE 'preload-' || i || '@example.com'
               END AS native_key,
               channel IN ('whatsapp', 'teams', 'email') AS identified,
               created_at + make_interval(secs => 30 * $5::int) AS last_activity_at
          FROM s
      ), k AS (
        -- Signed in: an identified channel, or a session older than the anonymous retention.
        SELECT k0.*, identified OR last_activity_at < now() - ${ANONYMOUS_RETENTION} AS signed_in FROM k0
      )`;
    const params = [lo, hi, spanSeconds, sessions, perSession];
    await db.query(
      `${rows}
       INSERT INTO users (id, display_name, created_at, updated_at)
       SELECT user_id, 'Person ' || i, created_at, created_at FROM k WHERE signed_in
       ON CONFLICT (id) DO NOTHING`,
      params,
    );
    await db.query(
      `${rows}
       INSERT INTO user_identities (channel, native_id, user_id, created_at)
       SELECT channel, native_key, user_id, created_at FROM k WHERE identified
       ON CONFLICT (channel, native_id) DO NOTHING`,
      params,
    );
    await db.query(
      `${rows}
       INSERT INTO sessions (id, bot, channel, native_key, user_id, auth_level, meta, created_at,
                             last_activity_at, expires_at, ended_at, end_reason, message_count, last_seq)
       SELECT id, bot, channel, native_key, CASE WHEN signed_in THEN user_id END,
              CASE WHEN signed_in THEN 'authenticated' ELSE 'anonymous' END, '{"preload": true}',
              created_at, last_activity_at,
              CASE WHEN signed_in THEN NULL ELSE last_activity_at + ${ANONYMOUS_RETENTION} END,
              CASE WHEN last_activity_at < now() - ${IDLE_TIMEOUT} THEN last_activity_at + ${IDLE_TIMEOUT} END,
              CASE WHEN last_activity_at < now() - ${IDLE_TIMEOUT} THEN 'idle' END,
              ($5::int + 1) / 2, $5::int
         FROM k
       ON CONFLICT (id) DO NOTHING`,
      params,
    );
    await db.query(
      `${rows}
       INSERT INTO session_state (session_id, variables, version, updated_at)
       SELECT id, jsonb_build_object('visits', 1 + i % 4), $5::int, last_activity_at FROM k
       ON CONFLICT (session_id) DO NOTHING`,
      params,
    );
    await db.query(
      `${rows}
       INSERT INTO messages (session_id, seq, role, content, envelope_id, in_reply_to, delivery_status,
                             created_at, updated_at)
       SELECT id, n,
              CASE WHEN n % 2 = 1 THEN 'user' ELSE 'assistant' END,
              CASE WHEN n % 2 = 1 THEN 'question ' || (n + 1) / 2 || ' from person ' || i
                   ELSE 'answer ' || n / 2 || ' to person ' || i END,
              CASE WHEN n % 2 = 1 THEN channel || ':preload.' || i || '.' || n END,
              CASE WHEN n % 2 = 0 THEN channel || ':preload.' || i || '.' || (n - 1) END,
              CASE WHEN n % 2 = 1 THEN 'received' ELSE 'delivered' END,
              created_at + make_interval(secs => 30 * n),
              created_at + make_interval(secs => 30 * n)
         FROM k, generate_series(1, $5::int) AS n
       ON CONFLICT DO NOTHING`,
      params,
    );
    options.onProgress?.(hi + 1, sessions);
  }
  await db.query('ANALYZE users, user_identities, sessions, session_state, messages');
  return {
    sessions,
    messages: sessions * perSession,
    seconds: (performance.now() - started) / 1000,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      sessions: { type: 'string', default: '100000' },
      messages: { type: 'string', default: '1000000' },
      days: { type: 'string', default: '30' },
    },
  });
  const { loadConfig } = await import('../src/config/env.ts');
  const { createLogger } = await import('../src/logger.ts');
  const { openDatabase } = await import('../src/hub.ts');
  const { migrate } = await import('../src/store/migrate.ts');
  const logger = createLogger('warn');
  const db = await openDatabase(loadConfig(process.env), logger);
  try {
    await migrate(db, logger);
    const result = await preload(db, {
      sessions: Number(values.sessions),
      messages: Number(values.messages),
      days: Number(values.days),
      onProgress: (done, total) => process.stderr.write(`\rpreload: ${done}/${total} sessions`),
    });
    process.stderr.write('\n');
    console.log(
      `preloaded ${result.sessions.toLocaleString('en-US')} sessions and ${result.messages.toLocaleString('en-US')} messages in ${result.seconds.toFixed(1)} s`,
    );
  } finally {
    await db.close();
  }
}
