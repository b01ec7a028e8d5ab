import { createEmailAdapter, loadEmailConfig } from '../../adapters/email/index.ts';
import type { HubConfig } from '../../src/config/env.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { DovecotServer } from './dovecot.ts';
import { type RunningHub, startTestHub } from './hub.ts';
import type { SmtpSink } from './smtp-sink.ts';

/** The authserv-id the test hubs trust (EMAIL_TRUSTED_AUTHSERV_ID): the receiving server's name. */
export const TRUSTED_AUTHSERV_ID = 'mx.switchboard.test';

export interface MailSpec {
  from: string;
  messageId: string;
  subject: string;
  body: string;
  to?: string;
  inReplyTo?: string;
  references?: string[];
  headers?: Record<string, string>;
  /**
   * Authentication-Results values, topmost first, placed above every other header as the
   * receiving server writes them (headers a sender wrote go in `headers`, below).
   */
  authResults?: string[];
  /** Content-Transfer-Encoding of the body, written as given: `8bit` unless told. */
  encoding?: string;
  /** The Date header: now unless told. */
  date?: Date;
}

/** What the trusted receiving server writes for mail whose domain passed SPF, DKIM and DMARC. */
export function passed(domain: string, authservId = TRUSTED_AUTHSERV_ID): string {
  return `${authservId}; spf=pass smtp.mailfrom=${domain}; dkim=pass (2048-bit key) header.d=${domain} header.s=s1 header.b=AbCd; dmarc=pass (p=reject dis=none) header.from=${domain}`;
}

/** A plain RFC 5322 message as a mail client would write it, after the receiving server's headers. */
export function mail(m: MailSpec, ourAddress = 'support@switchboard.test'): string {
  const lines = [
    ...(m.authResults ?? []).map((v) => `Authentication-Results: ${v}`),
    `From: ${m.from}`,
    `To: ${m.to ?? `Switchboard Support <${ourAddress}>`}`,
    `Subject: ${m.subject}`,
    `Date: ${(m.date ?? new Date()).toUTCString()}`,
    `Message-ID: <${m.messageId}>`,
    ...(m.inReplyTo ? [`In-Reply-To: <${m.inReplyTo}>`] : []),
    ...(m.references ? [`References: ${m.references.map((r) => `<${r}>`).join(' ')}`] : []),
    ...Object.entries(m.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${m.encoding ?? '8bit'}`,
    '',
    m.body,
    '',
  ];
  return lines.join('\r\n');
}

/** A file attached to a mail (mailWith). */
export interface MailPart {
  name: string;
  type: string;
  data: Buffer;
}

/**
 * A multipart/mixed mail as a mail client writes it, from a domain that passed the receiving
 * server's checks, subject "My kettle": a text part, then base64 attachments.
 */
export function mailWith(
  from: string,
  messageId: string,
  body: string,
  parts: MailPart[],
  ourAddress = 'support@switchboard.test',
): Buffer {
  const lines = [
    `Authentication-Results: ${passed('example.org')}`,
    `From: ${from}`,
    `To: Switchboard Support <${ourAddress}>`,
    'Subject: My kettle',
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${messageId}>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="part"',
    '',
    '--part',
    'Content-Type: text/plain; charset=utf-8',
    '',
    body,
  ];
  for (const p of parts) {
    lines.push(
      '--part',
      `Content-Type: ${p.type}; name="${p.name}"`,
      `Content-Disposition: attachment; filename="${p.name}"`,
      'Content-Transfer-Encoding: base64',
      '',
    );
    const b64 = p.data.toString('base64');
    for (let at = 0; at < b64.length; at += 76) lines.push(b64.slice(at, at + 76));
  }
  lines.push('--part--', '');
  return Buffer.from(lines.join('\r\n'));
}

/**
 * The email adapter's environment for a test hub reading `dovecot` over plain IMAP and sending to
 * the local SMTP sink on `smtpPort`, as `Switchboard Support <ourAddress>`, trusting
 * TRUSTED_AUTHSERV_ID; `mailboxes` is EMAIL_MAILBOXES (`INBOX=<bot>,…`).
 */
export function localEmailEnv(
  dovecot: { port: number; user: string; password: string },
  smtpPort: number,
  mailboxes: string,
  ourAddress: string,
): Record<string, string> {
  return {
    EMAIL_IMAP_HOST: '127.0.0.1',
    EMAIL_IMAP_PORT: String(dovecot.port),
    EMAIL_IMAP_TLS: 'none',
    EMAIL_IMAP_USER: dovecot.user,
    EMAIL_IMAP_PASSWORD: dovecot.password,
    EMAIL_MAILBOXES: mailboxes,
    EMAIL_SMTP_HOST: '127.0.0.1',
    EMAIL_SMTP_PORT: String(smtpPort),
    EMAIL_SMTP_TLS: 'none',
    EMAIL_FROM: `Switchboard Support <${ourAddress}>`,
    EMAIL_TRUSTED_AUTHSERV_ID: TRUSTED_AUTHSERV_ID,
  };
}

/** A test hub (as startTestHub) whose one channel besides the API is the email adapter, configured by `env`. */
export function startEmailHub(
  overrides: Partial<HubConfig>,
  env: Record<string, string>,
): Promise<RunningHub> {
  return startTestHub(overrides, { adapters: [createEmailAdapter(loadEmailConfig(env))] });
}

/** What an email describe runs on besides `smtp`: a dovecot of its own and a test database. */
export interface MailServers {
  dovecot: DovecotServer;
  database: TestDatabase;
}

/** Starts a dovecot (with `folders` made besides INBOX), `smtp`, and a test database. */
export async function startMailServers(smtp: SmtpSink, folders: string[] = []): Promise<MailServers> {
  const dovecot = await DovecotServer.create();
  try {
    await dovecot.start();
    if (folders.length > 0) {
      const client = await dovecot.client();
      for (const folder of folders) await client.mailboxCreate(folder);
      await client.logout();
    }
    await smtp.start();
    return { dovecot, database: await createTestDatabase() };
  } catch (err) {
    // The describe never learns of this dovecot, so its afterAll cannot remove it.
    await dovecot.cleanup();
    throw err;
  }
}

/** Stops the hub (if one runs), `smtp`, and whichever of startMailServers' servers exist. */
export async function stopMailServers(
  running: RunningHub | undefined,
  smtp: SmtpSink,
  servers: Partial<MailServers>,
): Promise<void> {
  await running?.stop().catch(() => undefined);
  await smtp.stop();
  await servers.dovecot?.cleanup();
  await servers.database?.drop();
}
