import { Hono } from 'hono';
import { type ChannelSender, type OutboundBatch, SendError } from '../../src/delivery/sender.ts';
import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import { NumberedChoices } from './choices.ts';
import { GraphClient, GraphMediaClient } from './cloud/graph.ts';
import { CloudSender } from './cloud/sender.ts';
import type { WhatsAppConfig } from './config.ts';
import { whatsAppOutbound } from './outbound-rules.ts';
import { RecipientPacer } from './pacing.ts';
import { ReplyToSchema } from './reply-to.ts';
import { webAdminRoutes } from './web/admin.ts';
import { realWebClientFactory, type WebClientFactory } from './web/client.ts';
import { WebSender } from './web/sender.ts';
import { WebSession } from './web/session.ts';
import { isCloudMedia, webhookRoutes } from './webhook/routes.ts';

export type { WhatsAppConfig } from './config.ts';
export { loadWhatsAppConfig } from './config.ts';

export interface WhatsAppAdapterOptions extends WhatsAppConfig {
  /** Makes the whatsapp-web.js client (tests pass a local one). Default: the real Client with LocalAuth. */
  webClientFactory?: WebClientFactory;
  /** The fetch the Graph API client uses. */
  fetch?: typeof fetch;
  /** Where the pairing QR code is drawn. Default: standard error, so JSON logs stay alone on standard output. */
  terminal?: NodeJS.WritableStream;
}

/**
 * The WhatsApp channel: the Cloud API (signed webhooks in, Graph API out) and/or a linked
 * WhatsApp Web session (whatsapp-web.js), either or both as configured. Sessions are keyed by
 * the person's E.164 phone number; replies leave by the transport the person last wrote on.
 */
export function createWhatsAppAdapter(options: WhatsAppAdapterOptions): ChannelAdapter {
  let host: AdapterHost | undefined;
  let cloud: CloudSender | undefined;
  let graphMedia: GraphMediaClient | undefined;
  let webSender: WebSender | undefined;
  let webSession: WebSession | undefined;
  let webStarted = false;
  let webhook: ReturnType<typeof webhookRoutes> | undefined;
  const pacer = new RecipientPacer(options.recipientIntervalMs);

  const botFor = (phoneNumberId: string) => options.cloud?.numbers.get(phoneNumberId) ?? options.defaultBot;

  const route = (session: SessionRecord) => {
    const parsed = ReplyToSchema.safeParse(session.replyTo);
    if (!parsed.success)
      throw new SendError(`session ${session.id} has no WhatsApp address to answer`, { retryable: false });
    return parsed.data;
  };

  const sender: ChannelSender = {
    async send(batch: OutboundBatch) {
      const to = route(batch.session);
      if (to.transport === 'cloud') {
        if (!cloud)
          throw new SendError('the WhatsApp Cloud API is not configured in this process', {
            retryable: false,
          });
        return cloud.send(batch, to);
      }
      if (!webSender)
        throw new SendError('WhatsApp Web is not configured in this process', { retryable: false });
      return webSender.send(batch, to);
    },
    async typing(session: SessionRecord) {
      const to = ReplyToSchema.safeParse(session.replyTo);
      if (to.success && to.data.transport === 'cloud' && cloud) await cloud.typing(session, to.data);
    },
  };

  return {
    channel: 'whatsapp',
    bots: [
      { bot: options.defaultBot, setting: 'WHATSAPP_BOT' },
      ...[...(options.cloud?.numbers ?? [])].map(([number, bot]) => ({
        bot,
        setting: 'WHATSAPP_NUMBERS',
        entry: `number ${number}`,
      })),
    ],
    sender,

    // Cloud API media, queued by id: looked up and downloaded with the access token before the turn.
    async fetchAttachment(a) {
      if (!graphMedia || !isCloudMedia(a)) return undefined;
      const got = await graphMedia.download(a.ref!);
      return { body: got.body };
    },
    outbound: whatsAppOutbound({
      ...(options.cloud ? { cloudNumbers: options.cloud.numbers } : {}),
      web: Boolean(options.web),
    }),

    async setup(h: AdapterHost) {
      host = h;
      if (options.cloud) {
        const graph = new GraphClient({
          baseUrl: options.cloud.graphUrl,
          version: options.cloud.graphVersion,
          accessToken: options.cloud.accessToken,
          timeoutMs: options.cloud.requestTimeoutMs,
          ...(options.fetch ? { fetch: options.fetch } : {}),
        });
        const media = new GraphMediaClient({
          baseUrl: options.cloud.graphUrl,
          version: options.cloud.graphVersion,
          accessToken: options.cloud.accessToken,
          timeoutMs: options.cloud.requestTimeoutMs,
          ...(options.fetch ? { fetch: options.fetch } : {}),
        });
        graphMedia = media;
        cloud = new CloudSender(graph, pacer, h.logger, { client: media, files: h.files });
      }
      if (options.web) {
        const choices = new NumberedChoices(h.store, h.logger);
        webSender = new WebSender(h.bus, options.web.sendTimeoutMs, pacer, h.logger, choices);
        if (options.web.mode === 'on') {
          webSession = new WebSession({
            config: options.web,
            factory: options.webClientFactory ?? realWebClientFactory(options.web),
            bus: h.bus,
            ingress: h.ingress,
            logger: h.logger,
            bot: options.defaultBot,
            applyStatus: (id, status, error) => h.applyStatus(id, status, error),
            files: {
              files: h.files,
              rules: (bot, channel) => h.bots.rules(bot, channel),
              logger: h.logger,
              metrics: h.metrics,
            },
            fileRetry: {
              attempts: h.config.attachmentRetryAttempts,
              delaysMs: h.config.attachmentRetryDelaysMs,
            },
            choices,
            ...(options.terminal ? { terminal: options.terminal } : {}),
          });
        }
      }
      h.logger.info({
        event: 'whatsapp.configured',
        cloud: Boolean(options.cloud),
        numbers: options.cloud?.numbers.size ?? 0,
        web: options.web?.mode ?? 'off',
      });
    },

    routes() {
      if (!host) throw new Error('the WhatsApp adapter was not set up');
      const app = new Hono();
      if (options.cloud) {
        webhook = webhookRoutes({
          config: options.cloud,
          host,
          botFor,
          ...(graphMedia ? { media: graphMedia } : {}),
        });
        app.route('/', webhook.app);
      }
      if (webSession)
        app.route(
          '/',
          webAdminRoutes(webSession, {
            adminToken: host.config.adminToken,
            rateLimiter: host.rateLimiter,
            trustProxy: host.config.trustProxy,
          }),
        );
      return app;
    },

    async start() {
      if (!webSession) return;
      await webSession.start();
      webStarted = true;
    },

    async ping() {
      if (webStarted) webSession?.ping();
    },

    async stop() {
      webhook?.close();
      await webSession?.stop();
      await webSender?.close();
    },
  };
}
