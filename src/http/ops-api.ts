import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { ApiError, errorResponse } from './errors.ts';
import { cachedRefresh } from './metrics-refresh.ts';

export interface Check {
  name: string;
  check: () => Promise<void>;
}

/** `starting` until start() has finished, `stopping` from the moment stop() is called. */
export type HubState = 'starting' | 'started' | 'stopping';

export const READINESS_TIMEOUT_MS = 2_000;

async function run(check: Check): Promise<{ name: string; ok: boolean; error?: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer in ${READINESS_TIMEOUT_MS} ms`)),
      READINESS_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([check.check(), timeout]);
    return { name: check.name, ok: true };
  } catch (err) {
    return { name: check.name, ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * `/healthz` (the process answers), `/readyz` (the hub has started and what it needs to serve
 * answers), `/metrics` (Prometheus).
 */
export function opsRoutes(deps: {
  /**
   * Where the hub is in its life. The server listens before the hub's other parts start (the
   * channels' connections, the queue's consumer, the outbox, the scheduled jobs): until they
   * have, a message could be taken but not answered, so the hub is not ready.
   */
  state: () => HubState;
  /** What this process needs to take requests (the database, the queue, Redis): each one gates `/readyz`. */
  checks: Check[];
  /**
   * The channels' own outbound connections (an IMAP folder, a linked WhatsApp Web client):
   * reported in `/readyz`'s body, never gating it. A mail server being away must not take
   * every gateway, and with them the widget, the API and the other channels' webhooks, out of
   * a load balancer's rotation; alert on the channel's metric instead.
   */
  channels?: Check[];
  metrics: Metrics;
  refresh: () => Promise<void>;
  logger: Logger;
  /** METRICS_TOKEN: when set, `/metrics` answers only `Authorization: Bearer <it>`. */
  metricsToken?: string;
}): Hono {
  const app = new Hono();
  const channels = deps.channels ?? [];
  const refresh = cachedRefresh(deps.refresh, (err) =>
    deps.logger.warn({ event: 'metrics.refresh_failed', err: err.message }),
  );
  const expectedToken = deps.metricsToken === undefined ? undefined : digest(deps.metricsToken);

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    const state = deps.state();
    if (state !== 'started') return c.json({ status: state }, 503);
    const [results, links] = await Promise.all([
      Promise.all(deps.checks.map(run)),
      Promise.all(channels.map(run)),
    ]);
    const ready = results.every((r) => r.ok);
    // Anyone may ask: a failing check's error (a host name, a driver's message) goes to the log
    // only, and the answer says which check failed.
    const body = {
      status: ready ? 'ready' : 'not_ready',
      checks: Object.fromEntries(results.map((r) => [r.name, r.ok ? 'ok' : 'failing'])),
      ...(links.length > 0
        ? { channels: Object.fromEntries(links.map((r) => [r.name, r.ok ? 'connected' : 'disconnected'])) }
        : {}),
    };
    if (!ready) {
      const failures = Object.fromEntries(results.filter((r) => !r.ok).map((r) => [r.name, r.error]));
      deps.logger.warn({ event: 'readiness.failed', checks: failures });
    }
    return c.json(body, ready ? 200 : 503);
  });

  app.get('/metrics', async (c) => {
    if (expectedToken) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
      if (!match || !timingSafeEqual(digest(match[1]!), expectedToken)) {
        return errorResponse(
          c,
          new ApiError(
            401,
            'unauthorized',
            'send the metrics token as "Authorization: Bearer <METRICS_TOKEN>"',
            {
              'WWW-Authenticate': 'Bearer realm="switchboard-metrics"',
            },
          ),
        );
      }
    }
    await refresh();
    return c.body(await deps.metrics.registry.metrics(), 200, {
      'Content-Type': deps.metrics.registry.contentType,
    });
  });
  return app;
}
