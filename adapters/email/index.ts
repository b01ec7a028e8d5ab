import type { Transporter } from 'nodemailer';
import { Gauge } from 'prom-client';
import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import { readAccessToken } from './access-token.ts';
import type { EmailConfig } from './config.ts';
import { InboundMail } from './inbound.ts';
import { LoopGuard } from './loop-guard.ts';
import { MailboxWatcher } from './mailbox-watcher.ts';
import { emailOutbound } from './outbound-rules.ts';
import { SmtpSender, smtpTransport } from './smtp-sender.ts';

export { type EmailConfig, emailEnabled, loadEmailConfig } from './config.ts';
export { readEmailAttachment } from './store.ts';

/**
 * The email channel. Gateway: one IMAP connection per configured folder, waiting with IDLE,
 * turning each new mail into an envelope (one session per sender and thread). Worker: replies
 * leave over SMTP, one mail per turn, threaded under the mail they answer.
 */
export function createEmailAdapter(config: EmailConfig): ChannelAdapter {
  let host: AdapterHost | undefined;
  let transport: Transporter | undefined;
  let watchers: MailboxWatcher[] = [];

  const requireHost = (): AdapterHost => {
    if (!host) throw new Error('email adapter used before setup()');
    return host;
  };

  const sender = new SmtpSender({
    config,
    host: requireHost,
    transport: async () => {
      // A token from a file is read again for every mail (one connection each): a sidecar
      // refreshes it there, and the next mail takes the new one.
      const file = config.smtp.accessTokenFile;
      if (file) return smtpTransport(config, await readAccessToken(file));
      transport ??= smtpTransport(config);
      return transport;
    },
  });

  return {
    channel: 'email',
    bots: config.mailboxes.map(({ folder, bot }) => ({
      bot,
      setting: 'EMAIL_MAILBOXES',
      entry: `folder "${folder}"`,
    })),
    sender,
    outbound: emailOutbound({ messageIdDomain: config.messageIdDomain }),

    async setup(h) {
      host = h;
    },

    async start() {
      const h = requireHost();
      const logger = h.logger.child({ channel: 'email' });
      const connected = connectedGauge(h);
      const inbound = new InboundMail({
        store: h.store,
        ingress: h.ingress,
        logger,
        config,
        maxTextBytes: h.config.maxTextBytes,
        loops: new LoopGuard({ limiter: h.rateLimiter, logger, metrics: h.metrics, limits: config.loop }),
        files: {
          files: h.files,
          rules: (bot, channel) => h.bots.rules(bot, channel),
          logger,
          metrics: h.metrics,
        },
      });
      watchers = config.mailboxes.map(
        (spec) =>
          new MailboxWatcher(spec, {
            config,
            store: h.store,
            inbound,
            logger,
            events: {
              connected: (mailbox) => connected.set({ mailbox }, 1),
              disconnected: (mailbox) => connected.set({ mailbox }, 0),
            },
          }),
      );
      for (const w of watchers) w.start();
    },

    async ping() {
      const down = watchers.filter((w) => !w.isConnected).map((w) => w.key);
      if (down.length > 0) throw new Error(`IMAP not connected: ${down.join(', ')}`);
    },

    async stop() {
      await Promise.all(watchers.map((w) => w.stop()));
      watchers = [];
      // The SMTP transport holds no connection between mails (no pool): replies the hub still
      // delivers after this keep working.
    },
  };
}

function connectedGauge(host: AdapterHost): Gauge<'mailbox'> {
  const name = 'switchboard_email_imap_connected';
  const existing = host.metrics.registry.getSingleMetric(name);
  if (existing) return existing as Gauge<'mailbox'>;
  return new Gauge({
    name,
    help: 'Whether the IMAP connection of a watched mailbox is up (1) or not (0)',
    labelNames: ['mailbox'] as const,
    registers: [host.metrics.registry],
  });
}
