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
  /** Files people sent: file_id → bytes and the path `getFile` gives (served at /file/bot<token>/<path>). */
  const hosted = new Map<string, { path: string; bytes: Buffer }>();
  /** Files the bot uploaded with sendPhoto/sendDocument (multipart), in order. */
  const uploads: { method: string; chatId: string; field: string; name: string; bytes: Buffer }[] = [];
  let fileSerial = 0;

  const ok = (result: unknown): BotApiAnswer => ({ status: 200, body: { ok: true, result } });
  const botUser = { id: bot.id, is_bot: true, first_name: 'Switchboard', username: bot.username };
  /** The Message the Bot API answers a send with: from the bot, in the chat, now, then `content`. */
  const sentMessage = (chatIdParam: Json, content: Record<string, unknown>): BotApiAnswer => {
    const chatId = Number(chatIdParam);
    return ok({
      message_id: nextMessageId++,
      from: botUser,
      chat: { id: chatId, type: chatId > 0 ? 'private' : 'group' },
      date: Math.floor(Date.now() / 1000),
      ...content,
    });
  };

  const methods: Record<string, (b: Record<string, Json>) => BotApiAnswer> = {
    getMe: () => ok(botUser),
    sendMessage: (b) => {
      if (b.chat_id === undefined) return botApiError(400, 'Bad Request: chat_id is empty');
      const text = typeof b.text === 'string' ? b.text : '';
      if (text.trim() === '') return botApiError(400, 'Bad Request: message text is empty');
      if (text.length > 4096) return botApiError(400, 'Bad Request: message is too long');
      return sentMessage(b.chat_id, { text });
    },
    sendPhoto: (b) => sendFile('photo', b),
    sendDocument: (b) => sendFile('document', b),
    getFile: (b) => {
      const entry = hosted.get(String(b.file_id));
      if (!entry) return botApiError(400, 'Bad Request: invalid file_id');
      return ok({
        file_id: b.file_id,
        file_unique_id: `U${b.file_id}`,
        file_size: entry.bytes.length,
        file_path: entry.path,
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

  /** sendPhoto/sendDocument: the file is an uploaded part (multipart), a file_id, or a URL. */
  function sendFile(field: 'photo' | 'document', b: Record<string, Json>): BotApiAnswer {
    if (b.chat_id === undefined) return botApiError(400, 'Bad Request: chat_id is empty');
    const file = b[field];
    if (file === undefined || file === '')
      return botApiError(400, `Bad Request: there is no ${field} in the request`);
    if (typeof b.caption === 'string' && b.caption.length > 1024)
      return botApiError(400, 'Bad Request: message caption is too long');
    return sentMessage(b.chat_id, {
      ...(typeof b.caption === 'string' ? { caption: b.caption } : {}),
      ...(field === 'photo'
        ? {
            photo: [
              { file_id: `AgAC${++fileSerial}`, file_unique_id: `AQAD${fileSerial}`, width: 1, height: 1 },
            ],
          }
        : { document: { file_id: `BQAC${++fileSerial}`, file_unique_id: `AgAD${fileSerial}` } }),
    });
  }

  /** A multipart body as the Bot API reads it: fields, with `attach://<name>` naming a file part. */
  function readMultipart(raw: Buffer, contentType: string, method: string) {
    const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
    if (!boundary) throw new Error('multipart without a boundary');
    const body: Record<string, Json> = {};
    const parts = new Map<string, { name: string; bytes: Buffer }>();
    const delimiter = Buffer.from(`--${boundary}`);
    let at = raw.indexOf(delimiter);
    while (at !== -1) {
      const start = at + delimiter.length;
      if (raw.subarray(start, start + 2).toString() === '--') break;
      const next = raw.indexOf(delimiter, start);
      if (next === -1) break;
      const part = raw.subarray(start + 2, next - 2); // after CRLF, before the CRLF ending the part
      const split = part.indexOf('\r\n\r\n');
      const headers = part.subarray(0, split).toString('utf8');
      const content = part.subarray(split + 4);
      const name = /(?:^|;)\s*name="([^"]*)"/.exec(headers)?.[1] ?? '';
      // grammY writes `filename=<name>` unquoted; browsers quote it.
      const filename = /filename="([^"]*)"|filename=([^;\r\n]*)/
        .exec(headers)
        ?.slice(1)
        .find((x) => x !== undefined);
      if (filename !== undefined) parts.set(name, { name: filename, bytes: Buffer.from(content) });
      else {
        const value = content.toString('utf8');
        body[name] = /^[[{]/.test(value) ? JSON.parse(value) : value;
      }
      at = next;
    }
    for (const [key, value] of Object.entries(body)) {
      const part =
        typeof value === 'string' && value.startsWith('attach://') ? parts.get(value.slice(9)) : undefined;
      if (!part) continue;
      uploads.push({ method, chatId: String(body.chat_id), field: key, ...part });
      body[key] = { uploaded: part.name, size: part.bytes.length };
      parts.delete(value.slice(9));
    }
    // A file part sent under the parameter's own name.
    for (const [key, part] of parts) {
      uploads.push({ method, chatId: String(body.chat_id), field: key, ...part });
      body[key] = { uploaded: part.name, size: part.bytes.length };
    }
    return body;
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const send = async (a: BotApiAnswer) => {
      if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.body));
    };
    const path = (req.url ?? '').split('?')[0]!;
    const download = /^\/file\/bot([^/]+)\/(.+)$/.exec(path);
    if (req.method === 'GET' && download) {
      const entry = [...hosted.values()].find((f) => f.path === download[2]);
      if (download[1] !== token || !entry) return send(botApiError(404, 'Not Found'));
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(entry.bytes.length),
      });
      return res.end(entry.bytes);
    }
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(path);
    if (!match) return send(botApiError(404, 'Not Found'));
    if (match[1] !== token) return send(botApiError(401, 'Unauthorized'));
    let body: Record<string, Json> = {};
    const contentType = req.headers['content-type'] ?? '';
    const raw = Buffer.concat(chunks).toString('utf8');
    if (contentType.startsWith('multipart/form-data'))
      body = readMultipart(Buffer.concat(chunks), contentType, match[2]!);
    else if (raw !== '') {
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
    uploads,
    webhook: () => webhook,
    /** Holds a file a person sent, for `getFile` and the download; `path` is its file_path. */
    hostFile(fileId: string, bytes: Buffer, path = `documents/file_${fileId}`) {
      hosted.set(fileId, { path, bytes });
    },
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
