import type { Queryable } from './db.ts';

export async function getBotMemory(q: Queryable, bot: string, key: string): Promise<unknown> {
  const { rows } = await q.query<{ value: unknown }>(
    'SELECT value FROM bot_memory WHERE bot = $1 AND key = $2',
    [bot, key],
  );
  return rows[0]?.value ?? null;
}

export async function getUserMemory(q: Queryable, userId: string, key: string): Promise<unknown> {
  const { rows } = await q.query<{ value: unknown }>(
    'SELECT value FROM user_memory WHERE user_id = $1 AND key = $2',
    [userId, key],
  );
  return rows[0]?.value ?? null;
}
