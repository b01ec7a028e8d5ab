import type { HubConfig } from '../src/config/env.ts';
import type { Logger } from '../src/logger.ts';
import type { ChannelAdapter } from '../src/ports.ts';
import { teamsRequested } from './teams/config.ts';
import { whatsAppRequested } from './whatsapp/config.ts';

/**
 * The channels this process runs, chosen by configuration. Each adapter is imported only when
 * it is enabled, so a hub without Teams never loads botbuilder.
 */
export async function loadAdapters(
  config: HubConfig,
  env: NodeJS.ProcessEnv,
  _logger: Logger,
): Promise<ChannelAdapter[]> {
  const adapters: ChannelAdapter[] = [];
  if (whatsAppRequested(env)) {
    const { createWhatsAppAdapter, loadWhatsAppConfig } = await import('./whatsapp/index.ts');
    const whatsapp = loadWhatsAppConfig(env, config.dataDir);
    if (whatsapp) adapters.push(createWhatsAppAdapter(whatsapp));
  }
  if (teamsRequested(env)) {
    const { createTeamsAdapter, loadTeamsConfig } = await import('./teams/index.ts');
    const teams = loadTeamsConfig(env);
    if (teams) adapters.push(createTeamsAdapter(teams));
  }
  if (env.EMAIL_IMAP_HOST?.trim()) {
    const email = await import('./email/index.ts');
    adapters.push(email.createEmailAdapter(email.loadEmailConfig(env)));
  }
  // The web widget needs no credentials and no SDK: on unless WEB_ENABLED=false.
  const web = await import('./web/index.ts');
  const webConfig = web.loadWebConfig(env);
  if (webConfig.enabled) adapters.push(web.createWebAdapter(webConfig));
  return adapters;
}
