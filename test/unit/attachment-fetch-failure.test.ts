import { describe, expect, it } from 'vitest';
import { GraphRequestError } from '../../adapters/whatsapp/cloud/graph.ts';
import {
  AttachmentFetchError,
  attachmentStatusError,
  isPermanentFetchFailure,
} from '../../src/files/fetch-failure.ts';
import { FetchRefusedError } from '../../src/files/safe-fetch.ts';

/** Which failures of a platform's media host are tried again (src/files/pending.ts) and which are final. */
describe('isPermanentFetchFailure', () => {
  it('by HTTP status: 408, 425, 429 and 5xx may pass; other 4xx are final', () => {
    for (const status of [408, 425, 429, 500, 502, 503, 504])
      expect(isPermanentFetchFailure(attachmentStatusError(status, `HTTP ${status}`)), String(status)).toBe(
        false,
      );
    for (const status of [400, 401, 403, 404, 410, 413])
      expect(isPermanentFetchFailure(attachmentStatusError(status, `HTTP ${status}`)), String(status)).toBe(
        true,
      );
  });

  it("reads the status of the clients' own errors (the Graph API's, the SSRF-safe fetch's)", () => {
    expect(isPermanentFetchFailure(new GraphRequestError('media: 503', { httpStatus: 503 }))).toBe(false);
    expect(isPermanentFetchFailure(new GraphRequestError('media: 404', { httpStatus: 404 }))).toBe(true);
    expect(isPermanentFetchFailure(new FetchRefusedError('HTTP 502 from cdn', 502))).toBe(false);
    expect(isPermanentFetchFailure(new FetchRefusedError('HTTP 403 from cdn', 403))).toBe(true);
  });

  it('a refused fetch (private address, redirect off the allowed hosts) and what an adapter marked final are final', () => {
    expect(isPermanentFetchFailure(new FetchRefusedError('10.0.0.1 is a private address'))).toBe(true);
    expect(isPermanentFetchFailure(new FetchRefusedError('too many redirects'))).toBe(true);
    expect(isPermanentFetchFailure(new AttachmentFetchError('not the file host', { permanent: true }))).toBe(
      true,
    );
  });

  it('a network error, a timeout or an abort may pass', () => {
    expect(isPermanentFetchFailure(new TypeError('fetch failed', { cause: new Error('ECONNRESET') }))).toBe(
      false,
    );
    expect(
      isPermanentFetchFailure(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
    ).toBe(false);
    expect(isPermanentFetchFailure(new GraphRequestError('the Graph API did not answer', {}))).toBe(false);
  });

  it('a host name that does not resolve is final (ENOTFOUND: no such name); a resolver that could not answer may pass', () => {
    const dnsError = (code: string) =>
      Object.assign(new Error(`getaddrinfo ${code} files.example.invalid`), { code, syscall: 'getaddrinfo' });
    // safeGet's own lookup hands the resolver's error on as it is; fetch() wraps it as its cause.
    expect(isPermanentFetchFailure(dnsError('ENOTFOUND'))).toBe(true);
    expect(isPermanentFetchFailure(new TypeError('fetch failed', { cause: dnsError('ENOTFOUND') }))).toBe(
      true,
    );
    expect(isPermanentFetchFailure(dnsError('EAI_AGAIN'))).toBe(false);
    expect(isPermanentFetchFailure(new TypeError('fetch failed', { cause: dnsError('EAI_AGAIN') }))).toBe(
      false,
    );
  });
});
