import { Hono } from 'hono';
import { Counter } from 'prom-client';
import type { Attachment, EnvelopeInput } from '../../../src/envelope.ts';
import { ApiError } from '../../../src/http/errors.ts';
import { parseJson } from '../../../src/json.ts';
import type { AdapterHost } from '../../../src/ports.ts';
import type { GraphMediaClient } from '../cloud/graph.ts';
import type { CloudConfig } from '../config.ts';
import { cloudMessageToEnvelope } from './envelope.ts';
import { NotAWhatsAppWebhookError, type ParsedWebhook, parseWebhook } from './parse.ts';
import { checkHandshake, verifySignature } from './verify.ts';

export const WEBHOOK_PATH = '/webhooks/whatsapp';
/**
 * A status can overtake the write that records which wamid a reply got (the platform reports
 * "delivered" while the batch is still being sent), so each status is applied once more after
 * this long. Applying one is idempotent: it never moves a message backwards.
 */
export const STATUS_REAPPLY_MS = 5_000;

export interface WebhookDeps {
  config: CloudConfig;
  host: AdapterHost;
  /** The bot that answers on a business number. */
  botFor(phoneNumberId: string): string;
  /** Downloads media by id (photos, documents, voice notes): with it, media are queued as pending. */
  media?: GraphMediaClient;
}

const MEDIA_KINDS = new Set(['image', 'audio', 'video', 'document', 'sticker']);

/** Whether an attachment is Cloud API media the worker downloads by its id. */
export function isCloudMedia(a: Attachment): boolean {
  const kind = (a.data as { kind?: unknown } | undefined)?.kind;
  return Boolean(a.ref) && typeof kind === 'string' && MEDIA_KINDS.has(kind);
}

function pendingMedia(e: EnvelopeInput): EnvelopeInput {
  if (!e.attachments?.some(isCloudMedia)) return e;
  return { ...e, attachments: e.attachments.map((a) => (isCloudMedia(a) ? { ...a, pending: true } : a)) };
}

/**
 * `GET /webhooks/whatsapp`: the subscription handshake. `POST /webhooks/whatsapp`: a signed batch
 * of messages and statuses. It answers 200 once every message is durably accepted (so Meta's
 * retry of a slow or failed delivery finds them as duplicates), 401 on a bad signature with
 * nothing accepted, 500 when the hub could not accept them (Meta retries).
 */
export function webhookRoutes(deps: WebhookDeps): { app: Hono; close(): void } {
  const app = new Hono();
  const { config, host } = deps;
  const logger = host.logger;
  const reapplyTimers = new Set<NodeJS.Timeout>();
  const reapplyLater = (s: ParsedWebhook['statuses'][number]) => {
    const timer = setTimeout(() => {
      reapplyTimers.delete(timer);
      host
        .applyStatus(s.messageId, s.status, s.error)
        .catch((err: Error) => logger.warn({ event: 'whatsapp.status_failed', err: err.message }));
    }, STATUS_REAPPLY_MS);
    timer.unref();
    reapplyTimers.add(timer);
  };
  const webhooks = new Counter({
    name: 'switchboard_whatsapp_webhooks_total',
    help: 'WhatsApp Cloud API webhook requests, by outcome',
    labelNames: ['outcome'] as const,
    registers: [host.metrics.registry],
  });

  app.get(WEBHOOK_PATH, (c) => {
    const result = checkHandshake(c.req.query(), config.verifyToken);
    if (!result.ok) {
      logger.warn({ event: 'whatsapp.handshake_rejected', reason: result.reason });
      throw new ApiError(403, 'forbidden', `webhook verification failed: ${result.reason}`);
    }
    logger.info({ event: 'whatsapp.handshake' });
    return c.text(result.challenge, 200);
  });

  app.post(WEBHOOK_PATH, async (c) => {
    const raw = new Uint8Array(await c.req.arrayBuffer());
    if (!verifySignature(raw, c.req.header('x-hub-signature-256'), config.appSecret)) {
      webhooks.inc({ outcome: 'bad_signature' });
      logger.warn({ event: 'whatsapp.webhook_rejected', reason: 'signature', bytes: raw.byteLength });
      throw new ApiError(401, 'invalid_signature', 'X-Hub-Signature-256 does not match the body');
    }
    let parsed: ParsedWebhook;
    try {
      parsed = parseWebhook(parseJson(Buffer.from(raw).toString('utf8')), { reactions: config.reactions });
    } catch (err) {
      webhooks.inc({ outcome: 'invalid' });
      if (err instanceof SyntaxError)
        throw new ApiError(400, 'invalid_json', 'the request body is not valid JSON');
      if (err instanceof NotAWhatsAppWebhookError) throw new ApiError(400, 'invalid_request', err.message);
      throw err;
    }
    for (const s of parsed.skipped)
      logger.info({ event: 'whatsapp.webhook_item_skipped', what: s.what, reason: s.reason });
    for (const e of parsed.errors)
      logger.warn({ event: 'whatsapp.platform_error', phoneNumberId: e.phoneNumberId, err: e.error });

    const envelopes: EnvelopeInput[] = [];
    const now = new Date();
    for (const m of parsed.messages) {
      const envelope = cloudMessageToEnvelope(m, deps.botFor(m.phoneNumberId), now);
      if (envelope) envelopes.push(envelope);
      else
        logger.warn({
          event: 'whatsapp.webhook_item_skipped',
          what: `message ${m.id}`,
          reason: 'sender is no phone number',
        });
    }
    // Media come in by id. The download waits for the worker (before the turn): the webhook is
    // acknowledged as soon as the message is queued, however large the file.
    const withFiles = deps.media ? envelopes.map(pendingMedia) : envelopes;
    const counts = await acceptInOrder(host, withFiles);
    await Promise.all(
      parsed.statuses.map((s) =>
        host.applyStatus(s.messageId, s.status, s.error).then(() => {
          reapplyLater(s);
          if (s.status === 'failed')
            logger.warn({ event: 'whatsapp.message_failed', channelMessageId: s.messageId, err: s.error });
        }),
      ),
    );
    webhooks.inc({ outcome: 'accepted' });
    logger.debug({
      event: 'whatsapp.webhook',
      accepted: counts.accepted,
      duplicates: counts.duplicate,
      statuses: parsed.statuses.length,
    });
    return c.json({
      status: 'ok',
      accepted: counts.accepted,
      duplicates: counts.duplicate,
      statuses: parsed.statuses.length,
    });
  });
  return {
    app,
    close() {
      for (const t of reapplyTimers) clearTimeout(t);
      reapplyTimers.clear();
    },
  };
}

/**
 * Accepts a batch: each person's messages one after another (their order is the session's order),
 * different people in parallel. An envelope the core refuses as invalid is logged and dropped
 * (retrying cannot fix it); any other failure fails the request so Meta delivers it again.
 */
async function acceptInOrder(host: AdapterHost, envelopes: EnvelopeInput[]) {
  const bySender = new Map<string, EnvelopeInput[]>();
  for (const e of envelopes) {
    const key = `${e.bot}|${e.from.id}`;
    if (!bySender.has(key)) bySender.set(key, []);
    bySender.get(key)!.push(e);
  }
  const counts = { accepted: 0, duplicate: 0 };
  await Promise.all(
    [...bySender.values()].map(async (list) => {
      for (const envelope of list) {
        try {
          const result = await host.ingress.accept(envelope);
          counts[result.status]++;
        } catch (err) {
          if ((err as Error).name !== 'InvalidEnvelopeError') throw err;
          host.logger.error({
            event: 'whatsapp.envelope_invalid',
            envelopeId: envelope.id,
            err: (err as Error).message,
          });
        }
      }
    }),
  );
  return counts;
}
