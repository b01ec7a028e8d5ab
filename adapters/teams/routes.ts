import type { Activity, CloudAdapter, ConfigurationBotFrameworkAuthentication } from 'botbuilder';
import { Hono } from 'hono';
import { Counter } from 'prom-client';
import { ApiError } from '../../src/http/errors.ts';
import { parseJson } from '../../src/json.ts';
import type { AcceptResult, AdapterHost } from '../../src/ports.ts';
import { verifyRequest } from './auth.ts';
import { activityToEnvelope, cardActionToEnvelope } from './inbound/envelope.ts';
import { NotAnActivityError, type ParsedActivity, parseActivity } from './inbound/parse.ts';
import { isLoopbackUrl } from './loopback.ts';

export const MESSAGES_PATH = '/api/messages';
/**
 * The invoke response to a card's `Action.Execute` (an `AdaptiveCardInvokeResponse`): a message
 * Teams shows on the card, which stays as it was. The bot's answer follows as a reply.
 */
export const CARD_ACTION_RESPONSE = {
  statusCode: 200,
  type: 'application/vnd.microsoft.activity.message',
  value: 'Received.',
} as const;
/** How soon the channel should try again when the signing keys could not be fetched. */
const RETRY_AFTER_SECONDS = '5';
/** Activity types counted by name; anything else (the sender chooses it) is counted as `other`. */
const COUNTED_TYPES = new Set([
  'message',
  'conversationUpdate',
  'invoke',
  'typing',
  'event',
  'messageReaction',
  'messageUpdate',
  'messageDelete',
  'installationUpdate',
  'endOfConversation',
]);

export interface MessagesRouteDeps {
  host: AdapterHost;
  adapter: CloudAdapter;
  auth: ConfigurationBotFrameworkAuthentication;
  bot: string;
  /** No app id, so no authentication: only activities whose serviceUrl is this machine are taken. */
  loopbackOnly: boolean;
}

/**
 * `POST /api/messages`, the bot's messaging endpoint. The activity is authenticated (a Bot
 * Framework JWT, when the bot has an app id) and turned into an envelope inside a botbuilder
 * turn; the answer is 200 as soon as the envelope is durably queued, long before the bot
 * answers (Teams retries a request it got no answer to in 15 s: the retry is a duplicate).
 * The reply is sent later, by the worker that runs the turn. 400 for a body that is no
 * activity, 401 without a valid token (nothing queued), 503 when the hub cannot queue now.
 */
export function messagesRoutes(deps: MessagesRouteDeps): Hono {
  const app = new Hono();
  const { host, adapter, auth, bot, loopbackOnly } = deps;
  const logger = host.logger;
  const activities = new Counter({
    name: 'switchboard_teams_activities_total',
    help: 'Bot Framework activities received on /api/messages, by type and outcome',
    labelNames: ['type', 'outcome'] as const,
    registers: [host.metrics.registry],
  });
  const count = (type: string, outcome: string) =>
    activities.inc({ type: COUNTED_TYPES.has(type) ? type : 'other', outcome });

  app.post(MESSAGES_PATH, async (c) => {
    let parsed: ParsedActivity;
    try {
      parsed = parseActivity(parseJson(await c.req.text()));
    } catch (err) {
      const notJson = err instanceof SyntaxError;
      if (!notJson && !(err instanceof NotAnActivityError)) throw err;
      const message = (err as Error).message;
      count('unknown', 'invalid');
      logger.warn({ event: 'teams.activity_rejected', reason: 'invalid', err: message });
      if (notJson) throw new ApiError(400, 'invalid_json', 'the request body is not valid JSON');
      throw new ApiError(400, 'invalid_request', message);
    }
    const type = parsed.activity.type;
    // Unauthenticated, an activity could name any serviceUrl and have the hub post there.
    const serviceUrl = (parsed.activity as { serviceUrl?: unknown }).serviceUrl;
    if (loopbackOnly && typeof serviceUrl === 'string' && !isLoopbackUrl(serviceUrl)) {
      count(type, 'forbidden');
      logger.warn({ event: 'teams.activity_rejected', reason: 'serviceUrl is not a loopback address', type });
      throw new ApiError(
        403,
        'forbidden',
        'without TEAMS_APP_ID only activities whose serviceUrl is a loopback address are accepted',
      );
    }
    // Every activity is authenticated, also those that are then ignored.
    const verified = await verifyRequest(
      auth,
      parsed.activity as unknown as Activity,
      c.req.header('authorization') ?? '',
    );
    if (!verified.ok) {
      count(type, verified.status === 401 ? 'unauthorized' : 'unverifiable');
      logger.warn({
        event: 'teams.activity_rejected',
        reason: verified.reason,
        status: verified.status,
        type,
      });
      if (verified.status === 401)
        throw new ApiError(401, 'unauthorized', 'a valid Bot Framework token is required');
      throw new ApiError(503, 'unavailable', 'the Bot Framework signing keys cannot be fetched right now', {
        'Retry-After': RETRY_AFTER_SECONDS,
      });
    }
    if (parsed.kind === 'ignore') {
      count(type, 'ignored');
      logger.info({ event: 'teams.activity_ignored', type, reason: parsed.reason });
      // An invoke's body is its answer, and there is none: an empty 200 acknowledges it.
      return type === 'invoke' ? c.body(null, 200) : c.json({ status: 'ignored' });
    }

    const { activity, kind } = parsed;
    let accepted: AcceptResult | undefined;
    let failure: unknown;
    // The turn runs through botbuilder's CloudAdapter, as the request's authentication says.
    await adapter
      .processActivityDirect(verified.result, activity as unknown as Activity, async () => {
        try {
          // Attachments go as pending: the worker downloads them before the turn.
          const options = { bot, now: new Date() };
          accepted = await host.ingress.accept(
            parsed.kind === 'action'
              ? cardActionToEnvelope(activity, parsed, options)
              : activityToEnvelope(activity, parsed.kind, options),
          );
        } catch (err) {
          failure = err;
          throw err;
        }
      })
      .catch((err: unknown) => {
        // processActivityDirect wraps whatever the turn threw: keep the original.
        if (failure === undefined) failure = err;
      });
    if (failure !== undefined || !accepted) {
      if ((failure as Error | undefined)?.name === 'InvalidEnvelopeError') {
        count(type, 'invalid');
        logger.error({
          event: 'teams.envelope_invalid',
          activityId: activity.id,
          err: (failure as Error).message,
        });
        throw new ApiError(400, 'invalid_request', (failure as Error).message);
      }
      throw failure ?? new Error('the activity was not accepted');
    }
    count(type, accepted.status);
    logger.debug({
      event: 'teams.activity',
      kind,
      envelopeId: accepted.envelopeId,
      status: accepted.status,
      conversationType: activity.conversation.conversationType,
    });
    // An invoke's HTTP answer is its invoke response: the body Teams reads (200 also for a retry).
    if (kind === 'action') return c.json(CARD_ACTION_RESPONSE, 200);
    return c.json({ status: accepted.status, envelope_id: accepted.envelopeId });
  });
  return app;
}
