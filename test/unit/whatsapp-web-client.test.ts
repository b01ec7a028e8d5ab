import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { realWebClientFactory } from '../../adapters/whatsapp/web/client.ts';
import { tempDir } from '../helpers/database.ts';

describe('the production whatsapp-web.js client', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('is the real Client with LocalAuth under DATA_DIR, driving the configured Chromium (not launched here)', async () => {
    dir = await tempDir('sbt-wweb-');
    const authDir = path.join(dir, 'whatsapp-web');
    const client = (await realWebClientFactory({
      mode: 'on',
      groups: 'ignore',
      chromiumPath: '/usr/bin/chromium',
      clientId: 'switchboard',
      authDir,
      sendTimeoutMs: 1000,
    })()) as unknown as {
      constructor: { name: string };
      options: { puppeteer: { executablePath: string; headless: boolean } };
      authStrategy: { constructor: { name: string }; dataPath: string; clientId: string };
      initialize: unknown;
      sendMessage: unknown;
      destroy: unknown;
      on: unknown;
      getContactLidAndPhone: unknown;
    };
    expect(client.constructor.name).toBe('Client');
    expect(client.options.puppeteer).toMatchObject({ executablePath: '/usr/bin/chromium', headless: true });
    expect(client.authStrategy.constructor.name).toBe('LocalAuth');
    expect(client.authStrategy.dataPath).toBe(authDir);
    expect(client.authStrategy.clientId).toBe('switchboard');
    for (const method of ['initialize', 'sendMessage', 'destroy', 'on', 'getContactLidAndPhone'] as const)
      expect(typeof client[method]).toBe('function');
    expect((await fs.stat(authDir)).isDirectory()).toBe(true);
  });
});
