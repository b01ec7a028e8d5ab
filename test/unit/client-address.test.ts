import { describe, expect, it } from 'vitest';
import { cameOverTls, clientAddress } from '../../src/http/client-address.ts';

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
});
