import type { BotRegistry } from '../config/bots.ts';
import { type Channel, type Envelope, identityOfNativeKey } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { Ingress } from '../ports.ts';
import { millis, nowOr } from '../store/clock.ts';
import type { Db } from '../store/db.ts';
import { IDLE_END_REASON } from './rules.ts';

/** The scheduler's job name (and repeat id) of the sweep. */
export const IDLE_SWEEP_JOB = 'idle-sweep';
/** Sessions looked at per statement. */
export const IDLE_SWEEP_BATCH = 500;

export interface IdleSweepDeps {
  db: Db;
  bots: BotRegistry;
  ingress: Ingress;
  logger: Logger;
}

interface OpenRow {
  id: string;
  bot: string;
  channel: Channel;
  native_key: string;
  last_activity_at: Date | string;
  /** The same at the database's full precision: the next batch starts after it. */
  cursor: string;
  /** How long it has been idle, on the database's clock (exact: no millisecond rounding). */
  idle_ms: number;
}

/**
 * The last activity an idle sweep's end saw (`end.idleSince`), or undefined for any other end.
 * The engine ends the session only if that is still its last activity when the end's turn comes
 * (a message queued before the end keeps the session open).
 */
export function idleSinceOf(envelope: Pick<Envelope, 'kind' | 'end'>): string | undefined {
  return envelope.kind === 'end' && envelope.end?.reason === IDLE_END_REASON
    ? envelope.end.idleSince
    : undefined;
}

/**
 * Ends every session idle for longer than its bot allows on its channel, through its lane: an
 * `end` envelope queued behind whatever the session already has in flight, so its
 * `ON SESSION END` runs in the engine like any end, in order. A token session (REST, web) keeps
 * its token: the person's next message starts a new session with it, as after any idle-out.
 * The end's turn records the `session.idle` event (src/engine/turn.ts), with its other events.
 *
 * A session waiting for an agent or held by one is left alone, however quiet the person is: the
 * agent may be writing or looking something up, and an agent's message is not the person's
 * activity. The handoff's own bounds end it (the wait timeout, the agent going offline, a
 * release); its `transfer_end` turn counts as activity, so the idle clock starts again there.
 *
 * Safe to run twice at once or again before the ends are handled: an end's id is made of the
 * session and the last activity it saw, so the queue takes each once.
 *
 * Idleness is measured on the database's clock, which stamped the activity (see store/clock.ts);
 * `now` runs the sweep at another time instead (tests).
 */
export async function sweepIdleSessions(deps: IdleSweepDeps, now?: Date): Promise<number> {
  const { db, bots, ingress, logger } = deps;
  const shortest = Math.min(...[...bots.names(), undefined].flatMap((bot) => idleTimeouts(bots, bot)));
  let queued = 0;
  let after: { at: string; id: string } | undefined;
  for (;;) {
    const { rows } = await db.query<OpenRow>(
      `SELECT id, bot, channel, native_key, last_activity_at, last_activity_at::text AS cursor,
         (extract(epoch FROM ${nowOr('$5')} - last_activity_at) * 1000)::float8 AS idle_ms
       FROM sessions
       WHERE ended_at IS NULL AND last_activity_at < ${nowOr('$5')} - ${millis('$1')} AND parent_id IS NULL
         AND ($2::timestamptz IS NULL OR (last_activity_at, id) > ($2::timestamptz, $3::uuid))
         AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.session_id = sessions.id AND h.state <> 'ended')
       ORDER BY last_activity_at, id LIMIT $4`,
      [shortest, after?.at ?? null, after?.id ?? null, IDLE_SWEEP_BATCH, now ?? null],
    );
    for (const row of rows) {
      const lastActivityAt = new Date(row.last_activity_at).toISOString();
      if (row.idle_ms <= bots.rules(row.bot, row.channel).idleTimeoutMs) continue;
      const { status } = await ingress.accept({
        id: `${row.channel}:${row.id}:idle:${Date.parse(lastActivityAt)}`,
        kind: 'end',
        channel: row.channel,
        bot: row.bot,
        ...identityOfNativeKey(row.native_key),
        text: '',
        meta: {},
        end: { reason: IDLE_END_REASON, idleSince: lastActivityAt },
        receivedAt: (now ?? new Date()).toISOString(),
      });
      if (status !== 'accepted') continue;
      queued++;
      logger.info({
        event: 'session.idle_out',
        sessionId: row.id,
        bot: row.bot,
        channel: row.channel,
        by: 'sweep',
      });
    }
    if (rows.length < IDLE_SWEEP_BATCH) break;
    const last = rows[rows.length - 1]!;
    after = { at: last.cursor, id: last.id };
  }
  if (queued > 0) logger.info({ event: 'idle_sweep.done', queued });
  return queued;
}

/** A bot's idle timeouts on every channel it names, and its default (undefined: the hub's defaults). */
function idleTimeouts(bots: BotRegistry, bot: string | undefined): number[] {
  if (bot === undefined) return [bots.defaultRules().idleTimeoutMs];
  const channels = Object.keys(bots.get(bot).settings.sessions.channels) as Channel[];
  return [bots.rules(bot), ...channels.map((c) => bots.rules(bot, c))].map((r) => r.idleTimeoutMs);
}
