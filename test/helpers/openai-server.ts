import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request the fake received: the parsed body and the headers. */
export interface RecordedRequest {
  body: {
    model: string;
    messages: { role: string; content: string | null; tool_calls?: unknown[]; tool_call_id?: string }[];
    tools?: { type: string; function: { name: string; description: string; parameters: unknown } }[];
    tool_choice?: string;
    stream?: boolean;
    max_tokens?: number;
    temperature?: number;
  };
  headers: IncomingMessage['headers'];
}

/** What the fake answers: words, tool calls, an error status, or a response it writes itself. */
export type FakeReply =
  | { text: string; toolCalls?: undefined; status?: undefined }
  | { toolCalls: { name: string; arguments: unknown; id?: string }[]; text?: string; status?: undefined }
  | { status: number; headers?: Record<string, string>; body?: unknown }
  | {
      /** Writes the whole response (a misbehaving server); the fake ends it when it stops. */
      raw: (res: ServerResponse) => void;
      text?: undefined;
      toolCalls?: undefined;
      status?: undefined;
    };

/**
 * A raw reply that writes `piece()` every `everyMs` until the client goes away: a server that
 * never ends its response (keep-alive comments, an answer that ignores max_tokens, an endless body).
 */
export function endless(
  status: number,
  contentType: string,
  piece: () => string,
  everyMs = 5,
): Extract<FakeReply, { raw: unknown }> {
  return {
    raw: (res) => {
      res.writeHead(status, { 'content-type': contentType });
      const timer = setInterval(() => res.write(piece()), everyMs);
      res.on('close', () => clearInterval(timer));
    },
  };
}

/** A streamed chat completion chunk event carrying `delta`. */
export const chunkEvent = (delta: unknown): string =>
  `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`;

export type FakeHandler = (request: RecordedRequest, index: number) => FakeReply | Promise<FakeReply>;

/** The last user message's text. */
export const lastUserText = (r: RecordedRequest): string =>
  [...r.body.messages].reverse().find((m) => m.role === 'user')?.content ?? '';

/**
 * A local HTTP server speaking the OpenAI chat completions protocol (`POST /v1/chat/completions`):
 * JSON completions, or server-sent `chat.completion.chunk` events when `stream` is set, tool
 * calls, and error statuses. It records everything it was sent. By default it echoes the last
 * user message; `handle` sets what it answers.
 */
export class FakeOpenAi {
  readonly requests: RecordedRequest[] = [];
  private handler: FakeHandler = (r) => ({ text: `echo: ${lastUserText(r)}` });
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.serve(req, res).catch((err: Error) => {
        res.statusCode = 500;
        res.end(JSON.stringify({ error: { message: err.message } }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/v1`;
  }

  handle(handler: FakeHandler): void {
    this.handler = handler;
  }

  /** Requests whose system message starts with `prefix`. */
  withSystem(prefix: string): RecordedRequest[] {
    return this.requests.filter((r) => (r.body.messages[0]?.content ?? '').startsWith(prefix));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'not found' } }));
      return;
    }
    const recorded: RecordedRequest = {
      body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      headers: req.headers,
    };
    const index = this.requests.length;
    this.requests.push(recorded);
    const reply = await this.handler(recorded, index);
    if ('raw' in reply && reply.raw) {
      reply.raw(res);
      return;
    }
    if (reply.status !== undefined) {
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(
        JSON.stringify(reply.body ?? { error: { message: `status ${reply.status}`, type: 'fake_error' } }),
      );
      return;
    }
    const toolCalls = (reply.toolCalls ?? []).map((c, i) => ({
      id: c.id ?? `call_${index}_${i}`,
      type: 'function',
      function: {
        name: c.name,
        arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments),
      },
    }));
    const text = reply.text ?? '';
    const finish = toolCalls.length > 0 ? 'tool_calls' : 'stop';
    const base = {
      id: `chatcmpl-${index}`,
      created: Math.floor(Date.now() / 1000),
      model: recorded.body.model,
    };
    if (!recorded.body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          ...base,
          object: 'chat.completion',
          choices: [
            {
              index: 0,
              message: {
                role: 'assistant',
                content: text || null,
                ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
              },
              finish_reason: finish,
            },
          ],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = async (delta: unknown, finishReason: string | null = null) => {
      res.write(
        `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`,
      );
      await new Promise((r) => setImmediate(r));
    };
    await send({ role: 'assistant', content: '' });
    // Words with their spaces, as models stream them.
    for (const piece of text.match(/\S+\s*|\s+/g) ?? []) await send({ content: piece });
    for (const [i, call] of toolCalls.entries()) {
      await send({
        tool_calls: [
          { index: i, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } },
        ],
      });
      const args = call.function.arguments;
      const half = Math.ceil(args.length / 2);
      for (const part of [args.slice(0, half), args.slice(half)])
        if (part) await send({ tool_calls: [{ index: i, function: { arguments: part } }] });
    }
    await send({}, finish);
    res.end('data: [DONE]\n\n');
  }
}
