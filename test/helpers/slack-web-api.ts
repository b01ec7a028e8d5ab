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
  /** Files people shared, served at `url_private_download` (`/files-pri/...`) to the bot token. */
  const hosted = new Map<string, { bytes: Buffer; type: string }>();
  /** Hosted files whose downloads fail for now: how many more times, with which status. */
  const failingFiles = new Map<string, { left: number; status: number }>();
  /** Every download of a hosted file tried (failed ones too), by path. */
  const fileRequests: string[] = [];
  /** Uploads through `files.getUploadURLExternal`: Slack file id → what arrived at its upload URL. */
  const uploads = new Map<
    string,
    { filename: string; length: number; bytes?: Buffer; contentType?: string }
  >();
  /** `files.completeUploadExternal` calls: the files shared, where. */
  const shared: { files: { id: string; title?: string }[]; channel_id?: string; thread_ts?: string }[] = [];
  let base = '';

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
    'files.getUploadURLExternal': (a) => {
      const length = Number(a.length);
      if (!a.filename || !Number.isInteger(length) || length <= 0) return webApiError('invalid_arguments');
      const id = `F0${String(++serial).padStart(9, '0')}`;
      uploads.set(id, { filename: String(a.filename), length });
      return ok({ upload_url: `${base}/upload/v1/${id}`, file_id: id });
    },
    'files.completeUploadExternal': (a) => {
      const files = (Array.isArray(a.files) ? a.files : []) as { id: string; title?: string }[];
      if (files.length === 0) return webApiError('invalid_arguments');
      for (const f of files) {
        const u = uploads.get(f.id);
        // Slack refuses to complete an upload whose bytes never arrived, or arrived short.
        if (!u?.bytes || u.bytes.length !== u.length) return webApiError('file_not_found');
      }
      shared.push({
        files,
        ...(a.channel_id ? { channel_id: String(a.channel_id) } : {}),
        ...(a.thread_ts ? { thread_ts: String(a.thread_ts) } : {}),
      });
      return ok({ files: files.map((f) => ({ id: f.id, title: f.title ?? uploads.get(f.id)!.filename })) });
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
    const path = (req.url ?? '').split('?')[0]!;
    if (req.method === 'GET' && path.startsWith('/files-pri/')) {
      const file = hosted.get(path);
      fileRequests.push(path);
      const failure = failingFiles.get(path);
      if (file && failure && failure.left > 0) {
        failure.left--;
        res.writeHead(failure.status, { 'content-type': 'text/plain' });
        return res.end('files.slack.com is having a moment');
      }
      // Without the bot token Slack answers its sign-in page, with 200.
      if (!file || req.headers.authorization !== `Bearer ${token}`) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end('<!DOCTYPE html><html><body>Sign in to Slack</body></html>');
      }
      res.writeHead(200, { 'content-type': file.type, 'content-length': String(file.bytes.length) });
      return res.end(file.bytes);
    }
    const upload = /^\/upload\/v1\/(F0\d+)$/.exec(path);
    if (req.method === 'POST' && upload) {
      const u = uploads.get(upload[1]!);
      if (!u) return send({ status: 404, body: { ok: false } });
      u.bytes = Buffer.concat(chunks);
      if (req.headers['content-type']) u.contentType = req.headers['content-type'];
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(`OK - ${u.bytes.length}`);
    }
    const match = /^\/api\/([a-zA-Z.]+)$/.exec(path);
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
  base = `http://127.0.0.1:${port}`;
  return {
    /** The Web API's base, as SLACK_API_URL takes it. */
    url: `http://127.0.0.1:${port}/api`,
    calls,
    users,
    uploads,
    shared,
    /** Puts a file where Slack would serve it; returns its `url_private_download`. */
    hostFile(name: string, bytes: Buffer, type: string) {
      const path = `/files-pri/T123ABC456-F${++serial}/download/${encodeURIComponent(name)}`;
      hosted.set(path, { bytes, type });
      return `${base}${path}`;
    },
    /** The next `times` downloads of the file at `url` (as hostFile gave it) answer `status` (Infinity: every one). */
    failFile(url: string, times: number, status = 503) {
      failingFiles.set(new URL(url).pathname, { left: times, status });
    },
    /** Downloads of the file at `url` tried so far, failed ones included. */
    fileAttempts(url: string) {
      const wanted = new URL(url).pathname;
      return fileRequests.filter((p) => p === wanted).length;
    },
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
