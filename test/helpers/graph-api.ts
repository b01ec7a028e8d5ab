import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import busboy from 'busboy';
import type { Json } from '../fixtures/whatsapp/cloud-payloads.ts';

/** One request the fake Graph API received. */
export interface GraphRequest {
  version: string;
  phoneNumberId: string;
  authorization: string | undefined;
  body: Record<string, Json>;
  /** When it arrived (Date.now()). */
  at: number;
}

export interface GraphAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** Answer this much later (a slow platform). */
  delayMs?: number;
  /** Close the connection instead of answering (a platform, or the way to it, that is down). */
  drop?: boolean;
}

/** The Cloud API's answer to a send, with the wamid it assigned. */
export function graphSent(to: string, wamid = `wamid.${randomBytes(18).toString('base64url')}`): GraphAnswer {
  return {
    status: 200,
    body: { messaging_product: 'whatsapp', contacts: [{ input: to, wa_id: to }], messages: [{ id: wamid }] },
  };
}

/** The Graph API's error body (graph errors share this shape; Cloud API codes are in `code`). */
export function graphError(status: number, code: number, message: string, details?: string): GraphAnswer {
  return {
    status,
    body: {
      error: {
        message,
        type: 'OAuthException',
        code,
        ...(details ? { error_data: { messaging_product: 'whatsapp', details } } : {}),
        fbtrace_id: `A${randomBytes(8).toString('hex')}`,
      },
    },
  };
}

/**
 * A local stand-in for `graph.facebook.com` that speaks the Cloud API's send endpoint:
 * `POST /{version}/{phone_number_id}/messages` with a bearer token, answering as the real API
 * does (`{"messaging_product", "contacts", "messages": [{"id": "wamid..."}]}`, `{"success": true}`
 * for read receipts, Graph error bodies otherwise). A test scripts answers with `script`.
 */
export async function startGraphApi(accessToken: string) {
  const requests: GraphRequest[] = [];
  const scripted: ((req: GraphRequest) => GraphAnswer | undefined)[] = [];
  /** Media the platform holds, by media id: what people sent (for download) and what we uploaded. */
  const media = new Map<string, { bytes: Buffer; type: string; name?: string }>();
  /** Uploads received (`POST /{version}/{phone_number_id}/media`). */
  const uploads: { phoneNumberId: string; id: string; type: string; name?: string; bytes: Buffer }[] = [];
  /** Downloads of media bytes (with the token), by media id. */
  const downloads: string[] = [];
  /** Media whose bytes are held back until released (a slow download), by media id. */
  const held = new Map<string, { release: () => void; released: Promise<void> }>();
  /** Downloads that reached a held medium and wait for its release. */
  const waiting: string[] = [];
  /** Media whose downloads fail for now: how many more times, and with which status. */
  const failing = new Map<string, { left: number; status: number }>();
  /** Every download tried (failed ones too), by media id. */
  const downloadAttempts: string[] = [];
  /** Media ids the platform no longer holds (30 days after their upload, or deleted). */
  const expired = new Set<string>();
  let nextMediaId = 1_000_000_000_000_000;
  /** Uploads still to be refused (500), as a platform in trouble. */
  let uploadFailures = 0;
  let baseUrl = '';

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const authorized = req.headers.authorization === `Bearer ${accessToken}`;
    const info = /^\/(v\d+\.\d+)\/(\d+)$/.exec(req.url ?? '');
    if (req.method === 'GET' && info && media.has(info[2]!)) {
      if (!authorized) return void res.writeHead(401).end();
      const m = media.get(info[2]!)!;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          messaging_product: 'whatsapp',
          url: `${baseUrl}/whatsapp_business/attachments/?mid=${info[2]}`,
          mime_type: m.type,
          sha256: createHash('sha256').update(m.bytes).digest('base64'),
          file_size: m.bytes.length,
          id: info[2],
        }),
      );
      return;
    }
    const download = /^\/whatsapp_business\/attachments\/\?mid=(\d+)$/.exec(req.url ?? '');
    if (req.method === 'GET' && download) {
      if (!authorized) return void res.writeHead(401).end();
      const m = media.get(download[1]!);
      downloadAttempts.push(download[1]!);
      if (!m) return void res.writeHead(404).end();
      const failure = failing.get(download[1]!);
      if (failure && failure.left > 0) {
        failure.left--;
        res.writeHead(failure.status, { 'content-type': 'text/plain' });
        res.end('the media host is having a moment');
        return;
      }
      const gate = held.get(download[1]!);
      if (gate) {
        waiting.push(download[1]!);
        await gate.released;
      }
      downloads.push(download[1]!);
      res.writeHead(200, { 'content-type': m.type, 'content-length': String(m.bytes.length) });
      res.end(m.bytes);
      return;
    }
    const upload = /^\/(v\d+\.\d+)\/(\d+)\/media$/.exec(req.url ?? '');
    if (req.method === 'POST' && upload) {
      if (!authorized) return void res.writeHead(401).end();
      if (uploadFailures > 0) {
        uploadFailures--;
        req.resume();
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify(graphError(500, 2, 'Service temporarily unavailable').body));
        return;
      }
      const fields: Record<string, string> = {};
      let file: { bytes: Buffer; type: string; name?: string } | undefined;
      await new Promise<void>((resolve, reject) => {
        const parser = busboy({ headers: req.headers });
        parser.on('field', (name, value) => {
          fields[name] = value;
        });
        parser.on('file', (_name, stream, meta) => {
          const parts: Buffer[] = [];
          stream.on('data', (d: Buffer) => parts.push(d));
          stream.on('end', () => {
            file = { bytes: Buffer.concat(parts), type: meta.mimeType, name: meta.filename };
          });
        });
        parser.on('close', resolve);
        parser.on('error', reject);
        req.pipe(parser);
      });
      if (!file || fields.messaging_product !== 'whatsapp' || !fields.type) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify(graphError(400, 100, 'Invalid parameter').body));
        return;
      }
      // Never an id given before, nor one held (what people sent): ids of expired media stay dead.
      let id = String(nextMediaId++);
      while (media.has(id) || expired.has(id)) id = String(nextMediaId++);
      media.set(id, { ...file, type: fields.type });
      uploads.push({ phoneNumberId: upload[2]!, id, type: fields.type, name: file.name, bytes: file.bytes });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id }));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const send = async (a: GraphAnswer) => {
      if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
      if (a.drop) return void req.socket.destroy();
      res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
      res.end(JSON.stringify(a.body));
    };
    const match = /^\/(v\d+\.\d+)\/(\d+)\/messages$/.exec(req.url ?? '');
    if (req.method !== 'POST' || !match) {
      send(graphError(400, 100, 'Unsupported post request.'));
      return;
    }
    if (req.headers.authorization !== `Bearer ${accessToken}`) {
      send(graphError(401, 190, 'Invalid OAuth access token - Cannot parse access token'));
      return;
    }
    let body: Record<string, Json>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send(graphError(400, 100, 'Invalid parameter'));
      return;
    }
    const request: GraphRequest = {
      version: match[1]!,
      phoneNumberId: match[2]!,
      authorization: req.headers.authorization,
      body,
      at: Date.now(),
    };
    requests.push(request);
    for (let i = 0; i < scripted.length; i++) {
      const answer = scripted[i]!(request);
      if (answer) {
        scripted.splice(i, 1);
        await send(answer);
        return;
      }
    }
    if (body.messaging_product !== 'whatsapp') {
      send(graphError(400, 100, '(#100) The parameter messaging_product is required.'));
      return;
    }
    if (body.status === 'read') {
      send({ status: 200, body: { success: true } });
      return;
    }
    const sentIds = JSON.stringify(body);
    if ([...expired].some((id) => sentIds.includes(`"id":"${id}"`))) {
      // Meta's code for media it cannot use in a message, with its documented description.
      send(
        graphError(
          400,
          131053,
          '(#131053) Media upload error',
          'Unable to upload the media used in the message.',
        ),
      );
      return;
    }
    await send(graphSent(body.to));
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
  baseUrl = `http://127.0.0.1:${port}`;
  return {
    url: baseUrl,
    requests,
    uploads,
    downloads,
    /** Puts a media file on the platform (what a person sent); the id goes in the webhook. */
    addMedia(id: string, bytes: Buffer, type: string) {
      media.set(id, { bytes, type });
    },
    waiting,
    downloadAttempts,
    /** The next `times` uploads fail (500, code 2: Meta's temporary service error). */
    failUploads(times: number) {
      uploadFailures = times;
    },
    /** Media `id` is gone from the platform (expired, 30 days after its upload): sends naming it are refused. */
    expireMedia(id: string) {
      media.delete(id);
      expired.add(id);
    },
    /** The next `times` downloads of media `id` answer `status` (Infinity: every one), as a media host in trouble. */
    failDownloads(id: string, times: number, status = 503) {
      failing.set(id, { left: times, status });
    },
    /** Holds the bytes of media `id` back until the returned function is called. */
    hold(id: string): () => void {
      let release = () => {};
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      held.set(id, { release, released });
      return () => {
        held.delete(id);
        release();
      };
    },
    /** Answers the next request that `when` picks with `answer` (once). */
    script(when: (req: GraphRequest) => boolean, answer: GraphAnswer) {
      scripted.push((req) => (when(req) ? answer : undefined));
    },
    /** Sent messages (not read receipts) to one recipient. */
    to(waId: string) {
      return requests.filter((r) => r.body.to === waId && r.body.status === undefined);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type GraphApi = Awaited<ReturnType<typeof startGraphApi>>;
