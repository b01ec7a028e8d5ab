import type { HubConfig } from '../src/config/env.ts';
import type { Logger } from '../src/logger.ts';
import type { ChannelAdapter } from '../src/ports.ts';

/**
 * The channels this process runs, chosen by configuration. Each adapter is imported only when
 * it is enabled, so a hub without Teams never loads botbuilder.
 */
export async function loadAdapters(
  _config: HubConfig,
  env: NodeJS.ProcessEnv,
  _logger: Logger,
): Promise<ChannelAdapter[]> {
  const adapters: ChannelAdapter[] = [];
  if (env.EMAIL_IMAP_HOST?.trim()) {
    const email = await import('./email/index.ts');
    adapters.push(email.createEmailAdapter(email.loadEmailConfig(env)));
  }
  return adapters;
}
