import { randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PNG_1X1 } from '../helpers/files.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';

const MB = 1024 * 1024;
/** Far more than any file the gallery bot takes (its sessions.maxFileBytes is the default 10 MB). */
const SEND_AT_MOST = 64 * MB;

/**
 * `POST /api/session/files` is read as a stream (MAX_BODY_BYTES does not apply): the upload's own
 * limits must bound what is read, whatever part of the body the bytes come in.
 */
describe('the upload route reads a bounded body', () => {
  let running: RunningHub;
  beforeAll(async () => {
    running = await startTestHub({ configDir: path.join(REPO_ROOT, 'test/fixtures/files') });
  });
  afterAll(async () => running?.stop());

  /**
   * Sends a chunked multipart body whose first part (`firstPart`, its headers) never ends until the
   * hub closes the connection or SEND_AT_MOST was sent, then the `file` part; resolves with the
   * hub's status line and how much was sent. Paced by the socket's own back-pressure.
   */
  async function sendEndlessPart(token: string, firstPart: string) {
    const boundary = `b-${randomUUID()}`;
    const socket = net.connect(Number(new URL(running.url).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let answer = '';
    socket.on('data', (d: Buffer) => {
      answer += d.toString();
    });
    socket.on('error', () => undefined);
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const chunk = (data: Buffer | string): boolean => {
      const bytes = Buffer.from(data);
      if (socket.destroyed) return false;
      return socket.write(
        Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]),
      );
    };
    socket.write(
      `POST /api/session/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    chunk(`--${boundary}\r\n${firstPart}\r\n\r\n`);
    let sent = 0;
    const junk = Buffer.alloc(256 * 1024, 0x61);
    while (!socket.destroyed && answer === '' && sent < SEND_AT_MOST) {
      sent += junk.length;
      if (!chunk(junk))
        await new Promise((resolve) => {
          socket.once('drain', resolve);
          socket.once('close', resolve);
        });
    }
    if (!socket.destroyed) {
      chunk(
        Buffer.concat([
          Buffer.from(
            `\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n`,
          ),
          PNG_1X1,
          Buffer.from(`\r\n--${boundary}--\r\n`),
        ]),
      );
      socket.write('0\r\n\r\n');
    }
    await Promise.race([closed, new Promise((resolve) => socket.once('data', resolve))]);
    socket.destroy();
    return { status: answer.split('\r\n')[0], sent };
  }

  it.each([
    ['a file part of another name', 'Content-Disposition: form-data; name="junk"; filename="junk.bin"'],
    ['a field', 'Content-Disposition: form-data; name="note"'],
  ])('refuses a body that goes on before the file, in %s, and stops reading it', async (_what, part) => {
    const { token } = await apiClient(running.url).createSession('gallery');
    const { status, sent } = await sendEndlessPart(token, part);
    // The hub stopped reading and closed the connection: far less than everything was sent.
    expect(sent).toBeLessThan(SEND_AT_MOST);
    // Its 413 goes out before the close; a client still sending may lose it to the reset the close
    // of a socket with unread bytes is (TCP), so no answer at all is the other outcome.
    expect(['HTTP/1.1 413 Payload Too Large', '']).toContain(status);
  });
});
