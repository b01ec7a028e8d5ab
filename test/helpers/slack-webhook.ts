import { slackSignature } from '../../adapters/slack/webhook/verify.ts';

export interface SlackDelivery {
  /** The app's signing secret the request is signed with. */
  secret: string;
  /** `X-Slack-Request-Timestamp`; now when not given. */
  timestamp?: string;
  /** A signature to send instead of the right one (a forged or stale request). */
  signature?: string;
  headers?: Record<string, string>;
}

/**
 * POSTs a body to the hub as Slack does: signed over the raw bytes, with Slack's headers. `route`
 * '' is the Events API (JSON), '/interactions' a button's press (a form).
 */
export function postSlackWebhook(
  hubUrl: string,
  route: '' | '/interactions',
  raw: string,
  o: SlackDelivery,
): Promise<Response> {
  const timestamp = o.timestamp ?? String(Math.floor(Date.now() / 1000));
  return fetch(`${hubUrl}/webhooks/slack${route}`, {
    method: 'POST',
    headers: {
      'content-type': route === '' ? 'application/json' : 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': timestamp,
      'x-slack-signature': o.signature ?? slackSignature(raw, timestamp, o.secret),
      ...o.headers,
    },
    body: raw,
  });
}
