import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Json } from '../fixtures/telegram/updates.ts';

/** One Bot API call the stand-in received. */
export interface BotApiCall {
  method: string;
  body: Record<string, Json>;
}

export interface BotApiAnswer {
  status: number;
  body: unknown;
  /** Answer this much later (a slow platform). */
  delayMs?: number;
}

/** The Bot API's error body: `{"ok": false, "error_code", "description", "parameters"?}`. */
export function botApiError(
  code: number,
  description: string,
  parameters?: Record<string, unknown>,
): BotApiAnswer {
  return {
    status: code,
    body: { ok: false, error_code: code, description, ...(parameters ? { parameters } : {}) },
  };
}

const SECRET_TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

/**
 * A local stand-in for `api.telegram.org` speaking the Bot API over HTTP: `POST /bot<token>/<method>`
 * with a JSON body (as grammY sends it), answering `{"ok": true, "result": …}` or the documented
 * error bodies (401 Unauthorized for another token, 400 Bad Request for bad parameters, 404 for an
 * unknown method). It holds the webhook registration. A test scripts other answers with `script`.
 */
export async function startTelegramBotApi(
  token: string,
  bot = { id: Number(token.split(':')[0]), username: 'switchboard_test_bot' },
) {
  const calls: BotApiCall[] = [];
  const scripted: ((call: BotApiCall) => BotApiAnswer | undefined)[] = [];
  let webhook = { url: '', secret: '', allowedUpdates: [] as string[] };
  let nextMessageId = 1;

  const ok = (result: unknown): BotApiAnswer => ({ status: 200, body: { ok: true, result } });

  const methods: Record<string, (b: Record<string, Json>) => BotApiAnswer> = {
    getMe: () => ok({ id: bot.id, is_bot: true, first_name: 'Switchboard', username: bot.username }),
    sendMessage: (b) => {
      if (b.chat_id === undefined) return botApiError(400, 'Bad Request: chat_id is empty');
      const text = typeof b.text === 'string' ? b.text : '';
      if (text.trim() === '') return botApiError(400, 'Bad Request: message text is empty');
      if (text.length > 4096) return botApiError(400, 'Bad Request: message is too long');
      const chatId = Number(b.chat_id);
      return ok({
        message_id: nextMessageId++,
        from: { id: bot.id, is_bot: true, first_name: 'Switchboard', username: bot.username },
        chat: { id: chatId, type: chatId > 0 ? 'private' : 'group' },
        date: Math.floor(Date.now() / 1000),
        text,
      });
    },
    sendChatAction: (b) =>
      b.chat_id === undefined ? botApiError(400, 'Bad Request: chat_id is empty') : ok(true),
    answerCallbackQuery: (b) =>
      b.callback_query_id
        ? ok(true)
        : botApiError(
            400,
            'Bad Request: query is too old and response timeout expired or query ID is invalid',
          ),
    setWebhook: (b) => {
      const url = typeof b.url === 'string' ? b.url : '';
      if (url !== '' && !url.startsWith('https://'))
        return botApiError(400, 'Bad Request: bad webhook: An HTTPS URL must be provided for webhook');
      if (b.secret_token !== undefined && !SECRET_TOKEN.test(String(b.secret_token)))
        return botApiError(400, 'Bad Request: secret token contains unallowed characters');
      webhook = {
        url,
        secret: String(b.secret_token ?? ''),
        allowedUpdates: Array.isArray(b.allowed_updates) ? b.allowed_updates : [],
      };
      return { status: 200, body: { ok: true, result: true, description: 'Webhook was set' } };
    },
    getWebhookInfo: () =>
      ok({
        url: webhook.url,
        has_custom_certificate: false,
        pending_update_count: 0,
        ...(webhook.allowedUpdates.length > 0 ? { allowed_updates: webhook.allowedUpdates } : {}),
      }),
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const send = async (a: BotApiAnswer) => {
      if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.body));
    };
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec((req.url ?? '').split('?')[0]!);
    if (!match) return send(botApiError(404, 'Not Found'));
    if (match[1] !== token) return send(botApiError(401, 'Unauthorized'));
    let body: Record<string, Json> = {};
    const raw = Buffer.concat(chunks).toString('utf8');
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        return send(botApiError(400, "Bad Request: can't parse JSON"));
      }
    }
    const call: BotApiCall = { method: match[2]!, body };
    calls.push(call);
    for (let i = 0; i < scripted.length; i++) {
      const answer = scripted[i]!(call);
      if (answer) {
        scripted.splice(i, 1);
        return send(answer);
      }
    }
    const method = methods[call.method];
    return send(method ? method(body) : botApiError(404, 'Not Found'));
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
    url: `http://127.0.0.1:${port}`,
    calls,
    webhook: () => webhook,
    /** Answers the next call that `when` picks with `answer` (once). */
    script(when: (call: BotApiCall) => boolean, answer: BotApiAnswer) {
      scripted.push((call) => (when(call) ? answer : undefined));
    },
    /** The texts of the messages sent to one chat, in order (refused attempts included). */
    sentTo(chatId: string | number) {
      return calls.filter((c) => c.method === 'sendMessage' && String(c.body.chat_id) === String(chatId));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type TelegramBotApi = Awaited<ReturnType<typeof startTelegramBotApi>>;
