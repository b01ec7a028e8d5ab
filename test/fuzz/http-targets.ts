import { createHmac, randomUUID } from 'node:crypto';
import { createAgentVia } from '../helpers/agents.ts';
import type { FuzzRequest, Targets } from './http-inputs.ts';

/** A port nothing listens on: replies to the fuzz's channel messages go nowhere (and are retried). */
const NOWHERE = 'http://127.0.0.1:9';
const WHATSAPP_APP_SECRET = 'fuzz-whatsapp-app-secret';
const TELEGRAM_SECRET = 'fuzz-telegram-secret';
const SLACK_SIGNING_SECRET = 'fuzz-slack-signing-secret';

/**
 * Every channel with an HTTP entry point turned on, its outgoing side pointed at nothing:
 * Teams without an app id (the hub listens on loopback), WhatsApp Cloud, Telegram and Slack
 * with their secrets (which `sign` uses), and the operator token.
 */
export function fuzzEnv(): Record<string, string> {
  return {
    ADMIN_TOKEN: 'fuzz-operator-token-0123456789abcdef-0123456789',
    // Sign-in configured, so that POST /api/session/authenticate checks the JWT it is given.
    AUTH_JWT_SECRET: 'fuzz-sign-in-secret-0123456789abcdef-0123456789',
    AUTH_JWT_ISSUER: 'https://shop.example',
    AUTH_JWT_AUDIENCE: 'switchboard',
    TEAMS_ENABLED: 'true',
    WHATSAPP_ACCESS_TOKEN: 'fuzz-access-token',
    WHATSAPP_APP_SECRET,
    WHATSAPP_VERIFY_TOKEN: 'verify',
    WHATSAPP_GRAPH_URL: NOWHERE,
    WHATSAPP_NUMBERS: '1234567890:default',
    TELEGRAM_BOT_TOKEN: '123456789:AAHfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz',
    TELEGRAM_WEBHOOK_SECRET: TELEGRAM_SECRET,
    TELEGRAM_API_URL: NOWHERE,
    SLACK_SIGNING_SECRET,
    SLACK_BOT_TOKEN: 'xoxb-fuzz-token',
    SLACK_API_URL: NOWHERE,
  };
}

/**
 * Signs a webhook request as its platform would (those the generator marked `signed`), so that the fuzz reaches the parsers behind the signature
 * checks. Other requests go as they are.
 */
export function sign(req: FuzzRequest): FuzzRequest {
  const path = req.url.split('?')[0]!;
  const body = req.body ?? '';
  const headers = { ...req.headers };
  if (!req.signed) return req;
  if (path === '/webhooks/whatsapp')
    headers['x-hub-signature-256'] =
      `sha256=${createHmac('sha256', WHATSAPP_APP_SECRET).update(body).digest('hex')}`;
  else if (path === '/webhooks/telegram') headers['x-telegram-bot-api-secret-token'] = TELEGRAM_SECRET;
  else if (path.startsWith('/webhooks/slack')) {
    const ts = String(Math.floor(Date.now() / 1000));
    headers['x-slack-request-timestamp'] = ts;
    headers['x-slack-signature'] =
      `v0=${createHmac('sha256', SLACK_SIGNING_SECRET).update(`v0:${ts}:${body}`).digest('hex')}`;
  }
  return { ...req, headers };
}

/**
 * A session, an agent and the operator token on the hub at `url`, for the fuzz to use (and
 * misuse); `refresh` replaces a session the fuzz ended and an agent it deleted or re-keyed.
 */
export async function startTargets(
  url: string,
  adminToken: string,
): Promise<Targets & { refresh(): Promise<void> }> {
  const newSession = async () => {
    const res = await fetch(`${url}/api/session`, { method: 'POST' });
    if (res.status !== 201) throw new Error(`POST /api/session: ${res.status}`);
    return (await res.json()) as { session_id: string; token: string };
  };
  const newAgent = () =>
    createAgentVia(url, adminToken, { name: 'Fuzz', email: `fuzz-${randomUUID()}@example.com`, bots: ['*'] });
  const ok = async (path: string, token: string) =>
    (await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } })).status === 200;

  const session = await newSession();
  const agent = await newAgent();
  const targets = {
    sessionToken: session.token,
    sessionId: session.session_id,
    adminToken,
    agentToken: agent.token,
    agentId: agent.agent_id,
    userId: randomUUID(),
    async refresh() {
      if (!(await ok('/api/session', targets.sessionToken))) {
        const s = await newSession();
        targets.sessionToken = s.token;
        targets.sessionId = s.session_id;
      }
      if (!(await ok('/api/agent/me', targets.agentToken))) {
        const a = await newAgent();
        targets.agentToken = a.token;
        targets.agentId = a.agent_id;
      }
    },
  };
  return targets;
}
