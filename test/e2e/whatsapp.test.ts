import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeader } from '../../adapters/whatsapp/webhook/verify.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { Cluster } from '../helpers/cluster.ts';
import { createTestDatabase, type TestDatabase, tempDir } from '../helpers/database.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { REPO_ROOT } from '../helpers/hub.ts';
import { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook } from '../helpers/whatsapp-cloud.ts';

/**
 * `switchboard start` as a child process with the WhatsApp variables set: the adapter is
 * chosen from the environment, and a signed webhook is answered through the Graph API.
 */
describe('WhatsApp Cloud API end to end (child process, PostgreSQL)', () => {
  let graph: GraphApi;
  let database: TestDatabase;
  let server: ServerProcess;

  beforeAll(async () => {
    graph = await startGraphApi('e2e-token');
    database = await createTestDatabase();
    server = new ServerProcess({
      PORT: '0',
      DATABASE_URL: database.url,
      DATA_DIR: await tempDir('sbt-e2e-wa-'),
      WHATSAPP_ACCESS_TOKEN: 'e2e-token',
      WHATSAPP_APP_SECRET: 'e2e-secret',
      WHATSAPP_VERIFY_TOKEN: 'e2e-verify',
      WHATSAPP_GRAPH_URL: graph.url,
      WHATSAPP_GRAPH_VERSION: 'v24.0',
      WHATSAPP_NUMBERS: '106540352242922:support',
    });
    await server.start();
  });
  afterAll(async () => {
    await server?.stop();
    await graph?.close();
    await database?.drop();
  });

  it('verifies the webhook, then answers a documented text message from the mapped bot', async () => {
    const handshake = await fetch(
      `${server.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=e2e-verify&hub.challenge=42`,
    );
    expect(await handshake.text()).toBe('42');

    const res = await postWhatsAppWebhook(
      server.url,
      doc.variant(doc.textMessage, { timestamp: new Date() }),
      'e2e-secret',
    );
    expect(res.status).toBe(200);
    const [reply] = await until(
      () => graph.to('16505551234'),
      (r) => r.length >= 1,
      30_000,
    );
    // The number is mapped to the `support` bot, which greets first.
    expect(reply).toMatchObject({
      version: 'v24.0',
      phoneNumberId: '106540352242922',
      body: {
        type: 'text',
        to: '16505551234',
        text: { body: 'Hi, this is Support. What can we help you with?' },
      },
    });
    expect(server.logLines().some((l) => l.event === 'whatsapp.configured' && l.cloud === true)).toBe(true);
    // No secret reaches the logs.
    expect(server.output.join('')).not.toMatch(/e2e-token|e2e-secret|e2e-verify/);
  });
});

/**
 * For one describe: the local Graph API, then `cluster` with the WhatsApp variables (`<name>-token`,
 * `<name>-secret`, `<name>-verify`) and `env` set before `grow` adds its processes; stopped after.
 */
function clusterOnGraph(
  cluster: Cluster,
  name: string,
  env: Record<string, string>,
  grow: () => Promise<void>,
): { graph: GraphApi } {
  const wa = {} as { graph: GraphApi };
  beforeAll(async () => {
    wa.graph = await startGraphApi(`${name}-token`);
    await cluster.init();
    Object.assign(cluster.env, {
      ...env,
      WHATSAPP_ACCESS_TOKEN: `${name}-token`,
      WHATSAPP_APP_SECRET: `${name}-secret`,
      WHATSAPP_VERIFY_TOKEN: `${name}-verify`,
      WHATSAPP_GRAPH_URL: wa.graph.url,
    });
    await grow();
  }, 120_000);
  afterAll(async () => {
    await cluster.stop();
    await wa.graph?.close();
  });
  return wa;
}

describe('WhatsApp Cloud API scaled out (two gateways, a worker; Redis and PostgreSQL)', () => {
  const cluster = new Cluster();
  const wa = clusterOnGraph(cluster, 'scale', {}, async () => {
    await cluster.addGateway();
    await cluster.addGateway();
    await cluster.addWorker();
  });

  it('a webhook taken by one gateway, redelivered to the other, is answered once by the worker', async () => {
    const raw = JSON.stringify(
      doc.variant(doc.textMessage, { from: '5511999990000', suffix: 'scale', timestamp: new Date() }),
    );
    const headers = {
      'content-type': 'application/json',
      'x-hub-signature-256': signatureHeader(raw, 'scale-secret'),
    };
    const first = await fetch(`${cluster.gateways[0]!.url}/webhooks/whatsapp`, {
      method: 'POST',
      headers,
      body: raw,
    });
    const again = await fetch(`${cluster.gateways[1]!.url}/webhooks/whatsapp`, {
      method: 'POST',
      headers,
      body: raw,
    });
    expect(await first.json()).toMatchObject({ accepted: 1, duplicates: 0 });
    expect(await again.json()).toMatchObject({ accepted: 0, duplicates: 1 });
    await until(
      () => wa.graph.to('5511999990000'),
      (r) => r.length >= 2,
      30_000,
    );
    // Gateways never send: these came from the worker process.
    expect(wa.graph.to('5511999990000').map((r) => r.body.text.body)).toEqual([
      "Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back.",
      'You said: Does it come in another color? (message #1 in this session)',
    ]);
    expect(cluster.crashes()).toEqual([]);
  });
});

describe('WhatsApp Cloud media: a worker that dies while downloading loses nothing', () => {
  const cluster = new Cluster();
  const kettle = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
  const wa = clusterOnGraph(
    cluster,
    'crash',
    { CONFIG_DIR: path.join(REPO_ROOT, 'test/fixtures/files'), WHATSAPP_NUMBERS: '106540352242922:gallery' },
    async () => {
      await cluster.addGateway();
      await cluster.addWorker();
    },
  );

  it('the webhook is answered before the download; after a SIGKILL mid-download a new worker downloads it and answers once', async () => {
    const from = '5511988880000';
    wa.graph.addMedia('900000000077', kettle, 'image/png');
    const release = wa.graph.hold('900000000077');
    const payload = doc.variant(doc.imageMessage, {
      from,
      suffix: 'crash',
      timestamp: new Date(),
    }) as doc.Json;
    payload.entry[0].changes[0].value.messages[0].image.id = '900000000077';
    const res = await postWhatsAppWebhook(cluster.gateways[0]!.url, payload, 'crash-secret');
    expect(await res.json()).toMatchObject({ accepted: 1 });
    // The worker is in the middle of the download: it dies there.
    await until(
      () => wa.graph.waiting,
      (w) => w.includes('900000000077'),
      30_000,
    );
    await cluster.workers.shift()!.stop('SIGKILL');
    release();
    await cluster.addWorker();
    const got = `Got photo (image/png, ${kettle.length} bytes)`;
    const texts = () => wa.graph.to(from).flatMap((r) => (r.body.type === 'text' ? [r.body.text.body] : []));
    await until(texts, (t) => t.includes(got), 90_000);
    const db = new pg.Client({ connectionString: cluster.database!.url });
    await db.connect();
    try {
      const inbound = await db.query(
        "SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id WHERE s.native_key = $1 AND m.role = 'user'",
        [`+${from}`],
      );
      expect(inbound.rows).toHaveLength(1);
      const files = await db.query(
        'SELECT session_id FROM files WHERE size = $1 AND session_id IS NOT NULL',
        [kettle.length],
      );
      expect(files.rows).toHaveLength(1);
    } finally {
      await db.end();
    }
    expect(texts().filter((t) => t === got)).toHaveLength(1);
    expect(cluster.crashes()).toEqual([]);
  }, 180_000);
});
