import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** Node's parser refusals, answered in the API's error shape instead of its bare status lines. */
const REFUSALS: Record<string, { status: number; reason: string; code: string; message: string }> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    reason: 'Request Header Fields Too Large',
    code: 'headers_too_large',
    message: 'the request line and headers are too large (a query string or a header is too long)',
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    reason: 'Request Timeout',
    code: 'request_timeout',
    message: 'the request did not arrive in time',
  },
};
const NOT_HTTP = {
  status: 400,
  reason: 'Bad Request',
  code: 'bad_request',
  message: 'the request is not valid HTTP',
};

/**
 * A request Node refuses before the app sees it (a URL or headers over its 16 KiB limit, bytes
 * that are not HTTP, a request that never finished arriving) is answered as every other error is,
 * `{"error": {"code", "message"}}` with the status Node would give, and its connection closed.
 * Node's own answer is a status line with no body. A connection already reset is only let go.
 */
export function answerClientErrorsAsJson(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex & { bytesWritten?: number }) => {
    if (socket.writable && socket.bytesWritten === 0 && err.code !== 'ECONNRESET') {
      const refusal = (err.code && REFUSALS[err.code]) || NOT_HTTP;
      const body = JSON.stringify({ error: { code: refusal.code, message: refusal.message } });
      // Written, then the socket destroyed, as Node's own handler does: the answer is small enough to go at once.
      socket.write(
        `HTTP/1.1 ${refusal.status} ${refusal.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  });
}
