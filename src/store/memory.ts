import { prepared, type Queryable } from './db.ts';

const GET_BOT_MEMORY = prepared('get_bot_memory', 'SELECT value FROM bot_memory WHERE bot = $1 AND key = $2');
const GET_USER_MEMORY = prepared(
  'get_user_memory',
  'SELECT value FROM user_memory WHERE user_id = $1 AND key = $2',
);

export async function getBotMemory(q: Queryable, bot: string, key: string): Promise<unknown> {
  const { rows } = await q.query<{ value: unknown }>(GET_BOT_MEMORY, [bot, key]);
  return rows[0]?.value ?? null;
}

export async function getUserMemory(q: Queryable, userId: string, key: string): Promise<unknown> {
  const { rows } = await q.query<{ value: unknown }>(GET_USER_MEMORY, [userId, key]);
  return rows[0]?.value ?? null;
}
