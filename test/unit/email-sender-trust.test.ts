import { describe, expect, it } from 'vitest';
import {
  answerAddress,
  organisationalDomain,
  parseAuthenticationResults,
  verifySender,
} from '../../adapters/email/message/sender-trust.ts';

// Authentication-Results values as the servers write them (unfolded).
const GMAIL =
  'mx.google.com; dkim=pass header.i=@example.org header.s=20230601 header.b=Ab12Cd34; spf=pass (google.com: domain of alice@example.org designates 209.85.220.41 as permitted sender) smtp.mailfrom=alice@example.org; dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.org';
const FASTMAIL =
  'mx3.messagingengine.com; dkim=pass (2048-bit rsa key sha256) header.d=mail.example.org header.i=@mail.example.org header.b=Xy header.a=rsa-sha256 header.s=fm1 x-bits=2048; dmarc=none policy.published-domain-policy=none (p=none,d=none,d.eval=none) header.from=example.org; spf=pass smtp.mailfrom=alice@example.org smtp.helo=mail.example.org';
const OPENDMARC_FAIL = 'mx.switchboard.test; dmarc=fail (p=reject dis=none) header.from=example.org';
const OPENDKIM_FOREIGN =
  'mx.switchboard.test; dkim=pass (2048-bit key; unprotected) header.d=mailer.example.net header.i=@mailer.example.net header.a=rsa-sha256 header.s=s1 header.b=abc';

const alice = [{ address: 'alice@example.org' }];

describe('Authentication-Results (RFC 8601)', () => {
  it('reads the authserv-id, each method and result, and its properties, without comments', () => {
    expect(parseAuthenticationResults(GMAIL)).toEqual({
      authservId: 'mx.google.com',
      results: [
        {
          method: 'dkim',
          result: 'pass',
          props: { 'header.i': '@example.org', 'header.s': '20230601', 'header.b': 'Ab12Cd34' },
        },
        { method: 'spf', result: 'pass', props: { 'smtp.mailfrom': 'alice@example.org' } },
        { method: 'dmarc', result: 'pass', props: { 'header.from': 'example.org' } },
      ],
    });
  });

  it('copes with a version, spaces around "=", quoted values, nested comments and "none"', () => {
    expect(
      parseAuthenticationResults(
        'example.com 1; dkim = pass (good (really) signature) header.d = "example.org" reason="ok; fine"',
      ),
    ).toEqual({
      authservId: 'example.com',
      results: [{ method: 'dkim', result: 'pass', props: { 'header.d': 'example.org' } }],
    });
    expect(parseAuthenticationResults('mx.example.com; none')).toEqual({
      authservId: 'mx.example.com',
      results: [],
    });
    // Microsoft 365 writes no authserv-id: nothing to trust.
    expect(
      parseAuthenticationResults('spf=pass smtp.mailfrom=example.org; dmarc=pass header.from=example.org'),
    ).toBeUndefined();
  });
});

describe('organisational domain (Public Suffix List)', () => {
  it('is the registrable domain, private suffixes included', () => {
    expect(organisationalDomain('mail.example.co.uk')).toBe('example.co.uk');
    expect(organisationalDomain('a.b.example.org.')).toBe('example.org');
    expect(organisationalDomain('alice.github.io')).toBe('alice.github.io');
    expect(organisationalDomain('co.uk')).toBeUndefined();
  });
});

describe('whether a mail is verified', () => {
  const verify = (headers: string[], from = alice, trusted: string | undefined = 'mx.google.com') =>
    verifySender({ authenticationResults: headers, from, trustedAuthservId: trusted });

  it('trusts dmarc=pass, or dkim=pass aligned with From, from the trusted server', () => {
    expect(verify([GMAIL])).toEqual({ verified: true, reason: 'dmarc=pass' });
    // dmarc=none, but DKIM signed by a subdomain of the From domain: relaxed alignment.
    expect(verify([FASTMAIL], alice, 'MX3.messagingengine.com')).toMatchObject({
      verified: true,
      reason: 'dkim=pass header.d=mail.example.org',
    });
  });

  it('verifies nothing without a trusted server, or with several From addresses', () => {
    expect(
      verifySender({ authenticationResults: [GMAIL], from: alice, trustedAuthservId: undefined }),
    ).toEqual({ verified: false, reason: 'EMAIL_TRUSTED_AUTHSERV_ID is not set' });
    expect(verify([GMAIL], alice, '')).toMatchObject({ verified: false });
    expect(verify([GMAIL], [...alice, { address: 'mallory@evil.example' }])).toMatchObject({
      verified: false,
    });
  });

  it('ignores results of other servers and of headers further down (written by the sender)', () => {
    expect(verify([GMAIL], alice, 'mx.switchboard.test')).toMatchObject({
      verified: false,
      reason: 'no trusted Authentication-Results',
    });
    // Topmost trusted header says fail; the forged pass below it changes nothing.
    const forged = 'mx.switchboard.test; dmarc=pass header.from=example.org';
    expect(verify([OPENDMARC_FAIL, forged], alice, 'mx.switchboard.test')).toMatchObject({ verified: false });
    expect(verify([GMAIL, OPENDMARC_FAIL], alice, 'mx.switchboard.test')).toMatchObject({ verified: false });
  });

  it('refuses DKIM by another organisation, and DMARC for another From domain', () => {
    expect(verify([OPENDKIM_FOREIGN], alice, 'mx.switchboard.test')).toMatchObject({ verified: false });
    expect(
      verify(['mx.switchboard.test; dmarc=pass header.from=evil.example'], alice, 'mx.switchboard.test'),
    ).toMatchObject({ verified: false });
    // A look-alike: example.org.evil.example is evil.example's.
    expect(
      verify(
        ['mx.switchboard.test; dkim=pass header.d=example.org.evil.example'],
        alice,
        'mx.switchboard.test',
      ),
    ).toMatchObject({ verified: false });
  });
});

describe('where an answer goes', () => {
  const from = { address: 'alice@example.org', name: 'Alice' };
  it('honours Reply-To only for verified mail within the same organisational domain', () => {
    expect(answerAddress(from, { address: 'desk@support.example.org' }, true)).toEqual({
      to: { address: 'desk@support.example.org' },
    });
    expect(answerAddress(from, { address: 'attacker@elsewhere.example' }, true)).toEqual({
      to: from,
      ignoredReplyTo: { address: 'attacker@elsewhere.example', reason: 'another organisational domain' },
    });
    expect(answerAddress(from, { address: 'desk@example.org' }, false)).toEqual({
      to: from,
      ignoredReplyTo: { address: 'desk@example.org', reason: 'unverified sender' },
    });
    expect(answerAddress(from, undefined, false)).toEqual({ to: from });
  });
});
