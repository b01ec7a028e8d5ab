import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Json } from '../fixtures/slack/events.ts';

/** One Web API call the stand-in received. */
export interface WebApiCall {
  method: string;
  authorization: string | undefined;
  contentType: string | undefined;
  /** The arguments, with JSON-encoded ones (`blocks`) decoded. */
  args: Record<string, Json>;
}

export interface WebApiAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  delayMs?: number;
}

/** The Web API's error body: HTTP 200 with `{"ok": false, "error": "<code>"}`. */
export function webApiError(error: string): WebApiAnswer {
  return { status: 200, body: { ok: false, error } };
}

/** HTTP 429 with Retry-After, as Slack rate-limits a method. */
export function webApiRateLimited(retryAfterSeconds: number): WebApiAnswer {
  return {
    status: 429,
    body: { ok: false, error: 'ratelimited' },
    headers: { 'retry-after': String(retryAfterSeconds) },
  };
}

/**
 * A local stand-in for `slack.com/api` speaking the Web API: `POST /api/<method>` with a bearer
 * token and form-encoded (or JSON) arguments, answering as the real API does (`{"ok": true, …}`,
 * `{"ok": false, "error": "invalid_auth"}` for another token, `channel_not_found`, `no_text`,
 * `user_not_found`); `users` holds the workspace's people for `users.info`.
 * A test scripts other answers with `script`.
 */
export async function startSlackWebApi(token: string) {
  const calls: WebApiCall[] = [];
  const scripted: ((call: WebApiCall) => WebApiAnswer | undefined)[] = [];
  let clock = 1_700_000_000;
  let serial = 0;

  /** Workspace users `users.info` knows: user id → real name. */
  const users = new Map<string, string>();

  const ok = (body: Record<string, unknown>): WebApiAnswer => ({ status: 200, body: { ok: true, ...body } });

  const methods: Record<string, (a: Record<string, Json>) => WebApiAnswer> = {
    'auth.test': () =>
      ok({
        url: 'https://example.slack.com/',
        team: 'Example',
        user: 'switchboard',
        team_id: 'T123ABC456',
        user_id: 'U0LAN0Z89',
        bot_id: 'B0BOT',
      }),
    'users.info': (a) => {
      const realName = users.get(String(a.user));
      if (realName === undefined) return webApiError('user_not_found');
      return ok({
        user: {
          id: a.user,
          team_id: 'T123ABC456',
          name: realName.toLowerCase().replace(/\s+/g, '.'),
          real_name: realName,
          is_bot: false,
          profile: { real_name: realName, display_name: realName.split(' ')[0] },
        },
      });
    },
    'chat.postMessage': (a) => {
      if (!a.channel) return webApiError('channel_not_found');
      if ((typeof a.text !== 'string' || a.text.trim() === '') && !a.blocks) return webApiError('no_text');
      if (typeof a.text === 'string' && a.text.length > 40_000) return webApiError('msg_too_long');
      const ts = `${clock++}.${String(++serial).padStart(6, '0')}`;
      return ok({
        channel: a.channel,
        ts,
        message: {
          type: 'message',
          subtype: 'bot_message',
          text: a.text,
          ts,
          bot_id: 'B0BOT',
          ...(a.thread_ts ? { thread_ts: a.thread_ts } : {}),
          ...(a.blocks ? { blocks: a.blocks } : {}),
        },
      });
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const send = async (a: WebApiAnswer) => {
      if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
      res.writeHead(a.status, { 'content-type': 'application/json; charset=utf-8', ...a.headers });
      res.end(JSON.stringify(a.body));
    };
    const match = /^\/api\/([a-zA-Z.]+)$/.exec((req.url ?? '').split('?')[0]!);
    if (req.method !== 'POST' || !match)
      return send({ status: 404, body: { ok: false, error: 'unknown_method' } });
    const raw = Buffer.concat(chunks).toString('utf8');
    const contentType = req.headers['content-type'];
    const args: Record<string, Json> = {};
    if (contentType?.startsWith('application/json')) Object.assign(args, raw ? JSON.parse(raw) : {});
    else
      for (const [k, v] of new URLSearchParams(raw)) {
        // The SDK sends objects and arrays JSON-encoded inside the form.
        args[k] = /^[[{]/.test(v) ? JSON.parse(v) : v;
      }
    const call: WebApiCall = {
      method: match[1]!,
      authorization: req.headers.authorization,
      contentType,
      args,
    };
    if (req.headers.authorization !== `Bearer ${token}`) return send(webApiError('invalid_auth'));
    calls.push(call);
    for (let i = 0; i < scripted.length; i++) {
      const answer = scripted[i]!(call);
      if (answer) {
        scripted.splice(i, 1);
        return send(answer);
      }
    }
    const method = methods[call.method];
    return send(method ? method(args) : webApiError('unknown_method'));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    /** The Web API's base, as SLACK_API_URL takes it. */
    url: `http://127.0.0.1:${port}/api`,
    calls,
    users,
    /** Answers the next call that `when` picks with `answer` (once). */
    script(when: (call: WebApiCall) => boolean, answer: WebApiAnswer) {
      scripted.push((call) => (when(call) ? answer : undefined));
    },
    /** `chat.postMessage` calls to one conversation (refused attempts included), in order. */
    postedTo(channel: string) {
      return calls.filter((c) => c.method === 'chat.postMessage' && c.args.channel === channel);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type SlackWebApi = Awaited<ReturnType<typeof startSlackWebApi>>;
