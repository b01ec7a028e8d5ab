import { createWhatsAppAdapter, loadWhatsAppConfig } from '../../adapters/whatsapp/index.ts';
import type { HubConfig } from '../../src/config/env.ts';
import type { HubOptions } from '../../src/hub.ts';
import { tempDir } from './database.ts';
import { type RunningHub, startTestHub } from './hub.ts';
import { until } from './until.ts';
import type { LocalWebClient } from './whatsapp-web-client.ts';

/**
 * A test hub (as startTestHub, with `overrides` and `options`) whose one channel besides the API
 * is WhatsApp Web on the local `client`, its sessions for `bot`; resolves once the adapter has
 * initialized the client.
 */
export async function startWhatsAppWebHub(
  client: LocalWebClient,
  bot: string,
  overrides: Partial<HubConfig>,
  options: Omit<HubOptions, 'config' | 'adapters'> = {},
): Promise<RunningHub> {
  const config = loadWhatsAppConfig({ WHATSAPP_WEB: 'on', WHATSAPP_BOT: bot }, await tempDir('sbt-wweb-'))!;
  const running = await startTestHub(overrides, {
    ...options,
    adapters: [createWhatsAppAdapter({ ...config, webClientFactory: () => client })],
  });
  await until(
    () => client.initialized,
    (v) => v,
  );
  return running;
}
