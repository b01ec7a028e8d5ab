import { Hono } from 'hono';
import { Counter } from 'prom-client';
import { ApiError } from '../../../src/http/errors.ts';
import { parseJson } from '../../../src/json.ts';
import type { AdapterHost } from '../../../src/ports.ts';
import type { BotApi } from '../bot-api.ts';
import type { TelegramConfig } from '../config.ts';
import { CALLBACK_KEY_PREFIX, CALLBACK_VALUE_KEY } from '../outbound.ts';
import { needsBotUsername } from './addressing.ts';
import { callbackToEnvelope, type EnvelopeResult, messageToEnvelope } from './envelope.ts';
import { NotATelegramUpdateError, type ParsedUpdate, parseUpdate } from './parse.ts';
import { SECRET_TOKEN_HEADER, verifySecretToken } from './verify.ts';

export const WEBHOOK_PATH = '/webhooks/telegram';
/** Shown (a notification at the top of the chat) when a pressed button's long value is no longer kept. */
export const BUTTON_EXPIRED_TEXT = 'This button has expired.';

export interface WebhookDeps {
  config: TelegramConfig;
  host: AdapterHost;
  api: BotApi;
  /** The bot's @username (getMe, kept once known): asked only for a group message that needs it. */
  botUsername(): Promise<string>;
}

/** How long Telegram is asked to wait before delivering again an update whose getMe failed. */
const GET_ME_RETRY_AFTER_S = 5;

/**
 * `POST /webhooks/telegram`: one Update per request. 401 when the secret token is wrong, with
 * nothing accepted; 200 once the update's envelope is durably accepted (a redelivered update_id is
 * a duplicate, answered 200 too), or when the update is not one the channel acts on; 500 when the
 * hub could not accept it, so Telegram delivers it again.
 */
export function webhookRoutes(deps: WebhookDeps): Hono {
  const app = new Hono();
  const { config, host, api } = deps;
  const logger = host.logger;
  const webhooks = new Counter({
    name: 'switchboard_telegram_webhooks_total',
    help: 'Telegram webhook requests, by outcome',
    labelNames: ['outcome'] as const,
    registers: [host.metrics.registry],
  });

  app.post(WEBHOOK_PATH, async (c) => {
    if (!verifySecretToken(c.req.header(SECRET_TOKEN_HEADER), config.webhookSecret)) {
      webhooks.inc({ outcome: 'bad_secret' });
      logger.warn({ event: 'telegram.webhook_rejected', reason: 'secret token' });
      throw new ApiError(401, 'invalid_secret_token', 'X-Telegram-Bot-Api-Secret-Token does not match');
    }
    let update: ParsedUpdate;
    try {
      update = parseUpdate(parseJson(await c.req.text()));
    } catch (err) {
      webhooks.inc({ outcome: 'invalid' });
      if (err instanceof NotATelegramUpdateError) throw new ApiError(400, 'invalid_request', err.message);
      throw new ApiError(400, 'invalid_json', 'the request body is not valid JSON');
    }
    const options = { bot: config.bot, botUserId: config.botUserId, groups: config.groups };
    let result: EnvelopeResult;
    let expired = false;
    if (update.kind === 'message') {
      const m = update.message;
      let botUsername: string | undefined;
      if (m.chat.type !== 'private' && config.groups !== 'ignore' && needsBotUsername(m)) {
        try {
          botUsername = await deps.botUsername();
        } catch (err) {
          // Without it a mention cannot be told from another's: Telegram delivers the update again.
          webhooks.inc({ outcome: 'unavailable' });
          logger.warn({
            event: 'telegram.get_me_failed',
            updateId: update.updateId,
            err: (err as Error).message,
          });
          throw new ApiError(503, 'unavailable', "the bot's username could not be read (getMe); retry", {
            'Retry-After': String(GET_ME_RETRY_AFTER_S),
          });
        }
      }
      result = messageToEnvelope(update.updateId, m, { ...options, ...(botUsername ? { botUsername } : {}) });
    } else if (update.kind === 'callback') {
      // A value too long for callback_data was sent as a key to the stored value.
      const data = update.callback.data;
      if (data.startsWith(CALLBACK_KEY_PREFIX)) {
        const value = await host.store.get<string>(
          `${CALLBACK_VALUE_KEY}${data.slice(CALLBACK_KEY_PREFIX.length)}`,
        );
        if (typeof value === 'string') update.callback.data = value;
        // Gone with its session (ended, removed, erased) or its age: the key alone means nothing.
        else expired = true;
      }
      result = expired
        ? { skipped: 'the button’s value is no longer kept' }
        : callbackToEnvelope(update.updateId, update.callback, options);
    } else result = { skipped: update.reason };

    if (update.kind === 'callback') {
      // Stops the spinner on the button, whatever becomes of the press.
      api.raw
        .answerCallbackQuery({
          callback_query_id: update.callback.id,
          ...(expired ? { text: BUTTON_EXPIRED_TEXT } : {}),
        })
        .catch((err: Error) => logger.warn({ event: 'telegram.callback_answer_failed', err: err.message }));
    }
    if ('skipped' in result) {
      webhooks.inc({ outcome: 'ignored' });
      logger.debug({ event: 'telegram.update_skipped', updateId: update.updateId, reason: result.skipped });
      return c.json({ status: 'ignored', reason: result.skipped });
    }
    try {
      const envelope = result.envelope;
      const accepted = await host.ingress.accept(envelope);
      webhooks.inc({ outcome: accepted.status });
      return c.json({ status: accepted.status, envelope_id: accepted.envelopeId });
    } catch (err) {
      if ((err as Error).name !== 'InvalidEnvelopeError') throw err;
      // Retrying cannot fix an envelope the core refuses: acknowledged, logged, dropped.
      webhooks.inc({ outcome: 'invalid' });
      logger.error({
        event: 'telegram.envelope_invalid',
        envelopeId: result.envelope.id,
        err: (err as Error).message,
      });
      return c.json({ status: 'ignored', reason: 'invalid envelope' });
    }
  });
  return app;
}
