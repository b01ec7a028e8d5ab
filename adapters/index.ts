import { unknownChannelBots } from '../src/channels/channel-bots.ts';
import type { ChannelPlugin } from '../src/channels/plugin.ts';
import { channels } from '../src/channels/registry.ts';
import { ConfigError, type HubConfig } from '../src/config/env.ts';
import { settingProblems } from '../src/config/env-parsing.ts';
import type { ConfigProblem } from '../src/config/problems.ts';
import type { Logger } from '../src/logger.ts';
import type { ChannelAdapter } from '../src/ports.ts';
import { api } from './api/channel.ts';
import { email } from './email/channel.ts';
import { slack } from './slack/channel.ts';
import { teams } from './teams/channel.ts';
import { telegram } from './telegram/channel.ts';
import { web } from './web/channel.ts';
import { whatsapp } from './whatsapp/channel.ts';

/**
 * Every channel the hub knows: one line each. Adapters are set up and their routes mounted in
 * this order; the web widget comes last, its page route (`/:bot`) being the most general.
 */
export const CHANNEL_PLUGINS: readonly ChannelPlugin[] = [api, whatsapp, teams, telegram, slack, email, web];

/** Puts every channel's declaration in the core's registry; loads no adapter. Safe to call again. */
export function registerChannels(): void {
  for (const plugin of CHANNEL_PLUGINS) channels.register(plugin.declaration);
}

// Importing this module is how a process learns its channels (the CLI, the benchmark, the tests).
registerChannels();

/**
 * The channels this process runs, chosen by configuration. Each adapter is imported only when
 * it is enabled, so a hub without Teams never loads botbuilder.
 */
export async function loadAdapters(
  config: HubConfig,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<ChannelAdapter[]> {
  const adapters: ChannelAdapter[] = [];
  for (const plugin of CHANNEL_PLUGINS) {
    if (!plugin.enabled(env)) continue;
    const adapter = await plugin.loadAdapter({ config, env, logger });
    if (adapter) adapters.push(adapter);
  }
  return adapters;
}

/**
 * What start refuses of the channels' configuration, found without starting anything: each
 * channel the environment turns on is read and its adapter built as `loadAdapters` builds it for
 * start (nothing connects before the hub sets it up), then the bots it answers with must be among
 * `bots`, as start requires. One problem a variable that is not valid, or a channel's other
 * refusal (its message, naming the variables), one a bot that does not exist. For
 * `switchboard check`.
 */
export async function checkChannels(
  config: HubConfig,
  env: NodeJS.ProcessEnv,
  logger: Logger,
  bots: (bot: string) => boolean,
): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = [];
  for (const plugin of CHANNEL_PLUGINS) {
    if (!plugin.enabled(env)) continue;
    let adapter: ChannelAdapter | undefined;
    try {
      adapter = await plugin.loadAdapter({ config, env, logger });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      // Each variable that is not valid on a line of its own; any other refusal as start says it.
      problems.push(...(settingProblems(err) ?? [{ message: err.message }]));
      continue;
    }
    if (adapter) problems.push(...unknownChannelBots([adapter], bots));
  }
  return problems;
}
