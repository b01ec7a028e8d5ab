import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/database.ts';
import { PNG_1X1 } from '../helpers/files.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

/** The `slow` bot: `hold` lasts until the test writes `$SLOW_BOT_DIR/release`. */
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/shutdown');

/**
 * `POST /api/session/files` on a socket of its own, asking `Expect: 100-continue`: `taken`
 * resolves once the server answered 100, that is once it is handling the request (Node emits the
 * request as it writes the 100), its body not sent yet; `finish` sends the body and resolves with
 * the answer's head, read until the server closes the connection.
 */
async function uploadInTwoSteps(url: string, token: string) {
  const boundary = `b-${randomUUID()}`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="dot.png"\r\nContent-Type: image/png\r\n\r\n`,
    ),
    PNG_1X1,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
  socket.on('error', () => undefined);
  let received = '';
  socket.on('data', (d: Buffer) => {
    received += d.toString();
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(
    `POST /api/session/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
  );
  await until(
    () => received,
    (r) => r.startsWith('HTTP/1.1 100 Continue\r\n\r\n'),
  );
  return {
    async finish() {
      received = '';
      socket.write(body);
      await closed;
      return received.slice(0, received.indexOf('\r\n\r\n')).split('\r\n');
    },
  };
}

describe('a stopping hub answers the requests in flight, refuses new ones, then closes', () => {
  let running: RunningHub;
  let slowBotDir: string;

  beforeAll(async () => {
    slowBotDir = await tempDir('sbt-slow-bot-');
    // The slow bot runs in this process: it reads its directory from this environment.
    process.env.SLOW_BOT_DIR = slowBotDir;
    // Long enough that only the stop ends the chat's wait.
    running = await startTestHub({ configDir: CONFIG_DIR, chatWaitMs: 120_000 });
  });
  afterAll(async () => {
    await fs.writeFile(path.join(slowBotDir, 'release'), '').catch(() => undefined);
    await running?.stop();
    delete process.env.SLOW_BOT_DIR;
    await fs.rm(slowBotDir, { recursive: true, force: true });
  });

  it('a chat waiting for a turn is answered 202 at once, an upload under way finishes, a late request gets 503', async () => {
    const api = apiClient(running.url);
    const session = await api.createSession('slow');
    const chat = api.chat(session.token, 'hold');
    await until(
      () => existsSync(path.join(slowBotDir, `${session.session_id}.started`)),
      (started) => started,
    );
    const upload = await uploadInTwoSteps(running.url, session.token);

    const stopped = running.hub.stop();
    // The message is queued (its turn runs on): the client is told so, not cut off.
    const answer = await chat;
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ status: 'queued' });
    expect(answer.headers.get('connection')).toBe('close');

    // A request arriving now (on a connection opened before the stop) is refused, and told to
    // go elsewhere; the ops routes still answer.
    const late = await running.hub.app.request('/api/session', { method: 'POST' });
    expect(late.status).toBe(503);
    expect(await late.json()).toMatchObject({ error: { code: 'stopping' } });
    expect(late.headers.get('connection')).toBe('close');
    expect(late.headers.get('retry-after')).toBe('1');
    const ready = await running.hub.app.request('/readyz');
    expect([ready.status, await ready.json()]).toEqual([503, { status: 'stopping' }]);
    expect((await running.hub.app.request('/healthz')).status).toBe(200);

    // The upload the server had taken is read to its end and answered.
    const head = await upload.finish();
    expect(head[0]).toBe('HTTP/1.1 201 Created');
    expect(head).toContain('Connection: close');

    // The server has closed; the stop waits for the turn in flight (the process's deadline
    // bounds that wait: e2e/shutdown.test.ts).
    await until(
      () => running.hub.step,
      (step) => step === 'queue: turns in flight',
    );
    await fs.writeFile(path.join(slowBotDir, 'release'), '');
    await stopped;
    expect(running.hub.step).toBeUndefined();
  });
});
