import { Hono } from 'hono';
import { z } from 'zod';
import { recordAudit } from '../store/audit.ts';
import type { Db } from '../store/db.ts';
import { contextAddress } from './client-address.ts';
import { ApiError, parseInput as parse } from './errors.ts';

const Params = z.object({ id: z.uuid() });
export const DebugQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

/**
 * `GET /api/admin/sessions/{id}/debug`: the session's debug log, oldest first — what `DEBUG SHOW`
 * (ctx.sessions.debugShow) wrote, its sub-sessions' included. Paged by entry id (`after`).
 * Mounted behind the operator token with the rest of `/api/admin`. Snapshots hold the session's
 * variables and context: every read is in the audit log (`session.debug`), like a transcript's.
 */
export function adminDebugRoutes(db: Db, trustProxy: number): Hono {
  const app = new Hono();
  app.get('/api/admin/sessions/:id/debug', async (c) => {
    const { id } = parse(Params, c.req.param());
    const { after, limit } = parse(DebugQuery, c.req.query());
    const { rows: found } = await db.query('SELECT 1 FROM sessions WHERE id = $1', [id]);
    if (found.length === 0) throw new ApiError(404, 'not_found', `there is no session ${id}`);
    // Written before the snapshots leave: a read that is not in the audit log did not happen.
    await recordAudit(db, {
      actor: 'operator',
      agentId: null,
      action: 'session.debug',
      sessionId: id,
      via: 'admin-api',
      ip: contextAddress(c, trustProxy) ?? null,
      userAgent: c.req.header('user-agent') ?? null,
    });
    const { rows } = await db.query<{ id: string; data: Record<string, unknown>; created_at: Date | string }>(
      `SELECT id, data, created_at FROM session_events
       WHERE session_id = $1 AND type = 'session.debug' AND id > $2 ORDER BY id LIMIT $3`,
      [id, after, limit],
    );
    const entries = rows.map((r) => ({
      id: Number(r.id),
      topic: r.data.topic ?? null,
      snapshot: r.data.snapshot ?? null,
      ...(r.data.subSessionId ? { sub_session_id: r.data.subSessionId } : {}),
      created_at: r.created_at instanceof Date ? r.created_at.toISOString() : String(r.created_at),
    }));
    return c.json({ session_id: id, entries, next_after: entries.at(-1)?.id ?? after });
  });
  return app;
}
