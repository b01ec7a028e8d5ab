import { describe, expect, it } from 'vitest';
import { GraphMediaClient, GraphRequestError } from '../../adapters/whatsapp/cloud/graph.ts';

/** An answer whose body records whether it was cancelled (its connection given back). */
function answer(status: number, json?: unknown) {
  const seen = { cancelled: false };
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      if (json !== undefined) {
        c.enqueue(new TextEncoder().encode(JSON.stringify(json)));
        c.close();
      }
    },
    cancel() {
      seen.cancelled = true;
    },
  });
  return { res: new Response(body, { status, headers: { 'content-type': 'application/json' } }), seen };
}

describe('GraphMediaClient.download', () => {
  const client = (fetch: typeof globalThis.fetch) =>
    new GraphMediaClient({
      baseUrl: 'http://graph.test',
      version: 'v21.0',
      accessToken: 't',
      timeoutMs: 1000,
      fetch,
    });

  it("gives back the connection of a failed answer (its body cancelled), the media info's or the download's", async () => {
    // The attachment retry asks again after a 5xx: an unread body would hold a connection each time.
    const info = answer(503);
    await expect(client(async () => info.res).download('m1')).rejects.toMatchObject({
      details: { httpStatus: 503 },
    });
    expect(info.seen.cancelled).toBe(true);

    const download = answer(502);
    const answers = [answer(200, { url: 'http://cdn.test/m2', mime_type: 'image/png' }).res, download.res];
    await expect(client(async () => answers.shift()!).download('m2')).rejects.toBeInstanceOf(
      GraphRequestError,
    );
    expect(download.seen.cancelled).toBe(true);
  });
});
