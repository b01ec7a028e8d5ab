import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/** One request the fake Bot Connector received. */
export interface ConnectorRequest {
  method: string;
  /** The conversation id, decoded from the path. */
  conversationId: string;
  /** `…/activities/{activityId}`: the activity this one replies to; absent for `…/activities`. */
  replyToId: string | undefined;
  authorization: string | undefined;
  // biome-ignore lint/suspicious/noExplicitAny: activities are walked freely by the tests
  body: any;
  /** The id the connector gave the activity (on success). */
  id?: string;
  status: number;
}

export interface ConnectorAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * A local stand-in for the Bot Connector service (`serviceUrl` of the activities a test posts):
 * `POST /v3/conversations/{conversationId}/activities` and
 * `POST /v3/conversations/{conversationId}/activities/{activityId}`, answering 201 with the
 * `ResourceResponse` (`{"id"}`) as the real service does, and the service's error body
 * (`{"error": {"code", "message"}}`) otherwise. `script` makes the next matching request fail.
 */
export async function startBotConnector() {
  const requests: ConnectorRequest[] = [];
  const scripted: { when: (r: ConnectorRequest) => boolean; answer: ConnectorAnswer }[] = [];
  let serial = 0;

  const files = new Map<
    string,
    { bytes: Buffer; type: string; authorize?: (authorization: string | undefined) => boolean }
  >();
  /** Downloads of hosted files: which, with what `Authorization`, and the answer. */
  const fileRequests: { id: string; authorization: string | undefined; status: number }[] = [];
  /** Hosted files whose bytes wait for a release (a slow download), and the downloads waiting. */
  const held = new Map<string, Promise<void>>();
  /** Hosted files whose downloads fail for now: how many more times, with which status. */
  const failingFiles = new Map<string, { left: number; status: number }>();
  const waiting: string[] = [];
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const send = (a: ConnectorAnswer) => {
      res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
      res.end(a.body === undefined ? '' : JSON.stringify(a.body));
    };
    const url = new URL(req.url ?? '/', 'http://connector');
    // Files people attached in Teams, hosted by the connector (`/v3/attachments/{id}/views/original`).
    const hosted = /^\/v3\/attachments\/([^/]+)\/views\/original$/.exec(url.pathname);
    if (req.method === 'GET' && hosted && files.has(hosted[1]!)) {
      const f = files.get(hosted[1]!)!;
      const authorization = req.headers.authorization;
      // Teams-hosted files answer only with the bot's token (401 as the real service does without it).
      const allowed = f.authorize ? f.authorize(authorization) : true;
      const failure = allowed ? failingFiles.get(hosted[1]!) : undefined;
      const failing = failure !== undefined && failure.left > 0;
      fileRequests.push({
        id: hosted[1]!,
        authorization,
        status: !allowed ? 401 : failing ? failure.status : 200,
      });
      if (!allowed) {
        send({ status: 401, body: { message: 'Authorization has been denied for this request.' } });
        return;
      }
      if (failing) {
        failure.left--;
        send({ status: failure.status, body: { message: 'The attachment service is having a moment.' } });
        return;
      }
      const gate = held.get(hosted[1]!);
      if (gate) {
        waiting.push(hosted[1]!);
        await gate;
      }
      res.writeHead(200, { 'content-type': f.type, 'content-length': String(f.bytes.length) });
      res.end(f.bytes);
      return;
    }
    const match = /^\/v3\/conversations\/([^/]+)\/activities(?:\/([^/]+))?\/?$/.exec(url.pathname);
    if (req.method !== 'POST' || !match) {
      send({
        status: 404,
        body: { error: { code: 'NotFound', message: `no route ${req.method} ${url.pathname}` } },
      });
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send({ status: 400, body: { error: { code: 'BadSyntax', message: 'the body is not JSON' } } });
      return;
    }
    const request: ConnectorRequest = {
      method: req.method,
      conversationId: decodeURIComponent(match[1]!),
      replyToId: match[2] === undefined ? undefined : decodeURIComponent(match[2]),
      authorization: req.headers.authorization,
      body,
      status: 0,
    };
    requests.push(request);
    const index = scripted.findIndex((s) => s.when(request));
    if (index >= 0) {
      const { answer } = scripted.splice(index, 1)[0]!;
      request.status = answer.status;
      send(answer);
      return;
    }
    request.id = `1:bot-activity-${++serial}`;
    request.status = 201;
    send({ status: 201, body: { id: request.id } });
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
    /** Hosts a file a person attached; its `contentUrl` is `${url}/v3/attachments/{id}/views/original`. */
    addFile(
      id: string,
      bytes: Buffer,
      type: string,
      options: { authorize?: (authorization: string | undefined) => boolean } = {},
    ) {
      files.set(id, { bytes, type, ...options });
    },
    fileRequests,
    /** The next `times` downloads of hosted file `id` answer `status` (Infinity: every one). */
    failFile(id: string, times: number, status = 503) {
      failingFiles.set(id, { left: times, status });
    },
    waiting,
    /** Holds the bytes of hosted file `id` back until the returned function is called. */
    hold(id: string): () => void {
      let release = () => {};
      held.set(
        id,
        new Promise<void>((resolve) => {
          release = resolve;
        }),
      );
      return () => {
        held.delete(id);
        release();
      };
    },
    /** The `serviceUrl` to put in activities. */
    url: `http://127.0.0.1:${port}/`,
    requests,
    /** Answers the next request that `when` picks with `answer` (once). */
    script(when: (r: ConnectorRequest) => boolean, answer: ConnectorAnswer) {
      scripted.push({ when, answer });
    },
    /** Message activities received for a conversation, in order (failed attempts included). */
    messages(conversationId: string) {
      return requests.filter((r) => r.conversationId === conversationId && r.body.type === 'message');
    },
    /** Message activities the connector accepted for a conversation. */
    delivered(conversationId: string) {
      return this.messages(conversationId).filter((r) => r.status === 201);
    },
    typing(conversationId: string) {
      return requests.filter((r) => r.conversationId === conversationId && r.body.type === 'typing');
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type BotConnector = Awaited<ReturnType<typeof startBotConnector>>;

/** The connector's throttling answer. */
export function tooManyRequests(retryAfterSeconds: number): ConnectorAnswer {
  return {
    status: 429,
    headers: { 'retry-after': String(retryAfterSeconds) },
    body: { error: { code: 'TooManyRequests', message: 'Too many requests' } },
  };
}
