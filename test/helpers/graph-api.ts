import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
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

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const send = async (a: GraphAnswer) => {
      if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
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
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
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
