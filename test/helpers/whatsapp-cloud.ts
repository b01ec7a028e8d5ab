import { createWhatsAppAdapter, loadWhatsAppConfig } from '../../adapters/whatsapp/index.ts';
import { signatureHeader } from '../../adapters/whatsapp/webhook/verify.ts';
import type { ChannelAdapter } from '../../src/ports.ts';
import type { Json } from '../fixtures/whatsapp/cloud-payloads.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';

/**
 * The production WhatsApp Cloud adapter pointed at a local Graph API, answering on `numbers`
 * (`<phone_number_id>:<bot>,…`), with the given access token and app secret.
 */
export function whatsAppCloudAdapter(options: {
  graphUrl: string;
  numbers: string;
  accessToken: string;
  appSecret: string;
  /** The webhook's verification token (`hub.verify_token`); `verify` unless given. */
  verifyToken?: string;
}): ChannelAdapter {
  const config = loadWhatsAppConfig(
    {
      WHATSAPP_ACCESS_TOKEN: options.accessToken,
      WHATSAPP_APP_SECRET: options.appSecret,
      WHATSAPP_VERIFY_TOKEN: options.verifyToken ?? 'verify',
      WHATSAPP_GRAPH_URL: options.graphUrl,
      WHATSAPP_NUMBERS: options.numbers,
    },
    '/tmp/unused',
  );
  if (!config) throw new Error('the WhatsApp test configuration was not accepted');
  return createWhatsAppAdapter(config);
}

/**
 * POSTs a Cloud API webhook `payload` to the hub at `hubUrl`, signed with `appSecret` the way
 * Meta signs it (`x-hub-signature-256`). Resolves with the hub's response; the caller asserts on it.
 */
export function postWhatsAppWebhook(hubUrl: string, payload: unknown, appSecret: string): Promise<Response> {
  const raw = JSON.stringify(payload);
  return fetch(`${hubUrl}/webhooks/whatsapp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-hub-signature-256': signatureHeader(raw, appSecret),
    },
    body: raw,
  });
}

/**
 * The documented Cloud API payload `base` as message `n` from `from`, sent now, with ids of its
 * own; `change` edits its one message (`entry[0].changes[0].value.messages[0]`).
 */
export function cloudMessage(base: Json, from: string, n: number, change: (m: Json) => void): Json {
  const p = doc.variant(base, { from, suffix: `${from}.${n}`, timestamp: new Date() }) as Json;
  change(p.entry[0].changes[0].value.messages[0]);
  return p;
}
