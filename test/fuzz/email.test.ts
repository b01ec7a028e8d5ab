import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Ours } from '../../adapters/email/message/no-reply.ts';
import { type InboundEmail, parseEmail } from '../../adapters/email/message/parse.ts';
import { answerAddress, verifySender } from '../../adapters/email/message/sender-trust.ts';
import { threadRoot } from '../../adapters/email/message/thread.ts';
import { cleanTextDeep } from '../../src/text.ts';

/**
 * Property test of the email adapter's MIME parsing, in process: whatever bytes a mailbox holds,
 * `parseEmail` gives a well-formed InboundEmail or rejects (the adapter files that mail as
 * unusable), and what the adapter does next with a parsed mail (NUL cleaning, sender trust,
 * reply address, thread root) never throws. Same knobs as parsers.test.ts: FUZZ_RUNS (500 in
 * the suite, 10,000 in `npm run fuzz`) and FUZZ_SEED; kept failures in REGRESSIONS.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

/** Seeds (with their paths) of failures found once; replayed on every run. None so far. */
const REGRESSIONS: { seed: number; path?: string }[] = [];

const ours: Ours = { addresses: new Set(['support@switchboard.test']), messageIdDomain: 'switchboard.test' };
/** The hub's default MAX_TEXT_BYTES. */
const MAX_TEXT_BYTES = 16 * 1024;

const SEED_MAIL = [
  'Return-Path: <ana@example.org>',
  'Authentication-Results: mx.switchboard.test; dkim=pass header.d=example.org; spf=pass smtp.mailfrom=example.org; dmarc=pass header.from=example.org',
  'From: Ana Example <ana@example.org>',
  'To: Support <support@switchboard.test>',
  'Subject: Re: =?UTF-8?Q?Order_=C3=A9t=C3=A9?=',
  'Message-ID: <reply.1@example.org>',
  'In-Reply-To: <sb.1@switchboard.test>',
  'References: <first@example.org> <sb.1@switchboard.test>',
  'Date: Fri, 04 Dec 2026 10:00:00 +0000',
  'MIME-Version: 1.0',
  'Content-Type: multipart/alternative; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'Where is my order? =E2=9C=93',
  '',
  'On Thu, Support <support@switchboard.test> wrote:',
  '> Your order ships today.',
  '--b1',
  'Content-Type: text/html; charset=utf-8',
  '',
  '<p>Where is my order?</p><blockquote>Your order ships today.</blockquote>',
  '--b1--',
  '',
].join('\r\n');

const HEADER_NAMES = [
  'From',
  'To',
  'Cc',
  'Reply-To',
  'Sender',
  'Subject',
  'Message-ID',
  'In-Reply-To',
  'References',
  'Date',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'Content-Disposition',
  'Content-ID',
  'Authentication-Results',
  'Auto-Submitted',
  'Precedence',
  'List-Id',
  'List-Unsubscribe',
  'X-Autoreply',
  'X-Auto-Response-Suppress',
  'Return-Path',
];

const headerValue = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom(
    'Ana <ana@example.org>',
    '"Bo, the \\"second\\"" <bo@example.org>, carl@example.org',
    'undisclosed-recipients:;',
    '<a@b> <c@d>',
    '<>',
    '=?UTF-8?B?w6l0w6k=?=',
    '=?ISO-8859-1?Q?caf=E9?=',
    '=?x-unknown?X?zzz?=',
    'text/plain; charset=utf-7',
    'multipart/mixed; boundary=',
    'message/rfc822',
    'base64',
    'quoted-printable',
    "attachment; filename*=UTF-8''%E2%82%AC%00.pdf",
    'auto-replied',
    'bulk',
    'mx.switchboard.test; dkim=pass header.d=example.org; dmarc=pass header.from=example.org',
  ),
);

const header = fc
  .tuple(fc.oneof(fc.constantFrom(...HEADER_NAMES), fc.string({ maxLength: 20 })), headerValue)
  .map(([name, value]) => `${name}: ${value}`);

/** A MIME body: a leaf of some type and encoding, or a multipart of such (nested a little). */
const body: fc.Arbitrary<string> = fc.letrec<{ part: string }>((tie) => ({
  part: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc
      .tuple(
        fc.constantFrom('text/plain', 'text/html', 'application/pdf', 'image/png', 'message/rfc822', 'x/y'),
        fc.constantFrom('utf-8', 'iso-8859-1', 'utf-16', 'bogus', ''),
        fc.constantFrom('base64', 'quoted-printable', '7bit', '8bit', 'binary', 'x-uuencode', ''),
        fc.string({ unit: 'binary', maxLength: 300 }),
      )
      .map(
        ([type, charset, encoding, content]) =>
          `Content-Type: ${type}${charset ? `; charset=${charset}` : ''}\r\n` +
          (encoding ? `Content-Transfer-Encoding: ${encoding}\r\n` : '') +
          `\r\n${encoding === 'base64' ? Buffer.from(content, 'binary').toString('base64') : content}`,
      ),
    fc
      .tuple(
        fc.constantFrom('mixed', 'alternative', 'related', 'report'),
        fc.string({ minLength: 1, maxLength: 12 }).map((s) => s.replace(/[\r\n"]/g, 'x')),
        fc.array(tie('part'), { maxLength: 3 }),
        fc.boolean(),
      )
      .map(
        ([sub, boundary, parts, closed]) =>
          `Content-Type: multipart/${sub}; boundary="${boundary}"\r\n\r\n` +
          parts.map((p) => `--${boundary}\r\n${p}\r\n`).join('') +
          (closed ? `--${boundary}--\r\n` : ''),
      ),
  ),
})).part;

const mail = fc.oneof(
  // Headers then a body, assembled from the pieces above.
  fc
    .tuple(fc.array(header, { maxLength: 12 }), body)
    .map(([headers, b]) => Buffer.from(`${headers.join('\r\n')}\r\n${b}`, 'binary')),
  // The seed mail with a span cut out or replaced by arbitrary bytes.
  fc.tuple(fc.nat(), fc.nat({ max: 80 }), fc.uint8Array({ maxLength: 60 })).map(([at, len, by]) => {
    const seed = Buffer.from(SEED_MAIL, 'utf8');
    const i = at % (seed.length + 1);
    return Buffer.concat([seed.subarray(0, i), Buffer.from(by), seed.subarray(i + len)]);
  }),
  // Arbitrary bytes.
  fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
);

const isAddress = (a: unknown) =>
  typeof a === 'object' &&
  a !== null &&
  typeof (a as { address: unknown }).address === 'string' &&
  (a as { address: string }).address === (a as { address: string }).address.toLowerCase();

/** What the adapter relies on in a parsed mail. */
function expectWellFormed(m: InboundEmail) {
  expect(typeof m.messageId).toBe('string');
  expect(m.messageId.length).toBeGreaterThan(0);
  expect(m.messageId).not.toMatch(/^<|>$/);
  for (const list of [m.references, m.authenticationResults])
    expect(list.every((x) => typeof x === 'string')).toBe(true);
  for (const list of [m.fromAll, m.to, m.cc]) expect(list.every(isAddress)).toBe(true);
  if (m.from) expect(isAddress(m.from)).toBe(true);
  if (m.replyTo) expect(isAddress(m.replyTo)).toBe(true);
  expect(typeof m.subject).toBe('string');
  expect(typeof m.text).toBe('string');
  expect(typeof m.fullText).toBe('string');
  for (const a of m.attachments) {
    expect(Buffer.isBuffer(a.content)).toBe(true);
    expect(typeof a.contentType).toBe('string');
  }
}

const property = fc.asyncProperty(mail, async (raw) => {
  let parsed: InboundEmail;
  try {
    parsed = await parseEmail(raw, ours, MAX_TEXT_BYTES);
  } catch (err) {
    // The adapter files the mail as unusable: a refusal, not a crash.
    expect(err).toBeInstanceOf(Error);
    return;
  }
  expectWellFormed(parsed);
  const { value } = cleanTextDeep(parsed);
  expect(JSON.stringify({ ...value, attachments: [] })).not.toContain('\\u0000');
  threadRoot(value);
  const sender = verifySender({
    authenticationResults: value.authenticationResults,
    from: value.fromAll,
    trustedAuthservId: 'mx.switchboard.test',
  });
  expect(typeof sender.verified).toBe('boolean');
  if (value.from) answerAddress(value.from, value.replyTo, sender.verified);
});

describe(`the email adapter's MIME parsing never crashes (${RUNS} mails)`, () => {
  it('a well-formed mail or a rejection, and the steps after parsing never throw', async () => {
    await fc.assert(property, { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) });
    for (const r of REGRESSIONS)
      await fc.assert(property, { seed: r.seed, ...(r.path ? { path: r.path } : {}), numRuns: 1 });
  }, 600_000);
});
