import fs from 'node:fs/promises';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/database.ts';
import { ServerProcess } from '../helpers/server-process.ts';

/** Requests after which the hub still answering shows it took in what came before them. */
const HEALTH_ROUNDS = 20;

/**
 * Odd endings of connections from anyone on the internet: the hub (the real process, as `npm
 * start` runs it) answers them and goes on serving. A socket error nobody listens for ends a
 * Node process, and with it every channel of the hub.
 */
describe('what a stranger does to a connection does not end the hub', () => {
  let dataDir: string;
  let server: ServerProcess;

  beforeAll(async () => {
    dataDir = await tempDir('sbt-resets-');
    // Only the shop's pages may open the widget's socket: another origin's upgrade is refused.
    server = new ServerProcess({ PORT: '0', DATA_DIR: dataDir, WEB_ALLOWED_ORIGINS: 'https://shop.example' });
    await server.start();
  });
  afterAll(async () => {
    await server?.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  /** The hub answers /healthz again and again, and has not exited meanwhile. */
  async function stillServing(): Promise<void> {
    for (let i = 0; i < HEALTH_ROUNDS; i++) {
      expect(server.crashed).toBeUndefined();
      const res = await fetch(`${server.url}/healthz`).catch((err: Error) => err);
      expect(res).toBeInstanceOf(Response);
      expect((res as Response).status).toBe(200);
    }
    expect(server.crashed).toBeUndefined();
  }

  /** Sends `request` on a raw connection, reads the status line, then resets the connection. */
  async function statusThenReset(request: string): Promise<string> {
    const socket = net.connect(server.port!, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const answered = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        const end = text.indexOf('\r\n');
        if (end >= 0) resolve(text.slice(0, end));
      });
    });
    socket.write(request);
    const status = await answered;
    socket.resetAndDestroy();
    return status;
  }

  it('a WebSocket upgrade the hub refuses, then a reset', async () => {
    for (const path of ['/not-the-socket', '/ws']) {
      const status = await statusThenReset(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
          // A foreign origin: /ws refuses it with 403 (the other path is 404 whatever it says).
          'Origin: https://elsewhere.example\r\n\r\n',
      );
      expect(status).toMatch(/^HTTP\/1\.1 40[34] /);
      await stillServing();
    }
  });

  /** Uploads one part, named `field`, whose body ends before the part's closing boundary. */
  async function uploadCutShort(field: string, content: string): Promise<number> {
    const opened = await fetch(`${server.url}/api/session`, { method: 'POST' });
    const { token } = (await opened.json()) as { token: string };
    const boundary = 'cut-short';
    const body =
      `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="note.bin"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n${content}`;
    const res = await fetch(`${server.url}/api/session/files`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
      },
      body,
    });
    return res.status;
  }

  it('a file upload whose body ends inside a part that is not the file', async () => {
    expect(await uploadCutShort('other', 'the body ends here, without its closing boundary')).toBe(400);
    await stillServing();
  });

  it('a file upload whose body ends inside a file the hub already refused', async () => {
    // A program's first bytes: refused as soon as they are read, before the body ends.
    expect(await uploadCutShort('file', `MZ\u0090\u0000${'x'.repeat(64 * 1024)}`)).toBeGreaterThanOrEqual(
      400,
    );
    await stillServing();
  });
});
