import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { createApiAdapter } from '../../adapters/api/index.ts';
import { createHub } from '../../src/hub.ts';
import type { ChannelAdapter } from '../../src/ports.ts';
import { silentLogger, tempDir } from '../helpers/database.ts';
import { testConfig } from '../helpers/hub.ts';

describe('/readyz while the hub starts and stops', () => {
  // The server listens first; the channels' connections, the queue's consumer, the outbox and
  // the scheduled jobs start after it. Until they have, a message could be taken but not
  // answered: the hub is not ready, however well its database answers.
  it('is 503 until start() has finished, 200 then, and 503 again once stop() is called', async () => {
    const dataDir = await tempDir('sbt-readyz-start-');
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reached!: () => void;
    const adapterStarting = new Promise<void>((resolve) => {
      reached = resolve;
    });
    // A channel whose inbound connection takes its time to open: the start waits for it.
    const slowChannel: ChannelAdapter = {
      ...createApiAdapter(),
      async start() {
        reached();
        await held;
      },
    };
    try {
      const hub = await createHub({
        config: testConfig({ dataDir, databaseUrl: undefined, redisUrl: undefined }),
        logger: silentLogger,
        adapters: [slowChannel],
      });
      const readyz = async () => {
        const res = await hub.app.request('/readyz');
        return { status: res.status, body: (await res.json()) as { status: string } };
      };
      expect(await readyz()).toEqual({ status: 503, body: { status: 'starting' } });
      const starting = hub.start();
      await adapterStarting;
      expect(await readyz()).toEqual({ status: 503, body: { status: 'starting' } });
      release();
      await starting;
      expect(await readyz()).toMatchObject({ status: 200, body: { status: 'ready' } });
      const stopping = hub.stop();
      expect(await readyz()).toEqual({ status: 503, body: { status: 'stopping' } });
      await stopping;
    } finally {
      release();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
