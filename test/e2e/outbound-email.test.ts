import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin.ts';
import { DovecotServer } from '../helpers/dovecot.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import { localEmailEnv, mail, passed, startEmailHub } from '../helpers/mail.ts';
import { type ReceivedMail, SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const OUR_ADDRESS = 'support@switchboard.test';
const ADMIN_TOKEN = 'outbound-email-admin-token-0123456789abcdef';

const bare = (id: string | undefined) => (id ?? '').replace(/^<|>$/g, '');
const refs = (m: ReceivedMail) => {
  const r = m.parsed.references;
  return (Array.isArray(r) ? r : r ? [r] : []).map(bare);
};

describe('outbound email: a new thread with a subject, or inside the session thread', () => {
  let dovecot: DovecotServer;
  const smtp = new SmtpSink();
  let running: RunningHub;
  let admin: ReturnType<typeof adminClient>;

  beforeAll(async () => {
    dovecot = await DovecotServer.create();
    await dovecot.start();
    await smtp.start();
    running = await startEmailHub(
      { configDir: FIXTURE_CONFIG, adminToken: ADMIN_TOKEN },
      localEmailEnv(dovecot, smtp.port, 'INBOX=default', OUR_ADDRESS),
    );
    admin = adminClient(running.url, ADMIN_TOKEN);
  });

  afterAll(async () => {
    await running?.stop();
    await smtp.stop();
    await dovecot?.cleanup();
  });

  const outboundCount = async () =>
    Number((await running.hub.db.query('SELECT count(*) AS n FROM outbound_messages')).rows[0]!.n);

  it('refuses a message to an address with no thread and no subject (400 subject_required), queueing nothing', async () => {
    const before = await outboundCount();
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'email',
      to: 'nobody-yet@example.org',
      text: 'Your order is ready',
    });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('subject_required');
    expect(await outboundCount()).toBe(before);
  });

  it('opens a new thread with the subject; the answer and a later message stay in that thread and session', async () => {
    const carol = 'carol@example.org';
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'email',
      to: 'Carol@Example.org',
      subject: 'Your order A-1043 is ready',
      text: 'Pick it up at the front desk.',
    });
    expect(res.status).toBe(202);
    const sessionId = res.json.session_id as string;
    const [first] = await smtp.waitFor(carol);
    const root = bare(first!.parsed.messageId);
    expect(first!.parsed.subject).toBe('Your order A-1043 is ready');
    expect(first!.parsed.inReplyTo).toBeUndefined();
    expect(refs(first!)).toEqual([]);
    expect(first!.parsed.text).toContain('Pick it up at the front desk.');
    expect(first!.parsed.from?.value[0]?.address).toBe(OUR_ADDRESS);
    const { rows } = await running.hub.db.query('SELECT native_key FROM sessions WHERE id = $1', [sessionId]);
    expect(rows[0]!.native_key).toBe(`${carol}#${root}`);
    await until(
      async () => (await admin('GET', `/api/admin/messages/${res.json.message_id}`)).json.status,
      (s) => s === 'sent',
    );

    // Carol answers: her mail joins the session the message opened, and the bot answers in the thread.
    await dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from: 'Carol <carol@example.org>',
        messageId: 'answer.carol@example.org',
        subject: 'Re: Your order A-1043 is ready',
        inReplyTo: root,
        references: [root],
        body: 'Can I come tomorrow?',
      }),
    );
    const [, answer] = await smtp.waitFor(carol, 2);
    expect(answer!.parsed.text).toContain('Can I come tomorrow?');
    expect(answer!.parsed.subject).toBe('Re: Your order A-1043 is ready');
    expect(refs(answer!)[0]).toBe(root);
    const sessions = await running.hub.db.query(
      `SELECT id FROM sessions WHERE channel = 'email' AND native_key LIKE $1`,
      [`${carol}#%`],
    );
    expect(sessions.rows.map((r) => r.id)).toEqual([sessionId]);

    // Without a subject, the next message goes inside the session's thread.
    const later = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'email',
      to: carol,
      text: 'Tomorrow is fine, we open at 9.',
    });
    expect(later.status).toBe(202);
    expect(later.json.session_id).toBe(sessionId);
    const [, , third] = await smtp.waitFor(carol, 3);
    expect(third!.parsed.text).toContain('Tomorrow is fine, we open at 9.');
    expect(third!.parsed.subject).toBe('Re: Your order A-1043 is ready');
    expect(refs(third!)[0]).toBe(root);
    expect(bare(third!.parsed.inReplyTo)).not.toBe('');
  });

  it('opens a thread of its own for a second subject, beside the first one', async () => {
    const dave = 'dave@example.org';
    const send = (subject: string) =>
      admin('POST', '/api/admin/messages', {
        bot: 'default',
        channel: 'email',
        to: dave,
        subject,
        text: subject,
      });
    const a = await send('Invoice 17');
    const b = await send('Invoice 18');
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(a.json.session_id).not.toBe(b.json.session_id);
    const mails = await smtp.waitFor(dave, 2);
    expect(mails.map((m) => m.parsed.subject).sort()).toEqual(['Invoice 17', 'Invoice 18']);
    expect(new Set(mails.map((m) => m.parsed.messageId)).size).toBe(2);
  });

  it('broadcasts with a subject: each address gets one mail opening a thread of its own', async () => {
    const to = ['erin@example.org', 'frank@example.org'];
    const res = await admin('POST', '/api/admin/broadcasts', {
      bot: 'default',
      channel: 'email',
      to: [...to, 'Erin@Example.org'],
      subject: 'We moved to Main Street 5',
      text: 'From Monday you find us at Main Street 5.',
    });
    expect(res.status).toBe(202);
    expect(res.json.total).toBe(2);
    await until(
      async () => (await admin('GET', `/api/admin/broadcasts/${res.json.broadcast_id}`)).json,
      (p) => p.status === 'completed',
    );
    for (const address of to) {
      const mails = await smtp.waitFor(address);
      expect(mails).toHaveLength(1);
      expect(mails[0]!.parsed.subject).toBe('We moved to Main Street 5');
      expect(mails[0]!.parsed.inReplyTo).toBeUndefined();
    }
  });
});
