import type { BotApi } from './bot-api.ts';

/**
 * The bot's @username, asked of Telegram (`getMe`) the first time a group message needs it (a
 * mention, a `/command@bot`) and kept for the life of the process: the token holds the bot's
 * id, not its username. A failed call is not kept: the next message asks again.
 */
export function botUsernameOf(api: Pick<BotApi, 'getMe'>): () => Promise<string> {
  let known: string | undefined;
  let pending: Promise<string> | undefined;
  return () => {
    if (known !== undefined) return Promise.resolve(known);
    pending ??= api
      .getMe()
      .then((me) => {
        known = me.username;
        return known;
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
}
