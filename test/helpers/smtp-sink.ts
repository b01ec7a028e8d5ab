import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';
import { until } from './until.ts';

export interface ReceivedMail {
  /** The SMTP envelope: MAIL FROM and RCPT TO, as the server saw them. */
  mailFrom: string | undefined;
  rcptTo: string[];
  raw: Buffer;
  parsed: ParsedMail;
}

/** Decides an answer to RCPT TO: undefined accepts, an object rejects with that SMTP code. */
export type RcptPolicy = (address: string) => { code: number; message: string } | undefined;

/** A login the server was asked for (AUTH PLAIN or LOGIN with a password, XOAUTH2 with a token). */
export interface SmtpLogin {
  method: string;
  username: string | undefined;
  password?: string;
  accessToken?: string;
}

/** Decides an answer to AUTH: undefined accepts, an object refuses with that SMTP code. */
export type AuthPolicy = (login: SmtpLogin) => { code: number; message: string } | undefined;

/**
 * A real SMTP server on a loopback port (the `smtp-server` package) that records every mail it
 * accepts, parsed with mailparser. No TLS, any login accepted unless `authPolicy` says otherwise:
 * it stands where a relay would.
 */
export class SmtpSink {
  readonly received: ReceivedMail[] = [];
  rcptPolicy: RcptPolicy = () => undefined;
  authPolicy: AuthPolicy = () => undefined;
  /** Every login tried, in order, with whether it was accepted. */
  readonly logins: (SmtpLogin & { accepted: boolean })[] = [];
  /** Holds each mail this long before accepting it (a slow server); counts mails being received. */
  dataDelayMs = 0;
  receiving = 0;
  private server: SMTPServer | undefined;
  port = 0;

  async start(port = 0): Promise<void> {
    const server = new SMTPServer({
      secure: false,
      hideSTARTTLS: true,
      authOptional: true,
      logger: false,
      authMethods: ['PLAIN', 'LOGIN', 'XOAUTH2'],
      onAuth: (auth, _session, callback) => {
        const login: SmtpLogin = {
          method: auth.method,
          username: auth.username,
          ...(typeof auth.password === 'string' ? { password: auth.password } : {}),
          ...(typeof auth.accessToken === 'string' ? { accessToken: auth.accessToken } : {}),
        };
        const verdict = this.authPolicy(login);
        this.logins.push({ ...login, accepted: !verdict });
        if (!verdict) return callback(null, { user: auth.username ?? 'any' });
        const err = new Error(verdict.message) as Error & { responseCode: number };
        err.responseCode = verdict.code;
        return callback(err);
      },
      onRcptTo: (address: SMTPServerAddress, _session, callback) => {
        const verdict = this.rcptPolicy(address.address);
        if (!verdict) return callback();
        const err = new Error(verdict.message) as Error & { responseCode: number };
        err.responseCode = verdict.code;
        return callback(err);
      },
      onData: (stream, session, callback) => {
        this.receiving++;
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks);
          new Promise((r) => setTimeout(r, this.dataDelayMs))
            .then(() => simpleParser(raw))
            .then((parsed) => {
              this.receiving--;
              this.received.push({
                mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
                rcptTo: session.envelope.rcptTo.map((r) => r.address),
                raw,
                parsed,
              });
              callback();
            })
            .catch((err: Error) => callback(err));
        });
      },
    });
    server.on('error', () => undefined);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.server.address() as { port: number }).port;
  }

  /** Mails sent to an address (RCPT TO), in arrival order. */
  to(address: string): ReceivedMail[] {
    return this.received.filter((m) => m.rcptTo.includes(address));
  }

  /** Waits until `count` mails have reached `address`; throws with what arrived when the deadline passes. */
  async waitFor(address: string, count = 1, timeoutMs = 30_000): Promise<ReceivedMail[]> {
    try {
      return await until(
        () => this.to(address),
        (mails) => mails.length >= count,
        timeoutMs,
        50,
      );
    } catch {
      throw new Error(
        `expected ${count} mail(s) to ${address}, got ${this.to(address).length}; all recipients: ${this.received
          .flatMap((m) => m.rcptTo)
          .join(', ')}`,
      );
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
