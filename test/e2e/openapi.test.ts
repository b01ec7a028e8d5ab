import fs from 'node:fs/promises';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import { createWhatsAppAdapter, loadWhatsAppConfig } from '../../adapters/whatsapp/index.ts';
import { CLIENT_TYPES, generateClientTypes } from '../../src/client/generate.ts';
import { openApiRoutes } from '../../src/http/openapi/routes.ts';
import { launchChromium, type TestBrowser } from '../helpers/browser.ts';
import { tempDir } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { until } from '../helpers/until.ts';
import { LocalWebClient } from '../helpers/whatsapp-web-client.ts';

const ADMIN_TOKEN = 'openapi-test-admin-token-0123456789abcdef';
/** Set to a folder to write README's screenshot of the API reference while the test runs. */
const SCREENSHOTS = process.env.SCREENSHOTS_DIR;
/** Mounted, and left out of the document on purpose (README "API reference" lists them). */
const UNDOCUMENTED =
  /^\/(healthz|readyz|metrics|openapi\.json|docs|ws|console|webhooks)(\/|$)|^\/api\/messages$/;

// biome-ignore lint/suspicious/noExplicitAny: a JSON document, walked by path
type Json = Record<string, any>;

describe('OpenAPI document, typed client and reference page', () => {
  let running: RunningHub;
  let document: Json;

  beforeAll(async () => {
    // The channels with API routes of their own mounted too: the web widget's cookie session and
    // WhatsApp Web's operator routes (its client a local stand-in, waiting to be paired).
    const whatsapp = createWhatsAppAdapter({
      ...loadWhatsAppConfig({ WHATSAPP_WEB: 'on' }, await tempDir('sbt-openapi-wweb-'))!,
      webClientFactory: () => new LocalWebClient(false),
    });
    running = await startTestHub(
      { adminToken: ADMIN_TOKEN },
      { adapters: [createWebAdapter(loadWebConfig({})), whatsapp] },
    );
    const res = await fetch(`${running.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    document = (await res.json()) as Json;
  }, 60_000);
  afterAll(async () => {
    await running?.stop();
  });

  it('is OpenAPI 3.1 with its auth schemes, the error shape, and schemas that compile', () => {
    expect(document.openapi).toBe('3.1.0');
    expect(document.info).toMatchObject({ title: 'Switchboard API', version: expect.any(String) });
    expect(document.components.securitySchemes).toMatchObject({
      session: { type: 'http', scheme: 'bearer' },
      admin: { type: 'http', scheme: 'bearer' },
      agentToken: { type: 'http', scheme: 'bearer' },
      agentCookie: { type: 'apiKey', in: 'cookie', name: 'sb_agent' },
      signedLink: { type: 'apiKey', in: 'query', name: 'sig' },
    });
    expect(document.components.schemas.Error).toMatchObject({
      required: ['error'],
      properties: { error: { required: ['code', 'message'] } },
    });
    // Each schema in the document is valid JSON Schema 2020-12 (what OpenAPI 3.1 uses), $refs resolved.
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    ajv.addSchema(document, 'openapi');
    let compiled = 0;
    for (const [p, item] of Object.entries(document.paths as Json))
      for (const [method, op] of Object.entries(item as Json)) {
        for (const status of Object.keys(op.responses)) {
          const schema = op.responses[status].content?.['application/json']?.schema;
          if (!schema) continue;
          ajv.compile({
            $ref: `openapi#/paths/${p.replaceAll('/', '~1')}/${method}/responses/${status}/content/application~1json/schema`,
          });
          compiled++;
        }
        if (op.requestBody?.content['application/json']) {
          ajv.compile({
            $ref: `openapi#/paths/${p.replaceAll('/', '~1')}/${method}/requestBody/content/application~1json/schema`,
          });
          compiled++;
        }
        const everyScheme = Object.keys(document.components.securitySchemes);
        for (const requirement of op.security) expect(everyScheme).toContain(Object.keys(requirement)[0]);
      }
    expect(compiled).toBeGreaterThan(60);
  });

  it('documents every API route the hub mounts, and nothing it does not', () => {
    const mounted = new Set<string>();
    for (const r of running.hub.app.routes) {
      if (r.method === 'ALL' || r.method === 'OPTIONS' || UNDOCUMENTED.test(r.path) || r.path.includes('*'))
        continue;
      if (!r.path.startsWith('/api/')) continue;
      mounted.add(`${r.method.toLowerCase()} ${r.path.replace(/:([A-Za-z]+)/g, '{$1}')}`);
    }
    const documented = new Set(
      Object.entries(document.paths as Json).flatMap(([p, item]) =>
        Object.keys(item as Json).map((m) => `${m} ${p}`),
      ),
    );
    expect([...mounted].filter((r) => !documented.has(r))).toEqual([]);
    expect([...documented].filter((r) => !mounted.has(r))).toEqual([]);
    expect(mounted.size).toBeGreaterThan(40);
  });

  it('the contract check catches an answer that does not match', () => {
    const contract = openApiContract(document);
    expect(
      contract.check({ method: 'GET', path: '/api/session', status: 200, responseBody: { session_id: 42 } }),
    ).not.toEqual([]);
    expect(
      contract.check({
        method: 'POST',
        path: '/api/chat',
        status: 202,
        requestBody: { text: 'hi', extra: true },
        responseBody: { envelope_id: 'api:x', status: 'queued' },
      }),
    ).toEqual(['POST /api/chat → 202: request / must NOT have additional properties']);
    expect(
      contract.check({
        method: 'GET',
        path: '/api/admin/sessions/not-a-uuid',
        status: 400,
        responseBody: { error: { code: 'invalid_request', message: 'id: invalid' } },
      }),
    ).toEqual([]);
    // An error status the operation does not list is caught too (`default` is no catch-all).
    expect(
      contract.check({
        method: 'GET',
        path: '/api/session',
        status: 409,
        responseBody: { error: { code: 'conflict', message: 'no' } },
      }),
    ).toEqual(['GET /api/session → 409: status not in the document']);
  });

  it('lists 503 with Retry-After on every operation, and Retry-After on every 429', () => {
    const operations = Object.entries(document.paths as Json).flatMap(([p, item]) =>
      Object.entries(item as Json).map(([method, op]) => ({ route: `${method} ${p}`, op: op as Json })),
    );
    expect(operations.filter(({ op }) => !op.responses['503']).map(({ route }) => route)).toEqual([]);
    const { responses } = document.components;
    for (const status of ['429', '503'])
      expect(responses[`E${status}`].headers).toEqual({
        'Retry-After': { description: expect.any(String), schema: { type: 'integer' } },
      });
  });

  it("the channels' own API routes are documented, and what they answer matches", async () => {
    const contract = openApiContract(document);
    const exchange = async (method: string, route: string, init: RequestInit = {}) => {
      const res = await fetch(`${running.url}${route}`, { method, ...init });
      const type = res.headers.get('content-type') ?? '';
      const body = type.includes('json') ? await res.json() : await res.text();
      const requestBody = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
      expect(
        contract.check({
          method,
          path: route,
          status: res.status,
          ...(requestBody !== undefined ? { requestBody } : {}),
          ...(type.includes('json') ? { responseBody: body } : {}),
        }),
      ).toEqual([]);
      return { status: res.status, type, body };
    };
    const own = { origin: running.url, 'content-type': 'application/json' };
    const opened = await exchange('POST', '/api/web/session', { headers: own, body: JSON.stringify({}) });
    expect(opened).toMatchObject({ status: 201, body: { session_id: expect.any(String), bot: 'default' } });
    const elsewhere = { ...own, origin: 'https://elsewhere.example' };
    expect((await exchange('POST', '/api/web/session', { headers: elsewhere, body: '{}' })).status).toBe(403);
    const unknownBot = JSON.stringify({ bot: 'nobody' });
    expect((await exchange('POST', '/api/web/session', { headers: own, body: unknownBot })).status).toBe(404);

    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const status = await until(
      async () => (await exchange('GET', '/api/admin/whatsapp/web', { headers: admin })).body,
      (b) => b.state === 'qr',
    );
    expect(status).toMatchObject({ qr_svg: '/api/admin/whatsapp/web/qr.svg' });
    const qr = await exchange('GET', '/api/admin/whatsapp/web/qr.svg', { headers: admin });
    expect(qr).toMatchObject({ status: 200, type: 'image/svg+xml' });
    expect(document.paths['/api/admin/whatsapp/web/qr.svg'].get.responses['200'].content).toHaveProperty(
      'image/svg+xml',
    );
    expect((await exchange('GET', '/api/admin/whatsapp/web')).status).toBe(401);
    expect(
      ['post /api/web/session', 'get /api/admin/whatsapp/web', 'get /api/admin/whatsapp/web/qr.svg'].map(
        (r) => document.paths[r.split(' ')[1]!]?.[r.split(' ')[0]!]?.tags,
      ),
    ).toEqual([['Channels'], ['Channels'], ['Channels']]);
  });

  it("the committed client types (src/client/api.ts) are the document's", async () => {
    const committed = await fs.readFile(CLIENT_TYPES, 'utf8');
    expect(committed).toBe(await generateClientTypes(document));
  });

  it("/docs/assets/scalar.js says so when the build did not bring the reference's script", async () => {
    const routes = openApiRoutes({ scalarBundle: path.join(await tempDir(), 'scalar.js') });
    const res = await routes.request('/docs/assets/scalar.js');
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('not_built');
    expect(body.error.message).toContain('npm run build');
  });

  describe('the reference page in Chromium', () => {
    let browser: TestBrowser;
    beforeAll(async () => {
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
    });

    it('/docs shows the API from the hub alone: no request leaves it', async () => {
      const page = await browser.context.newPage();
      const elsewhere: string[] = [];
      await page.route('**/*', (route) => {
        const url = new URL(route.request().url());
        if (url.origin === running.url || url.protocol === 'data:') return route.continue();
        elsewhere.push(url.href);
        return route.abort();
      });
      const problems: string[] = [];
      page.on('pageerror', (err) => problems.push(err.message));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      const res = await page.goto(`${running.url}/docs`);
      expect(res?.status()).toBe(200);
      expect(res?.headers()['content-security-policy']).toContain("default-src 'none'");
      await page
        .getByRole('heading', { name: 'Switchboard API', exact: false })
        .first()
        .waitFor({ timeout: 30_000 });
      await page.getByText('Send a message; waits for the replies').first().waitFor({ timeout: 30_000 });
      expect(await page.title()).toContain('Switchboard');
      if (SCREENSHOTS) {
        await fs.mkdir(SCREENSHOTS, { recursive: true });
        await page.screenshot({ path: path.join(SCREENSHOTS, 'api-reference.png') });
      }
      expect(elsewhere).toEqual([]);
      expect(problems).toEqual([]);
      await page.close();
    });
  });
});
