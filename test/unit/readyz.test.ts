import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { opsRoutes } from '../../src/http/ops-api.ts';
import { createMetrics } from '../../src/metrics.ts';

describe('/readyz', () => {
  it('names a failing check without its error, which goes to the log only', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      new Writable({
        write(chunk, _enc, done) {
          for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
          done();
        },
      }),
    );
    const app = opsRoutes({
      state: () => 'started',
      checks: [
        {
          name: 'database',
          check: async () => {
            throw new Error('connect ECONNREFUSED db-primary.internal.example:5432');
          },
        },
        { name: 'queue', check: async () => {} },
      ],
      metrics: createMetrics({ defaultMetrics: false }),
      refresh: async () => {},
      logger,
    });
    const res = await app.request('/readyz');
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({
      status: 'not_ready',
      checks: { database: 'failing', queue: 'ok' },
    });
    expect(text).not.toContain('db-primary');
    expect(lines.find((l) => l.event === 'readiness.failed')).toMatchObject({
      checks: { database: 'connect ECONNREFUSED db-primary.internal.example:5432' },
    });
  });

  it('answers 200 with every check ok', async () => {
    const app = opsRoutes({
      state: () => 'started',
      checks: [{ name: 'database', check: async () => {} }],
      metrics: createMetrics({ defaultMetrics: false }),
      refresh: async () => {},
      logger: pino({ level: 'silent' }),
    });
    const res = await app.request('/readyz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', checks: { database: 'ok' } });
  });
});
