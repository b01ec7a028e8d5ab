import type { HubConfig } from '../src/config/env.ts';
import type { Logger } from '../src/logger.ts';
import type { ChannelAdapter } from '../src/ports.ts';

/**
 * The channels this process runs, chosen by configuration. Each adapter is imported only when
 * it is enabled, so a hub without Teams never loads botbuilder.
 */
export async function loadAdapters(
  _config: HubConfig,
  _env: NodeJS.ProcessEnv,
  _logger: Logger,
): Promise<ChannelAdapter[]> {
  const adapters: ChannelAdapter[] = [];
  return adapters;
}
