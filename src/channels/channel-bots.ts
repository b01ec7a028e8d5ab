import type { ConfigProblem } from '../config/problems.ts';
import type { ChannelAdapter } from '../ports.ts';

/**
 * The bots the adapters answer with that do not exist, one problem each, at the setting that
 * names it: what start refuses (before anything is opened) and `switchboard check` reports.
 */
export function unknownChannelBots(
  adapters: readonly ChannelAdapter[],
  exists: (bot: string) => boolean,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const adapter of adapters)
    for (const { bot, setting, entry } of adapter.bots ?? [])
      if (!exists(bot))
        problems.push({
          field: setting,
          message: `${entry ? `${entry} ` : ''}names bot "${bot}", which does not exist (the ${adapter.channel} channel answers with it)`,
        });
  return problems;
}
