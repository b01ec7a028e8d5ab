import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/database.ts';
import type { DovecotServer } from '../helpers/dovecot.ts';
import { PNG_1X1 } from '../helpers/files.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import {
  localEmailEnv,
  mailWith,
  startEmailHub,
  startMailServers,
  stopMailServers,
} from '../helpers/mail.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

/** The gallery bot answers each file it got with "Got <name> (<type>, <size> bytes)", and text with "You said: …". */
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/files');
const OUR_ADDRESS = 'support@switchboard.test';
const MAX_FAILURES = 2;

/**
 * An IMAP link between the hub and dovecot that cuts the connection when the client asks for a
 * whole mail (`BODY.PEEK[]`) of a message whose Message-ID was marked, as many times as marked:
 * the fetch of a mail with its attachments failing midway, as a flaky link or server does. Or
 * (`strip`) asks the server for the mail's flags instead: the fetch comes back without a body.
 */
async function cuttingProxy(target: number) {
  let cutsLeft = 0;
  let stripsLeft = 0;
  let wholeFetches = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      if (/(BODY|BINARY)\.PEEK\[\]/.test(chunk.toString('latin1'))) {
        wholeFetches++;
        if (cutsLeft > 0) {
          cutsLeft--;
          close();
          return;
        }
        if (stripsLeft > 0) {
          stripsLeft--;
          upstream.write(
            Buffer.from(chunk.toString('latin1').replace(/(BODY|BINARY)\.PEEK\[\]/, 'FLAGS'), 'latin1'),
          );
          return;
        }
      }
      upstream.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    /** The next `n` whole-mail fetches are cut. */
    cut(n: number) {
      cutsLeft = n;
    },
    /** The next `n` whole-mail fetches come back without the mail's body. */
    strip(n: number) {
      stripsLeft = n;
    },
    get wholeFetches() {
      return wholeFetches;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A mail with the text `body` and kettle.png attached. */
const mailWithPng = (from: string, messageId: string, body: string) =>
  mailWith(from, messageId, body, [{ name: 'kettle.png', type: 'image/png', data: PNG_1X1 }], OUR_ADDRESS);

/**
 * Email's inbound file failing through the real adapter (dovecot behind a link that cuts the
 * whole-mail fetch, SMTP out): a mail is fetched whole, its attachments in it, so a failing fetch
 * is retried (the sync's backoff, counted per mail in `email_failures`); after EMAIL_MAX_FAILURES
 * the mail is read without its attachments and the person is told in the thread.
 */
describe('email: a mail whose fetch fails', () => {
  let dovecot: DovecotServer;
  let proxy: Awaited<ReturnType<typeof cuttingProxy>>;
  const smtp = new SmtpSink();
  let database: TestDatabase;
  let running: RunningHub | undefined;

  beforeAll(async () => {
    ({ dovecot, database } = await startMailServers(smtp));
    proxy = await cuttingProxy(dovecot.port);
    running = await startEmailHub(
      { databaseUrl: database.url, configDir: CONFIG_DIR },
      {
        ...localEmailEnv({ ...dovecot, port: proxy.port }, smtp.port, 'INBOX=gallery', OUR_ADDRESS),
        EMAIL_MAX_FAILURES: String(MAX_FAILURES),
      },
    );
  });
  afterAll(async () => {
    await stopMailServers(running, smtp, { dovecot, database });
    await proxy?.close();
  });

  const failuresOf = async (messageId: string) =>
    (
      await running!.hub.db.query<{ failures: number; fetch_failures: number; reason: string }>(
        `SELECT f.failures, f.fetch_failures, f.reason FROM email_failures f JOIN email_messages m
           ON m.mailbox = f.mailbox AND m.uid = f.uid AND m.uid_validity = f.uid_validity
          WHERE m.message_id = $1`,
        [messageId],
      )
    ).rows;

  it('cut once while fetched: read again after the backoff, and the file reaches the bot', async () => {
    const ana = 'ana@example.org';
    const before = proxy.wholeFetches;
    proxy.cut(1);
    await dovecot.append(mailWithPng(`Ana <${ana}>`, 'flaky.ana@example.org', 'The kettle, attached'));
    const [reply] = await smtp.waitFor(ana, 1, 60_000);
    const text = reply!.parsed.text ?? '';
    expect(text).toContain(`Got kettle.png (image/png, ${PNG_1X1.length} bytes)`);
    expect(text).not.toContain('could not be fetched');
    expect(proxy.wholeFetches - before).toBe(2);
    // A failed fetch is counted apart from the mail's handling, which has not failed.
    expect(await failuresOf('flaky.ana@example.org')).toEqual([
      { failures: 0, fetch_failures: 1, reason: expect.stringMatching(/^fetch failed: /) },
    ]);
  });

  it('a fetch that brings no body is a failed fetch, logged and counted, and the mail is read again (not taken as gone)', async () => {
    const cy = 'cy@example.org';
    const before = proxy.wholeFetches;
    proxy.strip(1);
    await dovecot.append(mailWithPng(`Cy <${cy}>`, 'bodiless.cy@example.org', 'The kettle, attached'));
    const [reply] = await smtp.waitFor(cy, 1, 60_000);
    expect(reply!.parsed.text ?? '').toContain(`Got kettle.png (image/png, ${PNG_1X1.length} bytes)`);
    expect(proxy.wholeFetches - before).toBe(2);
    expect(await failuresOf('bodiless.cy@example.org')).toEqual([
      { failures: 0, fetch_failures: 1, reason: 'fetch failed: the server sent the mail without its body' },
    ]);
  });

  it('cut every time: after EMAIL_MAX_FAILURES the mail is read without its attachment, and the person is told in the thread', async () => {
    const bea = 'bea@example.org';
    const before = proxy.wholeFetches;
    proxy.cut(Number.POSITIVE_INFINITY);
    await dovecot.append(mailWithPng(`Bea <${bea}>`, 'down.bea@example.org', 'The kettle, attached'));
    const [reply] = await smtp.waitFor(bea, 1, 90_000);
    proxy.cut(0);
    const parsed = reply!.parsed;
    expect(parsed.subject).toBe('Re: My kettle');
    const text = parsed.text ?? '';
    expect(text).toContain(
      'The attachment "kettle.png" of your mail could not be received; please send it again',
    );
    expect(text).toContain('You said: The kettle, attached');
    expect(text).not.toContain('Got kettle.png');
    expect(proxy.wholeFetches - before).toBe(MAX_FAILURES);
    const [inbound] = (
      await running!.hub.db.query<{ refused: { name: string; reason: string }[] }>(
        `SELECT payload->'refusedAttachments' AS refused FROM messages WHERE envelope_id = $1`,
        ['email:down.bea@example.org'],
      )
    ).rows;
    expect(inbound!.refused).toEqual([
      expect.objectContaining({ name: 'kettle.png', reason: 'unavailable' }),
    ]);
  });
});
