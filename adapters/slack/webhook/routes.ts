import { type Context, Hono } from 'hono';
import { Counter } from 'prom-client';
import type { EnvelopeInput } from '../../../src/envelope.ts';
import { ApiError } from '../../../src/http/errors.ts';
import { parseJson } from '../../../src/json.ts';
import type { AcceptResult, AdapterHost } from '../../../src/ports.ts';
import type { SlackConfig } from '../config.ts';
import type { UserNames } from '../user-names.ts';
import { buttonToEnvelope, messageToEnvelope } from './envelope.ts';
import {
  NotASlackRequestError,
  type ParsedEventRequest,
  type ParsedInteraction,
  parseEventRequest,
  parseInteraction,
} from './parse.ts';
import { verifySlackSignature } from './verify.ts';

export const EVENTS_PATH = '/webhooks/slack';
export const INTERACTIONS_PATH = '/webhooks/slack/interactions';
/**
 * Slack wants an answer within 3 seconds, or it retries. An envelope not durably accepted by then
 * is answered 503 (its acceptance goes on: Slack's retry then finds it a duplicate).
 */
export const ACK_DEADLINE_MS = 2_500;

export interface WebhookDeps {
  config: SlackConfig;
  host: AdapterHost;
  names: UserNames;
}

/**
 * `POST /webhooks/slack`: the Events API (the `url_verification` handshake, then signed
 * `event_callback`s). `POST /webhooks/slack/interactions`: button presses (form-encoded `payload=`).
 * Both check `X-Slack-Signature` over the raw body (401 with nothing accepted when wrong or older
 * than five minutes), and answer 200 once the envelope is durably accepted. A retry
 * (`X-Slack-Retry-Num`) and the `message` twin of an `app_mention` are the same envelope: duplicates.
 */
export function webhookRoutes(deps: WebhookDeps): { app: Hono; close(): void } {
  const app = new Hono();
  const { config, host } = deps;
  const logger = host.logger;
  const requests = new Counter({
    name: 'switchboard_slack_webhooks_total',
    help: 'Slack Events API and interactivity requests, by outcome',
    labelNames: ['route', 'outcome'] as const,
    registers: [host.metrics.registry],
  });
  const pending = new Set<Promise<unknown>>();
  const verified = async (c: Context, route: 'events' | 'interactions'): Promise<string> => {
    const raw = await c.req.text();
    const check = verifySlackSignature({
      rawBody: raw,
      timestamp: c.req.header('x-slack-request-timestamp'),
      signature: c.req.header('x-slack-signature'),
      signingSecret: config.signingSecret,
    });
    if (!check.ok) {
      requests.inc({ route, outcome: 'bad_signature' });
      logger.warn({ event: 'slack.webhook_rejected', route, reason: check.reason });
      throw new ApiError(401, 'invalid_signature', check.reason);
    }
    return raw;
  };

  /** Accepts within the deadline, or answers 503 while the acceptance goes on. */
  const accept = async (
    envelope: EnvelopeInput,
    route: 'events' | 'interactions',
  ): Promise<AcceptResult | undefined> => {
    const accepting = host.ingress.accept(envelope);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), ACK_DEADLINE_MS);
    });
    try {
      const result = await Promise.race([accepting, late]);
      if (result !== 'late') return result;
    } catch (err) {
      if ((err as Error).name !== 'InvalidEnvelopeError') throw err;
      // Retrying cannot fix an envelope the core refuses: acknowledged, logged, dropped.
      logger.error({ event: 'slack.envelope_invalid', envelopeId: envelope.id, err: (err as Error).message });
      return undefined;
    } finally {
      clearTimeout(timer);
    }
    const settled = accepting.then(
      (r) => logger.info({ event: 'slack.accepted_late', envelopeId: r.envelopeId, status: r.status }),
      (err: Error) =>
        logger.error({ event: 'slack.accept_failed_late', envelopeId: envelope.id, err: err.message }),
    );
    pending.add(settled);
    settled.finally(() => pending.delete(settled));
    requests.inc({ route, outcome: 'late' });
    throw new ApiError(
      503,
      'unavailable',
      'the event could not be accepted within 3 seconds; Slack will retry',
    );
  };

  app.post(EVENTS_PATH, async (c) => {
    const raw = await verified(c, 'events');
    let parsed: ParsedEventRequest;
    try {
      parsed = parseEventRequest(parseJson(raw));
    } catch (err) {
      requests.inc({ route: 'events', outcome: 'invalid' });
      if (err instanceof NotASlackRequestError) throw new ApiError(400, 'invalid_request', err.message);
      throw new ApiError(400, 'invalid_json', 'the request body is not valid JSON');
    }
    if (parsed.kind === 'url_verification') {
      requests.inc({ route: 'events', outcome: 'url_verification' });
      logger.info({ event: 'slack.url_verification' });
      return c.json({ challenge: parsed.challenge });
    }
    const retry = c.req.header('x-slack-retry-num');
    if (parsed.kind === 'ignored') {
      requests.inc({ route: 'events', outcome: 'ignored' });
      logger.debug({ event: 'slack.event_skipped', eventId: parsed.eventId, reason: parsed.reason });
      return c.json({ status: 'ignored', reason: parsed.reason });
    }
    const { teamId, user } = parsed.message;
    const envelope = messageToEnvelope(
      parsed.message,
      config.bot,
      new Date(),
      await deps.names.of(teamId, user),
    );
    const result = await accept(envelope, 'events');
    if (retry)
      logger.info({
        event: 'slack.retry',
        envelopeId: envelope.id,
        retry: Number(retry),
        reason: c.req.header('x-slack-retry-reason'),
        status: result?.status,
      });
    requests.inc({ route: 'events', outcome: result?.status ?? 'invalid' });
    return c.json({ status: result?.status ?? 'ignored', envelope_id: envelope.id });
  });

  app.post(INTERACTIONS_PATH, async (c) => {
    const raw = await verified(c, 'interactions');
    let parsed: ParsedInteraction;
    try {
      parsed = parseInteraction(raw);
    } catch (err) {
      requests.inc({ route: 'interactions', outcome: 'invalid' });
      if (err instanceof NotASlackRequestError) throw new ApiError(400, 'invalid_request', err.message);
      throw err;
    }
    if (parsed.kind === 'ignored') {
      requests.inc({ route: 'interactions', outcome: 'ignored' });
      logger.debug({ event: 'slack.interaction_skipped', reason: parsed.reason });
      return c.body(null, 200);
    }
    const { teamId, user } = parsed.press;
    const name = (await deps.names.of(teamId, user)) ?? parsed.press.userName;
    const result = await accept(buttonToEnvelope(parsed.press, config.bot, new Date(), name), 'interactions');
    requests.inc({ route: 'interactions', outcome: result?.status ?? 'invalid' });
    // An empty 200 tells Slack the press was received; the answer comes as a message.
    return c.body(null, 200);
  });

  return {
    app,
    close() {
      pending.clear();
    },
  };
}
