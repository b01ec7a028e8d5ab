import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FAILURES_PER_IP } from '../../src/agents/login-throttle.ts';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-proxy-tests-0123456789';
const PASSWORD = 'correct horse battery';

/** A browser on https://hub.example, as a TLS-terminating proxy passes its requests on. */
const THROUGH_TLS_PROXY = {
  'x-forwarded-for': '198.51.100.10',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'hub.example',
};
const PAGE = 'https://hub.example';
/** What the console's own page sends with a change. */
const CONSOLE_CHANGE = { 'x-requested-with': 'fetch', origin: PAGE };

/** The request headers one proxy in front of the hub adds for a client at `address`. */
const forwardedFor = (address: string, extra: Record<string, string> = {}) => ({
  'x-forwarded-for': address,
  ...extra,
});

describe('the agent API behind one reverse proxy (TRUST_PROXY=1)', () => {
  let running: RunningHub;
  let url: string;

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN, trustProxy: 1 });
    url = running.url;
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('counts failed sign-ins per forwarded client address: one address locked out does not lock out another', async () => {
    await createAgentVia(url, ADMIN_TOKEN, { name: 'Fay', email: 'fay@example.com', bots: ['default'] });
    const stranger = agentClient(url);
    // Each failure for another e-mail address, so only the client address's count can close.
    for (let i = 0; i < MAX_FAILURES_PER_IP; i++) {
      const res = await stranger.call('POST', '/api/agent/login', {
        body: { email: `nobody-${i}@example.com`, password: 'wrong' },
        headers: forwardedFor('198.51.100.1'),
      });
      expect(res.status).toBe(401);
    }
    const throttled = await stranger.call('POST', '/api/agent/login', {
      body: { email: 'fay@example.com', password: PASSWORD },
      headers: forwardedFor('198.51.100.1'),
    });
    expect(throttled.status).toBe(429);

    const fay = await agentClient(url).call('POST', '/api/agent/login', {
      body: { email: 'fay@example.com', password: PASSWORD },
      headers: forwardedFor('198.51.100.2'),
    });
    expect(fay.status).toBe(200);
  });

  it('writes the forwarded client address to the audit log for the agent API and the dashboard', async () => {
    const { session_id } = await apiClient(url).createSession();
    const gil = await createAgentVia(url, ADMIN_TOKEN, {
      name: 'Gil',
      email: 'gil@example.com',
      role: 'supervisor',
      bots: ['default'],
    });
    const read = await agentClient(url, { token: gil.token }).call(
      'GET',
      `/api/agent/conversations/${session_id}`,
      {
        headers: forwardedFor('198.51.100.3'),
      },
    );
    expect(read.status).toBe(200);
    const inspected = await agentClient(url, { token: gil.token }).call(
      'GET',
      `/api/admin/transcripts/${session_id}`,
      { headers: forwardedFor('198.51.100.4') },
    );
    expect(inspected.status).toBe(200);

    const { rows } = await running.hub.db.query<{ via: string; ip: string }>(
      'SELECT via, ip FROM transcript_reads WHERE session_id = $1 AND agent_id = $2 ORDER BY id',
      [session_id, gil.agent_id],
    );
    expect(rows).toEqual([
      { via: 'agent-api', ip: '198.51.100.3' },
      { via: 'admin-api', ip: '198.51.100.4' },
    ]);
  });
});

describe('the agent console behind a TLS-terminating proxy', () => {
  let proxied: RunningHub;
  let direct: RunningHub;
  let named: RunningHub;

  beforeAll(async () => {
    [proxied, direct, named] = await Promise.all([
      startTestHub({ adminToken: ADMIN_TOKEN, trustProxy: 1 }),
      startTestHub({ adminToken: ADMIN_TOKEN }),
      // A proxy that says neither scheme nor host: PUBLIC_URL names the console's page.
      startTestHub({ adminToken: ADMIN_TOKEN, publicUrl: 'https://bots.example' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([proxied?.stop(), direct?.stop(), named?.stop()]);
  });

  const signIn = (hub: RunningHub, email: string, headers: Record<string, string>) => {
    const browser = agentClient(hub.url);
    return {
      browser,
      answer: browser.call('POST', '/api/agent/login', { body: { email, password: PASSWORD }, headers }),
    };
  };

  it('with TRUST_PROXY, signs in from the https page with a Secure cookie and takes the console’s changes', async () => {
    await createAgentVia(proxied.url, ADMIN_TOKEN, {
      name: 'Hal',
      email: 'hal@example.com',
      bots: ['default'],
    });
    const { browser, answer } = signIn(proxied, 'hal@example.com', { ...THROUGH_TLS_PROXY, origin: PAGE });
    const res = await answer;
    expect(res.status).toBe(200);
    const cookie = res.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^sb_agent=[A-Za-z0-9_-]{43};/);
    expect(cookie).toMatch(/; Secure/);
    expect(cookie).toMatch(/SameSite=Strict/i);

    const change = await browser.call('PUT', '/api/agent/status', {
      body: { status: 'available' },
      headers: { ...THROUGH_TLS_PROXY, ...CONSOLE_CHANGE },
    });
    expect(change.status).toBe(200);
    expect(change.json.status).toBe('available');
    // Another site's page is still refused, and so is the hub's address over plain http.
    for (const origin of ['https://evil.example', 'http://hub.example']) {
      const foreign = await browser.call('PUT', '/api/agent/status', {
        body: { status: 'away' },
        headers: { ...THROUGH_TLS_PROXY, ...CONSOLE_CHANGE, origin },
      });
      expect(foreign.status, origin).toBe(403);
      expect(foreign.json.error.code, origin).toBe('cross_origin');
    }
    const out = await browser.call('POST', '/api/agent/logout', {
      headers: { ...THROUGH_TLS_PROXY, ...CONSOLE_CHANGE },
    });
    expect(out.status).toBe(200);
  });

  it('with TRUST_PROXY, a proxy that passes Host on and says only X-Forwarded-Proto is enough', async () => {
    await createAgentVia(proxied.url, ADMIN_TOKEN, {
      name: 'Ida',
      email: 'ida@example.com',
      bots: ['default'],
    });
    const page = proxied.url.replace(/^http:/, 'https:');
    const { browser, answer } = signIn(proxied, 'ida@example.com', {
      'x-forwarded-proto': 'https',
      origin: page,
    });
    const res = await answer;
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toMatch(/; Secure/);
    const change = await browser.call('PUT', '/api/agent/status', {
      body: { status: 'available' },
      headers: { 'x-forwarded-proto': 'https', 'x-requested-with': 'fetch', origin: page },
    });
    expect(change.status).toBe(200);
  });

  it('without TRUST_PROXY, believes no forwarded header: the https page is another site, the cookie not Secure', async () => {
    await createAgentVia(direct.url, ADMIN_TOKEN, { name: 'Jo', email: 'jo@example.com', bots: ['default'] });
    const refused = await signIn(direct, 'jo@example.com', { ...THROUGH_TLS_PROXY, origin: PAGE }).answer;
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('cross_origin');
    expect(refused.headers.get('set-cookie')).toBeNull();

    // Signed in from the hub's own (plain http) page, as before.
    const { browser, answer } = signIn(direct, 'jo@example.com', {
      ...THROUGH_TLS_PROXY,
      origin: direct.url,
    });
    const res = await answer;
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).not.toMatch(/Secure/);
    const change = await browser.call('PUT', '/api/agent/status', {
      body: { status: 'available' },
      headers: { ...THROUGH_TLS_PROXY, ...CONSOLE_CHANGE },
    });
    expect(change.status).toBe(403);
    expect(change.json.error.code).toBe('cross_origin');
    const own = await browser.call('PUT', '/api/agent/status', {
      body: { status: 'available' },
      headers: { ...THROUGH_TLS_PROXY, ...CONSOLE_CHANGE, origin: direct.url },
    });
    expect(own.status).toBe(200);
  });

  it('with PUBLIC_URL, its page signs in (a Secure cookie) and changes things; other https pages do not', async () => {
    await createAgentVia(named.url, ADMIN_TOKEN, {
      name: 'Kim',
      email: 'kim@example.com',
      bots: ['default'],
    });
    const { browser, answer } = signIn(named, 'kim@example.com', { origin: 'https://bots.example' });
    const res = await answer;
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toMatch(/; Secure/);
    const change = await browser.call('PUT', '/api/agent/status', {
      body: { status: 'available' },
      headers: { 'x-requested-with': 'fetch', origin: 'https://bots.example' },
    });
    expect(change.status).toBe(200);
    // The forwarded host is not believed without TRUST_PROXY, PUBLIC_URL or not.
    const other = await signIn(named, 'kim@example.com', { ...THROUGH_TLS_PROXY, origin: PAGE }).answer;
    expect(other.status).toBe(403);
  });
});
