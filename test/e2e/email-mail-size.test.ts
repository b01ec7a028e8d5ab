import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/database.ts';
import type { DovecotServer } from '../helpers/dovecot.ts';
import { PNG_1X1, pdfBytes } from '../helpers/files.ts';
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
const MB = 1024 * 1024;
/** EMAIL_MAX_MAIL_BYTES for these tests. */
const MAX_MAIL_BYTES = 1 * MB;

/** An IMAP link between the hub and dovecot that counts the bytes the server sends the hub. */
async function countingProxy(target: number) {
  let received = 0;
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
    upstream.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    upstream.pipe(client);
    client.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get received() {
      return received;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A mail larger than EMAIL_MAX_MAIL_BYTES is never fetched whole (IMAP hands a mail over whole,
 * attachments and all, into the hub's memory): its header and text are, and the person is told
 * its attachments were not received. A mail within the limit is read as always.
 */
describe('email: a mail over EMAIL_MAX_MAIL_BYTES', () => {
  let dovecot: DovecotServer;
  let proxy: Awaited<ReturnType<typeof countingProxy>>;
  const smtp = new SmtpSink();
  let database: TestDatabase;
  let running: RunningHub | undefined;

  beforeAll(async () => {
    ({ dovecot, database } = await startMailServers(smtp));
    proxy = await countingProxy(dovecot.port);
    running = await startEmailHub(
      { databaseUrl: database.url, configDir: CONFIG_DIR },
      {
        ...localEmailEnv({ ...dovecot, port: proxy.port }, smtp.port, 'INBOX=gallery', OUR_ADDRESS),
        EMAIL_MAX_MAIL_BYTES: String(MAX_MAIL_BYTES),
      },
    );
  });
  afterAll(async () => {
    await stopMailServers(running, smtp, { dovecot, database });
    await proxy?.close();
  });

  it('is read without its attachments: its bytes never reach the hub, the text does, the person is told', async () => {
    const ana = 'ana@example.org';
    const before = proxy.received;
    await dovecot.append(
      mailWith(
        `Ana <${ana}>`,
        'big.ana@example.org',
        'The kettle, attached',
        [
          { name: 'scan.pdf', type: 'application/pdf', data: pdfBytes(6 * MB, 'big') },
          { name: 'kettle.png', type: 'image/png', data: PNG_1X1 },
        ],
        OUR_ADDRESS,
      ),
    );
    const [reply] = await smtp.waitFor(ana, 1, 60_000);
    const text = reply!.parsed.text ?? '';
    expect(text).toContain('You said: The kettle, attached');
    expect(text).toContain('The attachment "scan.pdf" of your mail could not be received');
    expect(text).not.toContain('Got scan.pdf');
    // The 8 MB mail (base64) was not downloaded: what came from the server stays under the limit.
    expect(proxy.received - before).toBeLessThan(MAX_MAIL_BYTES);
    const [inbound] = (
      await running!.hub.db.query<{ refused: { name: string; reason: string }[] }>(
        `SELECT payload->'refusedAttachments' AS refused FROM messages WHERE envelope_id = $1`,
        ['email:big.ana@example.org'],
      )
    ).rows;
    expect(inbound!.refused.map((r) => [r.name, r.reason])).toEqual([
      ['scan.pdf', 'unavailable'],
      ['kettle.png', 'unavailable'],
    ]);
  });

  it('with a text part over the limit, reads that much of the text and no more', async () => {
    const cy = 'cy@example.org';
    const before = proxy.received;
    await dovecot.append(
      mailWith(`Cy <${cy}>`, 'long.cy@example.org', `Hello ${'x'.repeat(3 * MB)}`, [], OUR_ADDRESS),
    );
    const [reply] = await smtp.waitFor(cy, 1, 60_000);
    expect(reply!.parsed.text ?? '').toContain('You said: Hello xxx');
    // At most EMAIL_MAX_MAIL_BYTES of text, and the header and the IMAP exchanges around it.
    expect(proxy.received - before).toBeLessThan(MAX_MAIL_BYTES + 256 * 1024);
  });

  it('within the limit, is read whole as always', async () => {
    const bo = 'bo@example.org';
    await dovecot.append(
      mailWith(
        `Bo <${bo}>`,
        'small.bo@example.org',
        'A picture',
        [{ name: 'kettle.png', type: 'image/png', data: PNG_1X1 }],
        OUR_ADDRESS,
      ),
    );
    const [reply] = await smtp.waitFor(bo, 1, 60_000);
    expect(reply!.parsed.text ?? '').toContain(`Got kettle.png (image/png, ${PNG_1X1.length} bytes)`);
  });
});
