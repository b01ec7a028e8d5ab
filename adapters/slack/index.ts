import type { WebClient } from '@slack/web-api';
import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import type { SlackConfig } from './config.ts';
import { SLACK_FILES_ORIGIN, slackFileSource } from './files.ts';
import { SlackSender } from './sender.ts';
import { NAME_LOOKUP_TIMEOUT_MS, UserNames } from './user-names.ts';
import { createWebClient } from './web-client.ts';
import { webhookRoutes } from './webhook/routes.ts';

export type { SlackConfig } from './config.ts';
export { loadSlackConfig, slackRequested } from './config.ts';

/**
 * The Slack channel: the Events API in (`POST /webhooks/slack`, button presses at
 * `/webhooks/slack/interactions`), the Web API out (`chat.postMessage`, in the person's thread).
 * A person is a workspace user (team + user); a mention in a channel is a session per thread.
 */
export function createSlackAdapter(config: SlackConfig): ChannelAdapter {
  let host: AdapterHost | undefined;
  let client: WebClient | undefined;
  let sender: SlackSender | undefined;
  let names: UserNames | undefined;
  let webhook: ReturnType<typeof webhookRoutes> | undefined;
  // A person's shared file, queued as pending: fetched by the worker with the bot token before the turn.
  const fileSource = slackFileSource({
    token: config.botToken,
    allowedOrigins: [SLACK_FILES_ORIGIN, new URL(config.apiUrl).origin],
    timeoutMs: config.requestTimeoutMs,
  });

  return {
    channel: 'slack',
    bots: [{ bot: config.bot, setting: 'SLACK_BOT' }],
    sender: {
      send(batch) {
        if (!sender) throw new Error('the Slack adapter was not set up');
        return sender.send(batch);
      },
    },

    fetchAttachment: (a) => fileSource(a),

    async setup(h: AdapterHost) {
      host = h;
      client = createWebClient({
        token: config.botToken,
        apiUrl: config.apiUrl,
        timeoutMs: config.requestTimeoutMs,
        logger: h.logger,
      });
      sender = new SlackSender(client, h.logger, { files: h.files, timeoutMs: config.requestTimeoutMs });
      // Looked up while Slack waits for the answer: a client of its own with a short timeout.
      const lookups = createWebClient({
        token: config.botToken,
        apiUrl: config.apiUrl,
        timeoutMs: NAME_LOOKUP_TIMEOUT_MS,
        logger: h.logger,
      });
      names = new UserNames(lookups, h.logger);
      h.logger.info({ event: 'slack.configured', bot: config.bot });
    },

    routes() {
      if (!host || !names) throw new Error('the Slack adapter was not set up');
      webhook = webhookRoutes({ config, host, names });
      return webhook.app;
    },

    async stop() {
      webhook?.close();
    },
  };
}
