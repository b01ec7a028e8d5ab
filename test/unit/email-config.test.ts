import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FIRST_SCAN_HOURS,
  DEFAULT_MAX_ATTACHMENT_BYTES,
  DEFAULT_MAX_FAILURES,
  emailEnabled,
  loadEmailConfig,
} from '../../adapters/email/config.ts';
import { packUids } from '../../adapters/email/first-scan.ts';
import { smtpFailure, toSendError } from '../../adapters/email/smtp-sender.ts';

const minimal = {
  EMAIL_IMAP_HOST: 'imap.example.org',
  EMAIL_IMAP_USER: 'bot@example.org',
  EMAIL_IMAP_PASSWORD: 'secret-imap',
  EMAIL_SMTP_HOST: 'smtp.example.org',
  EMAIL_FROM: 'Support <Bot@Example.org>',
};

describe('email configuration', () => {
  it('is on only when its IMAP host is set', () => {
    expect(emailEnabled({})).toBe(false);
    expect(emailEnabled({ EMAIL_IMAP_HOST: ' ' })).toBe(false);
    expect(emailEnabled({ EMAIL_IMAP_HOST: 'imap.example.org' })).toBe(true);
  });

  it('fills in the defaults', () => {
    const c = loadEmailConfig(minimal);
    expect(c.imap).toEqual({
      host: 'imap.example.org',
      port: 993,
      tls: 'implicit',
      user: 'bot@example.org',
      password: 'secret-imap',
    });
    expect(c.smtp).toEqual({ host: 'smtp.example.org', port: 587, tls: 'starttls' });
    expect(c.mailboxes).toEqual([{ folder: 'INBOX', bot: 'default' }]);
    expect(c.processedFolder).toBeUndefined();
    expect(c.from).toEqual({ address: 'bot@example.org', name: 'Support' });
    expect(c.messageIdDomain).toBe('example.org');
    expect(c.maxAttachmentBytes).toBe(DEFAULT_MAX_ATTACHMENT_BYTES);
    // No trusted server: no mail is verified. Failing mail is set aside after 3 tries, in place.
    expect(c.trustedAuthservId).toBeUndefined();
    expect(c.maxFailures).toBe(DEFAULT_MAX_FAILURES);
    expect(c.unusableFolder).toBeUndefined();
    // A first start (or a renumbered folder) answers the last day's unprocessed mail only.
    expect(c.firstScan).toEqual({ mode: 'recent', hours: DEFAULT_FIRST_SCAN_HOURS });
  });

  it('reads the first-scan policy', () => {
    expect(loadEmailConfig({ ...minimal, EMAIL_FIRST_SCAN_HOURS: '72' }).firstScan).toEqual({
      mode: 'recent',
      hours: 72,
    });
    expect(loadEmailConfig({ ...minimal, EMAIL_FIRST_SCAN: 'unread' }).firstScan).toEqual({ mode: 'unread' });
    expect(loadEmailConfig({ ...minimal, EMAIL_FIRST_SCAN: 'none' }).firstScan).toEqual({ mode: 'none' });
    expect(() => loadEmailConfig({ ...minimal, EMAIL_FIRST_SCAN: 'all' })).toThrow(/EMAIL_FIRST_SCAN/);
    expect(() => loadEmailConfig({ ...minimal, EMAIL_FIRST_SCAN_HOURS: '0' })).toThrow(
      /EMAIL_FIRST_SCAN_HOURS/,
    );
  });

  it('reads the mail loop limits: 10 answers an hour per address, 3 to the same text; 0 turns one off', () => {
    expect(loadEmailConfig(minimal).loop).toEqual({ maxReplies: 10, maxRepeats: 3, windowMs: 60 * 60_000 });
    expect(
      loadEmailConfig({
        ...minimal,
        EMAIL_LOOP_MAX_REPLIES: '0',
        EMAIL_LOOP_MAX_REPEATS: '5',
        EMAIL_LOOP_WINDOW_MINUTES: '15',
      }).loop,
    ).toEqual({ maxReplies: 0, maxRepeats: 5, windowMs: 15 * 60_000 });
    expect(() => loadEmailConfig({ ...minimal, EMAIL_LOOP_MAX_REPLIES: '-1' })).toThrow(
      /EMAIL_LOOP_MAX_REPLIES/,
    );
    expect(() => loadEmailConfig({ ...minimal, EMAIL_LOOP_WINDOW_MINUTES: '0' })).toThrow(
      /EMAIL_LOOP_WINDOW_MINUTES/,
    );
  });

  it('packs a UID list into ranges for one IMAP command', () => {
    expect(packUids([9, 1, 2, 3, 4, 7, 10, 3])).toBe('1:4,7,9:10');
    expect(packUids([5])).toBe('5');
  });

  it('reads the trusted server, the failure limit and the folder for unusable mail', () => {
    const c = loadEmailConfig({
      ...minimal,
      EMAIL_TRUSTED_AUTHSERV_ID: ' mx.example.org ',
      EMAIL_MAX_FAILURES: '5',
      EMAIL_UNUSABLE_FOLDER: 'Unusable',
    });
    expect(c).toMatchObject({
      trustedAuthservId: 'mx.example.org',
      maxFailures: 5,
      unusableFolder: 'Unusable',
    });
    expect(() => loadEmailConfig({ ...minimal, EMAIL_MAX_FAILURES: '0' })).toThrow(/EMAIL_MAX_FAILURES/);
    expect(() => loadEmailConfig({ ...minimal, EMAIL_UNUSABLE_FOLDER: 'INBOX' })).toThrow(
      /EMAIL_UNUSABLE_FOLDER/,
    );
  });

  it('reads mailboxes with their bots, OAuth2 tokens, SMTP auth and the other options', () => {
    const c = loadEmailConfig({
      ...minimal,
      EMAIL_IMAP_PASSWORD: '',
      EMAIL_IMAP_ACCESS_TOKEN: 'ya29.token',
      EMAIL_IMAP_TLS: 'starttls',
      EMAIL_IMAP_PORT: '143',
      EMAIL_MAILBOXES: 'INBOX=support, Sales Leads=sales,Other',
      EMAIL_PROCESSED_FOLDER: 'Processed',
      EMAIL_SMTP_USER: 'bot@example.org',
      EMAIL_SMTP_ACCESS_TOKEN: 'ya29.token',
      EMAIL_SMTP_TLS: 'implicit',
      EMAIL_SMTP_PORT: '465',
      EMAIL_MESSAGE_ID_DOMAIN: 'Mail.Example.org',
      EMAIL_MAX_ATTACHMENT_BYTES: '1000',
    });
    expect(c.imap).toMatchObject({ tls: 'starttls', port: 143, accessToken: 'ya29.token' });
    expect(c.imap.password).toBeUndefined();
    expect(c.mailboxes).toEqual([
      { folder: 'INBOX', bot: 'support' },
      { folder: 'Sales Leads', bot: 'sales' },
      { folder: 'Other', bot: 'default' },
    ]);
    expect(c.processedFolder).toBe('Processed');
    expect(c.smtp).toEqual({
      host: 'smtp.example.org',
      port: 465,
      tls: 'implicit',
      user: 'bot@example.org',
      accessToken: 'ya29.token',
    });
    expect(c.messageIdDomain).toBe('mail.example.org');
    expect(c.maxAttachmentBytes).toBe(1000);
  });

  it('names every bad variable and never echoes a secret', () => {
    let message = '';
    try {
      loadEmailConfig({
        EMAIL_IMAP_HOST: 'imap.example.org',
        EMAIL_SMTP_USER: 'u',
        EMAIL_SMTP_PASSWORD: '',
        EMAIL_IMAP_TLS: 'maybe',
        EMAIL_MAILBOXES: 'INBOX=Not A Bot',
        EMAIL_FROM: 'two@example.org, addresses@example.org',
      });
    } catch (err) {
      message = (err as Error).message;
    }
    for (const name of [
      'EMAIL_IMAP_USER',
      'EMAIL_IMAP_TLS',
      'EMAIL_MAILBOXES',
      'EMAIL_SMTP_HOST',
      'EMAIL_FROM',
    ])
      expect(message).toContain(name);
    const secret = 'hunter2-secret';
    expect(() => loadEmailConfig({ ...minimal, EMAIL_IMAP_PASSWORD: secret, EMAIL_IMAP_PORT: 'x' })).toThrow(
      /EMAIL_IMAP_PORT/,
    );
    try {
      loadEmailConfig({ ...minimal, EMAIL_IMAP_PASSWORD: secret, EMAIL_IMAP_PORT: 'x' });
    } catch (err) {
      expect((err as Error).message).not.toContain(secret);
    }
  });

  it('refuses a login without a password or token, and a processed folder that is watched', () => {
    expect(() => loadEmailConfig({ ...minimal, EMAIL_IMAP_PASSWORD: '' })).toThrow(/EMAIL_IMAP_PASSWORD/);
    expect(() => loadEmailConfig({ ...minimal, EMAIL_SMTP_USER: 'u' })).toThrow(/EMAIL_SMTP_PASSWORD/);
    expect(() => loadEmailConfig({ ...minimal, EMAIL_PROCESSED_FOLDER: 'INBOX' })).toThrow(
      /EMAIL_PROCESSED_FOLDER/,
    );
    expect(() => loadEmailConfig({ ...minimal, EMAIL_MAILBOXES: 'INBOX,INBOX=support' })).toThrow(/twice/);
  });

  it('takes an OAuth2 access token from a file (read again at each connection), instead of the token itself', () => {
    const c = loadEmailConfig({
      ...minimal,
      EMAIL_IMAP_PASSWORD: '',
      EMAIL_IMAP_ACCESS_TOKEN_FILE: '/run/secrets/imap-token',
      EMAIL_SMTP_USER: 'bot@example.org',
      EMAIL_SMTP_ACCESS_TOKEN_FILE: '/run/secrets/smtp-token',
    });
    expect(c.imap).toMatchObject({ user: 'bot@example.org', accessTokenFile: '/run/secrets/imap-token' });
    expect(c.imap.password).toBeUndefined();
    expect(c.smtp).toMatchObject({ user: 'bot@example.org', accessTokenFile: '/run/secrets/smtp-token' });
    expect(() =>
      loadEmailConfig({ ...minimal, EMAIL_IMAP_ACCESS_TOKEN: 't', EMAIL_IMAP_ACCESS_TOKEN_FILE: '/f' }),
    ).toThrow(/EMAIL_IMAP_ACCESS_TOKEN_FILE/);
    expect(() => loadEmailConfig({ ...minimal, EMAIL_SMTP_ACCESS_TOKEN_FILE: '/f' })).toThrow(
      /EMAIL_SMTP_USER/,
    );
  });
});

describe('SMTP failures', () => {
  it('retries 4xx and connection failures, not 5xx rejections of the mail or its recipient', () => {
    expect(
      toSendError({ code: 'EENVELOPE', responseCode: 550, message: '5.1.1 User unknown', command: 'RCPT TO' })
        .retryable,
    ).toBe(false);
    expect(
      toSendError({ code: 'EMESSAGE', responseCode: 554, message: '5.7.1 Message rejected', command: 'DATA' })
        .retryable,
    ).toBe(false);
    expect(toSendError({ code: 'EENVELOPE', responseCode: 451, message: 'try later' }).retryable).toBe(true);
    expect(toSendError({ code: 'EMESSAGE', responseCode: 452, message: 'mailbox full' }).retryable).toBe(
      true,
    );
    expect(toSendError({ code: 'ECONNECTION', message: 'connect ECONNREFUSED' }).retryable).toBe(true);
    expect(toSendError({ code: 'ETIMEDOUT', message: 'timeout' }).retryable).toBe(true);
    expect(toSendError({ code: 'EENVELOPE', message: 'No recipients defined' }).retryable).toBe(false);
    expect(toSendError(new Error('something else')).retryable).toBe(true);
    expect(toSendError({ responseCode: 554, message: 'rejected' }).message).toBe('SMTP 554: rejected');
  });

  it('retries a refusal of the hub itself (its login, its sender), which is no verdict on the mail', () => {
    const refusals = [
      // A rotated password, a revoked app password, an expired OAuth2 token.
      {
        code: 'EAUTH',
        responseCode: 535,
        message: 'Invalid login: 535 5.7.3 Authentication unsuccessful',
        command: 'AUTH PLAIN',
      },
      {
        code: 'EAUTH',
        responseCode: 534,
        message: '5.7.9 Application-specific password required',
        command: 'AUTH LOGIN',
      },
      { code: 'EAUTH', message: 'Missing credentials for "PLAIN"', command: 'API' },
      { code: 'ENOAUTH', message: 'no credentials' },
      { code: 'EOAUTH2', message: "Can't create new access token for user" },
      { code: 'ETOKENFILE', message: 'the access token file /run/token is empty' },
      // Authentication required, at MAIL FROM; a 5xx at MAIL FROM (the sender refused, a quota).
      {
        code: 'EENVELOPE',
        responseCode: 530,
        message: '5.7.0 Authentication required',
        command: 'MAIL FROM',
      },
      {
        code: 'EENVELOPE',
        responseCode: 550,
        message: '5.4.5 Daily user sending limit exceeded',
        command: 'MAIL FROM',
      },
      {
        code: 'EENVELOPE',
        responseCode: 553,
        message: '5.7.1 Sender address rejected',
        command: 'MAIL FROM',
      },
      { code: 'EPROTOCOL', responseCode: 554, message: 'Invalid greeting', command: 'CONN' },
      {
        code: 'EAUTH',
        responseCode: 454,
        message: '4.7.0 Temporary authentication failure',
        command: 'AUTH PLAIN',
      },
    ];
    for (const err of refusals) {
      expect(smtpFailure(err), err.message).toBe('channel');
      expect(toSendError(err).retryable, err.message).toBe(true);
    }
    // A message too large for the server is the mail's own, even at MAIL FROM (SIZE).
    expect(
      toSendError({
        code: 'EENVELOPE',
        responseCode: 552,
        message: '5.3.4 Message size exceeds fixed limit',
        command: 'MAIL FROM',
      }).retryable,
    ).toBe(false);
  });
});
