import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWebConfig, WebConfigError } from '../../adapters/web/config.ts';
import { ADMIN_FAILURES_PER_MINUTE } from '../../src/http/admin-auth.ts';
import { adminClient } from '../helpers/admin.ts';
import { apiClient } from '../helpers/hub.ts';
import { socketPool, startWebHub, type WebHub } from '../helpers/web-hub.ts';

const ADMIN_TOKEN = 'an-operator-token-of-at-least-32-characters';
const pool = socketPool();
afterAll(() => pool.closeAll());

describe('the chat page in frames (WEB_FRAME_ANCESTORS)', () => {
  it('may be framed only by the hub itself by default, with the matching X-Frame-Options', async () => {
    const hub = await startWebHub();
    try {
      for (const route of ['/', '/support']) {
        const res = await fetch(`${hub.url}${route}`);
        expect(res.status).toBe(200);
        const csp = res.headers.get('content-security-policy') ?? '';
        expect(csp).toMatch(/(^|; )frame-ancestors 'self'(;|$)/);
        expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      }
    } finally {
      await hub.stop();
    }
  });

  it('may also be framed by the origins listed, and then sends no X-Frame-Options (it cannot name them)', async () => {
    const web = loadWebConfig({ WEB_FRAME_ANCESTORS: 'https://shop.example, https://*.example.org:8443/' });
    const hub = await startWebHub({}, { frameAncestors: web.frameAncestors });
    try {
      const res = await fetch(`${hub.url}/`);
      expect(res.headers.get('content-security-policy')).toMatch(
        /(^|; )frame-ancestors 'self' https:\/\/shop\.example https:\/\/\*\.example\.org:8443(;|$)/,
      );
      expect(res.headers.get('x-frame-options')).toBeNull();
    } finally {
      await hub.stop();
    }
  });

  it('refuses a WEB_FRAME_ANCESTORS entry that is not an origin', () => {
    for (const bad of ["'none'", 'https://a.example; script-src *', 'https://a.example/path', '*']) {
      expect(() => loadWebConfig({ WEB_FRAME_ANCESTORS: bad }), bad).toThrow(WebConfigError);
    }
  });
});

describe('operator token failures (throttled per client address)', () => {
  let hub: WebHub;
  beforeAll(async () => {
    // One proxy in front: X-Forwarded-For names the client, so the test can be several clients.
    hub = await startWebHub({ adminToken: ADMIN_TOKEN, trustProxy: 1 });
  });
  afterAll(async () => {
    await hub?.stop();
  });

  const from = (address: string, token: string | undefined) => (method: string, route: string) =>
    adminClient(hub.url, token)(method, route, undefined, { 'x-forwarded-for': address });

  it(`answers 401 to ${ADMIN_FAILURES_PER_MINUTE} wrong tokens, then 429 with Retry-After to every operator request from that address`, async () => {
    for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE; i++)
      expect((await from('198.51.100.7', `wrong-guess-${i}`)('GET', '/api/admin/sessions')).status).toBe(401);
    const refused = await from('198.51.100.7', 'wrong-guess-again')('GET', '/api/admin/sessions');
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('too_many_failures');
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(60);
    // Not even the right token is tried from there: a guess could not be told right from wrong.
    expect((await from('198.51.100.7', ADMIN_TOKEN)('GET', '/api/admin/sessions')).status).toBe(429);
    // Another address is not affected, nor are requests without a token counted as guesses.
    expect((await from('198.51.100.8', ADMIN_TOKEN)('GET', '/api/admin/sessions')).status).toBe(200);
    for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE + 2; i++)
      expect((await from('198.51.100.9', undefined)('GET', '/api/admin/sessions')).status).toBe(401);
    expect((await from('198.51.100.9', ADMIN_TOKEN)('GET', '/api/admin/stats')).status).toBe(200);
  });

  it('counts the socket address, not X-Forwarded-For, when TRUST_PROXY is not set', async () => {
    const direct = await startWebHub({ adminToken: ADMIN_TOKEN });
    try {
      for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE; i++) {
        const res = await adminClient(direct.url, 'wrong')('GET', '/api/admin/sessions', undefined, {
          'x-forwarded-for': `203.0.113.${i}`,
        });
        expect(res.status).toBe(401);
      }
      const res = await adminClient(direct.url, ADMIN_TOKEN)('GET', '/api/admin/sessions', undefined, {
        'x-forwarded-for': '203.0.113.200',
      });
      expect(res.status).toBe(429);
    } finally {
      await direct.stop();
    }
  });
});

void apiClient;
void pool;
