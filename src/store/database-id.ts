import { randomUUID } from 'node:crypto';
import type { Db } from './db.ts';

/**
 * This database's id (`hub_identity`), made at the first start that asks: a random UUID, the
 * same for every process on this database, and kept by a dump and its restore. Not made by the
 * migration itself, since every embedded data directory starts as a copy of one migrated template.
 */
export async function databaseId(db: Db): Promise<string> {
  const read = async () =>
    (await db.query<{ database_id: string }>('SELECT database_id FROM hub_identity')).rows[0]?.database_id;
  const existing = await read();
  if (existing) return existing;
  // Processes starting together: the first insert wins, and every one reads the winner.
  await db.query('INSERT INTO hub_identity (database_id) VALUES ($1) ON CONFLICT DO NOTHING', [randomUUID()]);
  const id = await read();
  if (!id) throw new Error('hub_identity has no row after inserting one');
  return id;
}
