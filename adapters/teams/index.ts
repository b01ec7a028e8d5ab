import { CloudAdapter } from 'botbuilder';
import type { ChannelSender, OutboundBatch } from '../../src/delivery/sender.ts';
import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import { createBotFrameworkAuthentication } from './auth.ts';
import type { TeamsConfig } from './config.ts';
import { fetchTeamsFile } from './inbound/files.ts';
import { TeamsSender } from './outbound/sender.ts';
import { teamsOutbound } from './outbound-rules.ts';
import { ReferenceSchema } from './reference.ts';
import { MESSAGES_PATH, messagesRoutes } from './routes.ts';
import { botConnectorToken } from './token.ts';

export type { TeamsConfig } from './config.ts';
export { loadTeamsConfig, teamsRequested } from './config.ts';
export { MESSAGES_PATH } from './routes.ts';

/**
 * The Microsoft Teams channel (any Bot Framework channel, and the Bot Framework Emulator):
 * `POST /api/messages` through botbuilder's CloudAdapter on gateways; replies, suggestions and
 * "typing…" through the Bot Connector from whichever worker runs the turn, with the
 * conversation reference stored with the session.
 */
export function createTeamsAdapter(config: TeamsConfig): ChannelAdapter {
  const auth = createBotFrameworkAuthentication(config.auth);
  const adapter = new CloudAdapter(auth);
  let host: AdapterHost | undefined;
  let teamsSender: TeamsSender | undefined;

  const ready = () => {
    if (!teamsSender) throw new Error('the Teams adapter was not set up');
    return teamsSender;
  };
  const sender: ChannelSender = {
    send: (batch: OutboundBatch) => ready().send(batch),
    typing: (session: SessionRecord) => ready().typing(session),
  };

  return {
    channel: 'teams',
    bots: [{ bot: config.bot, setting: 'TEAMS_BOT' }],
    sender,
    outbound: teamsOutbound,

    // What a person attached, fetched by the worker before the turn; Teams-hosted files with the bot's token.
    async fetchAttachment(a, envelope) {
      if (!host) throw new Error('the Teams adapter was not set up');
      const reference = ReferenceSchema.safeParse(envelope.replyTo);
      const serviceUrl = reference.success ? reference.data.serviceUrl : undefined;
      const appId = config.auth?.appId;
      return fetchTeamsFile(a, {
        serviceUrl,
        timeoutMs: host.config.mediaFetchTimeoutMs,
        ...(appId && reference.success
          ? { token: () => botConnectorToken(adapter, appId, reference.data) }
          : {}),
      });
    },

    async setup(h: AdapterHost) {
      host = h;
      teamsSender = new TeamsSender({
        adapter,
        appId: config.auth?.appId ?? '',
        logger: h.logger,
        maxTextChars: config.maxTextChars,
        requestTimeoutMs: config.sendTimeoutMs,
        link: (fileId) => h.files.signedPath(fileId),
      });
      const log = config.auth ? h.logger.info.bind(h.logger) : h.logger.warn.bind(h.logger);
      log({
        event: 'teams.configured',
        path: MESSAGES_PATH,
        bot: config.bot,
        authentication: Boolean(config.auth),
        ...(config.auth
          ? { appType: config.auth.appType }
          : {
              note: 'no TEAMS_APP_ID: requests are not authenticated (local development and the Emulator only)',
            }),
      });
    },

    routes() {
      if (!host) throw new Error('the Teams adapter was not set up');
      return messagesRoutes({ host, adapter, auth, bot: config.bot, loopbackOnly: !config.auth });
    },
  };
}
