import { describe, expect, it } from 'vitest';
import { analyzeStaleTables, isDue, MIN_PAGES, STATISTICS_TARGET } from '../../src/store/analyze.ts';
import type { Db } from '../../src/store/db.ts';
import { type Backend, useTestDb } from '../helpers/database.ts';
import { startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

interface Stats {
  last_analyze: Date | null;
  changed: number;
  reltuples: number;
}

async function stats(db: Db, table: string): Promise<Stats> {
  const { rows } = await db.query<Stats>(
    `SELECT t.last_analyze, t.n_mod_since_analyze AS changed, c.reltuples::float8 AS reltuples
     FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid WHERE t.relname = $1`,
    [table],
  );
  return rows[0]!;
}

/** A table of its own with autovacuum off for it, so the hub's rule applies whatever the server's setting. */
async function probeTable(db: Db, table: string): Promise<void> {
  await db.exec(`CREATE TABLE ${table} (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)`);
}

const insert = (db: Db, table: string, from: number, to: number) =>
  db.exec(`INSERT INTO ${table} SELECT i, repeat('x', 40) FROM generate_series(${from}, ${to}) i`);

const backends: Backend[] = ['postgres', 'pglite'];

describe.each(backends)('analysing stale tables on %s', (backend) => {
  let db: Db;
  useTestDb(backend, (opened) => {
    db = opened;
  });

  it('analyses a table after enough writes, and not again within the interval however much it changes', async () => {
    await probeTable(db, 'probe_grown');
    await insert(db, 'probe_grown', 1, 5_000);
    // The writes reach the statistics views when the writing backend reports them (within seconds).
    await until(
      () => analyzeStaleTables(db, { minIntervalMs: 60_000 }),
      (done) => done.some((t) => t.table === 'probe_grown'),
    );
    const first = await stats(db, 'probe_grown');
    expect(first.last_analyze).not.toBeNull();
    expect(first.reltuples).toBe(5_000);

    await insert(db, 'probe_grown', 5_001, 20_000);
    await until(
      () => stats(db, 'probe_grown'),
      (s) => Number(s.changed) >= 15_000,
    );
    expect((await analyzeStaleTables(db, { minIntervalMs: 60_000 })).map((t) => t.table)).not.toContain(
      'probe_grown',
    );
    const held = await stats(db, 'probe_grown');
    expect(held.last_analyze).toEqual(first.last_analyze);
    expect(held.reltuples).toBe(5_000);

    // Past the interval (here: none) it is analysed again.
    const again = await analyzeStaleTables(db, { minIntervalMs: 0 });
    expect(again.find((t) => t.table === 'probe_grown')).toMatchObject({ changed: 15_000 });
    expect((await stats(db, 'probe_grown')).reltuples).toBe(20_000);
  });

  it(`analyses from a sample of 300 × ${STATISTICS_TARGET} rows: statistics of that size, whatever the server's default`, async () => {
    await probeTable(db, 'probe_sampled');
    await insert(db, 'probe_sampled', 1, 20_000);
    await until(
      () => analyzeStaleTables(db, { minIntervalMs: 60_000 }),
      (done) => done.some((t) => t.table === 'probe_sampled'),
    );
    const { rows } = await db.query<{ bounds: number; target: string }>(
      `SELECT array_length(histogram_bounds::text::int[], 1) AS bounds,
         current_setting('default_statistics_target') AS target
       FROM pg_stats WHERE tablename = 'probe_sampled' AND attname = 'id'`,
    );
    // A histogram of `target` buckets (target + 1 bounds); the server's default (100) is untouched.
    expect(rows[0]).toEqual({ bounds: STATISTICS_TARGET + 1, target: '100' });
  });

  it('leaves a table alone while its changes are few for its size, and a table of a few pages', async () => {
    await probeTable(db, 'probe_small');
    await insert(db, 'probe_small', 1, 100);
    await probeTable(db, 'probe_steady');
    await insert(db, 'probe_steady', 1, 10_000);
    await until(
      () => analyzeStaleTables(db, { minIntervalMs: 0 }),
      (done) => done.some((t) => t.table === 'probe_steady'),
    );
    // 10,000 rows: due after 50 + 10% = 1,050 changes.
    await db.exec(`UPDATE probe_steady SET v = 'y' WHERE id <= 900`);
    await until(
      () => stats(db, 'probe_steady'),
      (s) => Number(s.changed) >= 900,
    );
    const done = (await analyzeStaleTables(db, { minIntervalMs: 0 })).map((t) => t.table);
    expect(done).not.toContain('probe_steady');
    expect(done).not.toContain('probe_small');
    expect((await stats(db, 'probe_small')).last_analyze).toBeNull();
  });
});

describe('when a table is due', () => {
  const row = {
    schema: 'public',
    table: 't',
    live: 10_000,
    reltuples: 10_000,
    pages: 100,
    last: null,
    reloptions: null,
    autovacuum: 'off',
    threshold: '50',
    scale: '0.1',
  };
  const now = Date.parse('2026-12-06T05:00:00Z');

  it("follows autovacuum's threshold when autovacuum is off, twice it when autovacuum runs", () => {
    expect(isDue({ ...row, changed: 1_049 }, 'postgres', 60_000, now)).toBe(false);
    expect(isDue({ ...row, changed: 1_050 }, 'postgres', 60_000, now)).toBe(true);
    expect(isDue({ ...row, changed: 1_050, autovacuum: 'on' }, 'postgres', 60_000, now)).toBe(false);
    expect(isDue({ ...row, changed: 2_100, autovacuum: 'on' }, 'postgres', 60_000, now)).toBe(true);
    // The table's own settings win.
    expect(
      isDue(
        { ...row, changed: 1_050, autovacuum: 'on', reloptions: ['autovacuum_enabled=false'] },
        'postgres',
        60_000,
        now,
      ),
    ).toBe(true);
    // PGlite has no autovacuum whatever the setting says, and analyses a table again once it doubled.
    expect(isDue({ ...row, changed: 10_049, autovacuum: 'on' }, 'pglite', 60_000, now)).toBe(false);
    expect(isDue({ ...row, changed: 10_050, autovacuum: 'on' }, 'pglite', 60_000, now)).toBe(true);
    expect(isDue({ ...row, reltuples: -1, changed: 50, autovacuum: 'on' }, 'pglite', 60_000, now)).toBe(true);
    expect(
      isDue(
        { ...row, changed: 1_050, reloptions: ['autovacuum_analyze_threshold=5000'] },
        'postgres',
        60_000,
        now,
      ),
    ).toBe(false);
  });

  it('never within the interval of the last analysis, nor under MIN_PAGES', () => {
    const recent = new Date(now - 59_000);
    expect(isDue({ ...row, changed: 5_000, last: recent }, 'postgres', 60_000, now)).toBe(false);
    expect(isDue({ ...row, changed: 5_000, last: new Date(now - 60_000) }, 'postgres', 60_000, now)).toBe(
      true,
    );
    expect(isDue({ ...row, changed: 5_000, pages: MIN_PAGES - 1 }, 'postgres', 60_000, now)).toBe(false);
  });
});

describe('the hub', () => {
  it('analyses a table that grew, in a worker, by itself', async () => {
    const running = await startTestHub({ dbAnalyzeIntervalMs: 200, schedulerPollMs: 50 });
    try {
      const db = running.hub.db;
      await probeTable(db, 'probe_hub');
      await insert(db, 'probe_hub', 1, 5_000);
      const analysed = await until(
        () => stats(db, 'probe_hub'),
        (s) => s.last_analyze !== null,
      );
      expect(analysed.reltuples).toBe(5_000);
    } finally {
      await running.stop();
    }
  });
});
