import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';

/** Node's limit on a request's line and headers (`--max-http-header-size`, 16 KiB). */
const NODE_HEADER_LIMIT = 16 * 1024;

/** Sends raw bytes and reads the whole answer until the hub closes the connection. */
function raw(url: string, request: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(request));
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString('utf8');
    });
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

const parse = (answer: string) => {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  const [statusLine = '', ...headers] = head.split('\r\n');
  return {
    status: Number(statusLine.split(' ')[1]),
    contentType: headers
      .find((h) => /^content-type:/i.test(h))
      ?.split(':')[1]
      ?.trim(),
    body: body ? (JSON.parse(body) as unknown) : undefined,
  };
};

/**
 * A request Node's HTTP parser refuses before any route sees it — a query string past Node's
 * header limit, bytes that are not HTTP — is answered in the API's error shape too, with the
 * status Node gives it, not a bare status line.
 */
describe('requests refused before routing', () => {
  let running: RunningHub;
  beforeAll(async () => {
    running = await startTestHub();
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('answers a URL past the header limit 431 headers_too_large, as JSON', async () => {
    const query = 'a'.repeat(NODE_HEADER_LIMIT + 1);
    const answer = await raw(
      running.url,
      `GET /api/session/messages?after=${query} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n`,
    );
    expect(parse(answer)).toEqual({
      status: 431,
      contentType: 'application/json',
      body: { error: { code: 'headers_too_large', message: expect.any(String) } },
    });
  });

  it('answers bytes that are not HTTP 400 bad_request, as JSON', async () => {
    expect(parse(await raw(running.url, 'HELLO THERE\r\n\r\n'))).toEqual({
      status: 400,
      contentType: 'application/json',
      body: { error: { code: 'bad_request', message: 'the request is not valid HTTP' } },
    });
  });

  it('still answers the next request on a new connection', async () => {
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
  });
});
