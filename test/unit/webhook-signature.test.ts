import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { retryDelay } from '../../src/webhooks/dispatcher.ts';
import { signatureHeader, verifySignature } from '../../src/webhooks/signature.ts';

describe('webhook signatures', () => {
  const body = '{"id":"e1","type":"message.received"}';

  it('is t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">', () => {
    const header = signatureHeader('s3cret', body, 1_700_000_000);
    const mac = createHmac('sha256', 's3cret').update(`1700000000.${body}`).digest('hex');
    expect(header).toBe(`t=1700000000,v1=${mac}`);
  });

  it('verifies within 5 minutes, and refuses another secret, another body or an old time', () => {
    const header = signatureHeader('s3cret', body, 1_700_000_000);
    expect(verifySignature('s3cret', header, body, 1_700_000_000 + 299)).toBe(true);
    expect(verifySignature('s3cret', header, body, 1_700_000_000 + 301)).toBe(false);
    expect(verifySignature('other', header, body, 1_700_000_000)).toBe(false);
    expect(verifySignature('s3cret', header, `${body} `, 1_700_000_000)).toBe(false);
    expect(verifySignature('s3cret', 'garbage', body, 1_700_000_000)).toBe(false);
  });
});

describe('webhook retry delays', () => {
  it('double each attempt, with jitter in the upper half of the step, up to the cap', () => {
    expect(retryDelay(1, 1000, 60_000, () => 0)).toBe(500);
    expect(retryDelay(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(retryDelay(4, 1000, 60_000, () => 0.5)).toBe(6000);
    expect(retryDelay(40, 1000, 60_000, () => 1)).toBe(60_000);
  });
});
