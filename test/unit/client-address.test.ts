import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import {
  cameOverTls,
  clientAddress,
  forwardedHost,
  isOwnOrigin,
  type ProxySettings,
} from '../../src/http/client-address.ts';

describe('client address (TRUST_PROXY)', () => {
  it('is the socket address when no proxy is trusted, whatever X-Forwarded-For says', () => {
    expect(clientAddress('10.0.0.5', '203.0.113.9', 0)).toBe('10.0.0.5');
    expect(clientAddress('::ffff:127.0.0.1', undefined, 0)).toBe('127.0.0.1');
    expect(clientAddress('::1', undefined, 0)).toBe('::1');
  });

  it('is the entry as many hops from the right as there are trusted proxies', () => {
    // The client wrote a fake first entry; the one proxy appended what it saw.
    expect(clientAddress('10.0.0.5', '1.2.3.4, 203.0.113.9', 1)).toBe('203.0.113.9');
    // Two proxies: a load balancer (10.0.0.5) behind a CDN edge (198.51.100.1).
    expect(clientAddress('10.0.0.5', '1.2.3.4, 203.0.113.9, 198.51.100.1', 2)).toBe('203.0.113.9');
    // Fewer entries than hops: the farthest one known.
    expect(clientAddress('10.0.0.5', '203.0.113.9', 3)).toBe('203.0.113.9');
    expect(clientAddress('10.0.0.5', undefined, 1)).toBe('10.0.0.5');
  });

  it('believes X-Forwarded-Proto only from a trusted proxy', () => {
    expect(cameOverTls(true, undefined, 0)).toBe(true);
    expect(cameOverTls(false, 'https', 0)).toBe(false);
    expect(cameOverTls(false, 'https', 1)).toBe(true);
    expect(cameOverTls(false, 'http', 1)).toBe(false);
  });

  it('reads X-Forwarded-Host only from trusted proxies, the entry the farthest of them wrote', () => {
    expect(forwardedHost('hub.example', 0)).toBeUndefined();
    expect(forwardedHost('hub.example', 1)).toBe('hub.example');
    // The client wrote a first entry of its own; the proxy appended what it was asked for.
    expect(forwardedHost('evil.example, hub.example', 1)).toBe('hub.example');
    expect(forwardedHost('evil.example, hub.example, lb.internal', 2)).toBe('hub.example');
    // Proxies that replace the header: the one entry there is.
    expect(forwardedHost('hub.example', 3)).toBe('hub.example');
    expect(forwardedHost(undefined, 1)).toBeUndefined();
  });
});

describe("the hub's own origin (TRUST_PROXY, PUBLIC_URL)", () => {
  /** Whether a request to http://hub.internal:8080/ with `headers` counts `origin` as the hub's own page. */
  const own = async (proxy: ProxySettings, origin: string, headers: Record<string, string> = {}) => {
    const app = new Hono();
    app.get('/', (c) => c.json(isOwnOrigin(c, origin, proxy)));
    return (await app.request('http://hub.internal:8080/', { headers })).json();
  };
  const direct = { trustProxy: 0, publicUrl: undefined };
  const proxied = { trustProxy: 1, publicUrl: undefined };
  const tls = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'hub.example' };

  it('is the address the request was sent to, as exactly as browsers spell an origin', async () => {
    expect(await own(direct, 'http://hub.internal:8080')).toBe(true);
    expect(await own(direct, 'https://hub.internal:8080')).toBe(false);
    expect(await own(direct, 'http://HUB.internal:8080')).toBe(false);
    expect(await own(direct, 'http://hub.internal:8080/')).toBe(false);
    expect(await own(direct, 'null')).toBe(false);
  });

  it('believes X-Forwarded-Proto and X-Forwarded-Host only with TRUST_PROXY', async () => {
    expect(await own(direct, 'https://hub.example', tls)).toBe(false);
    expect(await own(proxied, 'https://hub.example', tls)).toBe(true);
    expect(await own(proxied, 'https://hub.example:443', tls)).toBe(false);
    expect(await own(proxied, 'http://hub.example', tls)).toBe(false);
    expect(await own(proxied, 'http://hub.internal:8080', tls)).toBe(false);
    // Host passed on by the proxy, only the scheme said.
    expect(await own(proxied, 'https://hub.internal:8080', { 'x-forwarded-proto': 'https' })).toBe(true);
    // A forwarded host with user info or a path names nobody.
    const tricky = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'hub.example@evil.example' };
    expect(await own(proxied, 'https://evil.example', tricky)).toBe(false);
  });

  it("is also PUBLIC_URL's origin, whatever the proxy says", async () => {
    const named = { trustProxy: 0, publicUrl: 'https://bots.example/hub' };
    expect(await own(named, 'https://bots.example')).toBe(true);
    expect(await own(named, 'http://hub.internal:8080')).toBe(true);
    expect(await own(named, 'http://bots.example')).toBe(false);
    expect(await own(named, 'https://hub.example', tls)).toBe(false);
  });
});
