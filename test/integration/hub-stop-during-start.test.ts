import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { createApiAdapter } from '../../adapters/api/index.ts';
import { createHub } from '../../src/hub.ts';
import { silentLogger, tempDir } from '../helpers/database.ts';
import { testConfig } from '../helpers/hub.ts';

describe('a hub stopped while it starts', () => {
  // The server listens (`/healthz` answers) before the workers' side has started: a signal then
  // (an operator's Ctrl-C, an orchestrator's SIGTERM) calls stop() during start().
  it('the start gives way (HubStoppedError), the stop then closes what it had opened, cleanly', async () => {
    const dataDir = await tempDir('sbt-stop-start-');
    try {
      const hub = await createHub({
        config: testConfig({ dataDir, databaseUrl: undefined, redisUrl: undefined }),
        logger: silentLogger,
        adapters: [createApiAdapter()],
      });
      const starting = hub.start();
      const stopping = hub.stop();
      const [start, stop] = await Promise.allSettled([starting, stopping]);
      expect(start).toMatchObject({ status: 'rejected', reason: { name: 'HubStoppedError' } });
      expect(stop).toMatchObject({ status: 'fulfilled' });
      expect(hub.step).toBeUndefined();
      // Never started: `/readyz` said `stopping` from the stop on, never `started`.
      const ready = await hub.app.request('/readyz');
      expect(await ready.json()).toEqual({ status: 'stopping' });
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
