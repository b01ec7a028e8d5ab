import fs from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.ts';
import { tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { apiClient } from '../helpers/hub.ts';
import { TestPostgresServer } from '../helpers/postgres-server.ts';
import { until } from '../helpers/until.ts';

const SESSIONS = 30;
const MESSAGES = 20;

describe('PostgreSQL goes away for a few seconds mid-run', () => {
  let server: TestPostgresServer;
  let dir: string;
  const cluster = new Cluster();

  beforeAll(async () => {
    dir = await tempDir('sbt-pg-');
    server = new TestPostgresServer(await freePort(), `${dir}/data`);
    server.init();
    server.start();
    await cluster.init(undefined, server.adminUrl);
    await cluster.addGateway();
    await cluster.addWorker();
  }, 180_000);

  afterAll(async () => {
    await cluster.stop().catch(() => undefined);
    try {
      server.stop();
    } catch {
      // already stopped
    }
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reports not-ready, keeps running, and processes every accepted message once it is back', async () => {
    const gateway = cluster.gateways[0]!;
    const api = apiClient(gateway.url);
    const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => api.createSession()));
    let sent = 0;
    let outage: Promise<void> | undefined;
    const notReady = new Set<number | undefined>();
    await Promise.all(
      sessions.map(async (s) => {
        for (let n = 0; n < MESSAGES; n++) {
          // Like a platform: resend what was not accepted, with the same id, until it is.
          await until(
            () => api.chat(s.token, `m${n}`, { message_id: `m${n}` }, '?wait=false').catch(() => undefined),
            (res) => res?.status === 202,
            120_000,
            200,
          );
          if (++sent === Math.floor((SESSIONS * MESSAGES) / 3)) {
            outage = (async () => {
              server.stop();
              // The outage lasts until every process has noticed it (answered /readyz with 503).
              const processes = [gateway, ...cluster.workers];
              await until(
                async () => {
                  for (const p of processes) {
                    const r = await fetch(`${p.url}/readyz`).catch(() => undefined);
                    if (r?.status === 503) notReady.add(p.pid);
                  }
                  return notReady.size;
                },
                (size) => size === processes.length,
                60_000,
                300,
              );
              server.start();
            })();
          }
        }
      }),
    );
    await outage;
    expect(notReady.size).toBe(1 + cluster.workers.length);
    const db = new pg.Client({ connectionString: cluster.database!.url });
    await db.connect();
    try {
      const expected = SESSIONS * (2 + 2 * MESSAGES);
      const rows = await until(
        async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM messages')).rows[0]!.n,
        (n) => n >= expected,
        60_000,
        250,
      );
      expect(cluster.crashes()).toEqual([]);
      expect(rows).toBe(expected);
      for (const s of sessions) {
        const { rows: users } = await db.query<{ content: string }>(
          `SELECT content FROM messages WHERE session_id = $1 AND role = 'user' ORDER BY seq`,
          [s.session_id],
        );
        expect(users.map((u) => u.content)).toEqual(Array.from({ length: MESSAGES }, (_, n) => `m${n}`));
      }
    } finally {
      await db.end();
    }
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);
    expect(cluster.crashes()).toEqual([]);
  }, 300_000);
});
