import fs from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { WebhookEventSchema } from '../../src/webhooks/events.ts';
import { verifySignature } from '../../src/webhooks/signature.ts';
import { deadEvents } from '../../src/webhooks/store.ts';
import { switchboardCli } from './cli.ts';
import type { RunningHub } from './hub.ts';
import { until } from './until.ts';

/** The signing secret the test bots' webhooks use, and the variable that holds it. */
export const SECRET = 'whsec-test-0123456789';
export const WEBHOOK_SECRET_ENV = 'SB_TEST_WEBHOOK_SECRET';

/**
 * A config dir with one bot, `hooks`, whose bot.json sends the session and message events to
 * `url`; `extra`: more files of the bot (a script), `events`: other subscriptions.
 */
export async function webhookConfigDir(
  url: string,
  extra: Record<string, string> = {},
  events?: string[],
): Promise<string> {
  // The bot.json below names the secret by its variable; a hub in this process reads it from here.
  process.env[WEBHOOK_SECRET_ENV] = SECRET;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sb-webhooks-'));
  await fs.mkdir(path.join(dir, 'bots/hooks'), { recursive: true });
  for (const [name, text] of Object.entries(extra))
    await fs.writeFile(path.join(dir, 'bots/hooks', name), text);
  await fs.writeFile(
    path.join(dir, 'bots/hooks/bot.json'),
    JSON.stringify({
      greeting: 'Hello from hooks',
      defaultReply: 'Noted.',
      webhooks: [
        {
          url,
          secretEnv: WEBHOOK_SECRET_ENV,
          events: events ?? [
            'session.started',
            'session.ended',
            'message.received',
            'message.sent',
            'message.delivered',
          ],
        },
      ],
    }),
  );
  return dir;
}

export interface ReceivedEvent {
  id: string;
  type: string;
  created_at: string;
  bot: string;
  /** Null for a session-less event (a broadcast's). */
  session_id: string | null;
  data: Record<string, unknown>;
}

/**
 * A local receiver of the hub's event webhooks. `mode`: `up` answers 204, `fail` answers 500,
 * `hang` never answers (until `up` again). Verifies each request's signature with `secret`.
 * `stopListening()` and `listenAgain()` take it down and bring it back on the same port.
 */
export class WebhookReceiver {
  mode: 'up' | 'fail' | 'hang' = 'up';
  /** Accepted events (2xx answered), in arrival order; a retried event may appear twice. */
  readonly accepted: ReceivedEvent[] = [];
  /** Every request, whatever the answer. */
  requests = 0;
  badSignatures = 0;
  /** Events whose body is not the documented shape of its type (src/webhooks/events.ts, OpenAPI `webhooks`). */
  readonly badShapes: string[] = [];
  /** Event ids answered 500 whatever the mode. */
  readonly refuse = new Set<string>();
  private readonly hung: ServerResponse[] = [];
  private server: Server | undefined;
  port = 0;

  constructor(private readonly secret: string = SECRET) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  async listen(port = 0): Promise<void> {
    const server = createServer((req, res) => void this.onRequest(req, res));
    server.keepAliveTimeout = 1;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  listenAgain(): Promise<void> {
    return this.listen(this.port);
  }

  async stopListening(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const res of this.hung.splice(0)) res.destroy();
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Answers the hung requests (500: the hub retries them) and stops hanging. */
  release(mode: 'up' | 'fail' = 'up'): void {
    this.mode = mode;
    for (const res of this.hung.splice(0)) res.writeHead(500).end();
  }

  get hanging(): number {
    return this.hung.length;
  }

  /** The first arrival of each event id, in arrival order (retried events count once). */
  firstArrivals(): ReceivedEvent[] {
    const seen = new Set<string>();
    return this.accepted.filter((e) => !seen.has(e.id) && seen.add(e.id));
  }

  /** The first arrival of each event id, per session, in arrival order. */
  bySession(): Map<string | null, ReceivedEvent[]> {
    const seen = new Set<string>();
    const out = new Map<string | null, ReceivedEvent[]>();
    for (const e of this.accepted) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      out.set(e.session_id, [...(out.get(e.session_id) ?? []), e]);
    }
    return out;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    this.requests++;
    if (!verifySignature(this.secret, String(req.headers['switchboard-signature'] ?? ''), body)) {
      this.badSignatures++;
      res.writeHead(401).end();
      return;
    }
    const event = JSON.parse(body) as ReceivedEvent;
    const shape = WebhookEventSchema.safeParse(event);
    if (!shape.success) this.badShapes.push(`${event.type}: ${shape.error.message} in ${body}`);
    if (this.mode === 'hang') {
      this.hung.push(res);
      return;
    }
    if (this.mode === 'fail' || this.refuse.has(event.id)) {
      res.writeHead(500).end();
      return;
    }
    this.accepted.push(event);
    res.writeHead(204).end();
  }
}

/**
 * `receiver` listening, then the hub `start(receiver.url)` returns; stopping that hub stops the
 * receiver too (and a hub that fails to start leaves no receiver listening).
 */
export async function startWithReceiver(
  receiver: WebhookReceiver,
  start: (url: string) => Promise<RunningHub>,
): Promise<RunningHub> {
  await receiver.listen();
  const running = await start(receiver.url).catch(async (err: unknown) => {
    await receiver.stopListening();
    throw err;
  });
  return {
    ...running,
    stop: async () => {
      await running.stop();
      await receiver.stopListening();
    },
  };
}

/**
 * `receiver` takes every event again, `switchboard webhooks replay --id <eventId>` puts the one
 * dead-lettered event back, the receiver gets it, and nothing is dead-lettered any more.
 */
export async function replayDeadEvent(
  running: RunningHub,
  receiver: WebhookReceiver,
  eventId: string,
): Promise<void> {
  receiver.refuse.clear();
  expect(await switchboardCli(running, ['webhooks', 'replay', '--id', eventId])).toContain(
    'put 1 dead-lettered event',
  );
  await until(
    () => receiver.accepted.map((e) => e.id),
    (e) => e.includes(eventId),
  );
  expect(await deadEvents(running.hub.db)).toEqual([]);
}
