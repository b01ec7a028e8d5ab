import WebSocket from 'ws';

/**
 * The client side of bench/websocket.ts, in a process of its own so that its sockets do not
 * count in the server's memory. Driven over IPC:
 * - `create`: opens N sessions (hello without token, until the greeting) and closes their sockets,
 *   keeping the tokens;
 * - `connect`: opens one socket for each of `count` more sessions, with its token, and keeps it
 *   open, idle;
 * - `chat`: the first K sessions send messages one after another, each round trip measured;
 * - `close`: ends it all.
 */

type Command =
  | { cmd: 'create'; url: string; count: number; concurrency: number }
  | { cmd: 'connect'; url: string; count: number; concurrency: number }
  | { cmd: 'chat'; sessions: number; messagesEach: number }
  | { cmd: 'close' };

interface Frame {
  type: string;
  role?: string;
  seq?: number;
  inReplyTo?: string;
  sessionId?: string;
  token?: string;
}

interface Session {
  token: string;
  sessionId: string;
  lastSeq: number;
  ws?: WebSocket;
  /** Waiting for the reply to this envelope id. */
  waiting?: { envelopeId: string; resolve: () => void };
}

const sessions: Session[] = [];
const STEP_TIMEOUT_MS = 120_000;

const reply = (message: unknown) => process.send?.(message);

/** Opens a socket, says hello, and resolves when `done` says so for a frame. */
function socket(url: string, hello: object, done: (f: Frame, ws: WebSocket) => boolean): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => reject(new Error('no answer in time')), STEP_TIMEOUT_MS);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', ...hello })));
    ws.on('error', (err) => reject(err));
    const onFrame = (data: WebSocket.RawData) => {
      if (done(JSON.parse(data.toString()) as Frame, ws)) {
        clearTimeout(timer);
        ws.off('message', onFrame);
        resolve(ws);
      }
    };
    ws.on('message', onFrame);
  });
}

async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<number> {
  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return Date.now() - started;
}

async function create(url: string, count: number, concurrency: number): Promise<number> {
  return pool(count, concurrency, async () => {
    const s: Session = { token: '', sessionId: '', lastSeq: 0 };
    const ws = await socket(url, { bot: 'default' }, (f) => {
      if (f.type === 'welcome') {
        s.token = f.token!;
        s.sessionId = f.sessionId!;
      }
      if (f.type === 'message') s.lastSeq = Math.max(s.lastSeq, f.seq!);
      return f.type === 'message' && f.role === 'assistant' && !!f.inReplyTo?.endsWith(':start');
    });
    ws.close();
    sessions.push(s);
  });
}

async function connect(url: string, count: number, concurrency: number): Promise<number> {
  const idle = sessions.filter((s) => !s.ws).slice(0, count);
  return pool(idle.length, concurrency, async (i) => {
    const s = idle[i]!;
    s.ws = await socket(url, { token: s.token, lastSeq: s.lastSeq }, (f) => f.type === 'welcome');
    s.ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as Frame;
      if (f.type === 'message' && s.waiting && f.inReplyTo === s.waiting.envelopeId) {
        const done = s.waiting.resolve;
        s.waiting = undefined;
        done();
      }
    });
  });
}

async function chat(count: number, messagesEach: number): Promise<number[]> {
  const rtts: number[] = [];
  await Promise.all(
    sessions.slice(0, count).map(async (s, i) => {
      for (let m = 0; m < messagesEach; m++) {
        const id = `b${i}m${m}`;
        const envelopeId = `web:${s.sessionId}:${id}`;
        const started = process.hrtime.bigint();
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no reply to ${envelopeId}`)), STEP_TIMEOUT_MS);
          s.waiting = {
            envelopeId,
            resolve: () => {
              clearTimeout(timer);
              resolve();
            },
          };
          s.ws!.send(JSON.stringify({ type: 'message', id, text: `bench ${m}` }));
        });
        rtts.push(Number(process.hrtime.bigint() - started) / 1e6);
      }
    }),
  );
  return rtts;
}

process.on('message', (command: Command) => {
  const run = async () => {
    switch (command.cmd) {
      case 'create':
        return reply({ ok: 'create', ms: await create(command.url, command.count, command.concurrency) });
      case 'connect':
        return reply({ ok: 'connect', ms: await connect(command.url, command.count, command.concurrency) });
      case 'chat':
        return reply({ ok: 'chat', rtts: await chat(command.sessions, command.messagesEach) });
      case 'close':
        for (const s of sessions) s.ws?.terminate();
        process.exit(0);
    }
  };
  run().catch((err: Error) => reply({ error: err.message }));
});
reply({ ok: 'ready' });
