import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmailAdapter, loadEmailConfig } from '../../adapters/email/index.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import {
  localEmailEnv,
  type MailServers,
  mail,
  passed,
  startMailServers,
  stopMailServers,
} from '../helpers/mail.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { type ReceivedMail, SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/config');
const OUR_ADDRESS = 'support@switchboard.test';
const MAX_REPLIES = 4;
const MAX_REPEATS = 2;
/** How often the stand-in responder looks for new mail from the bot. */
const RESPONDER_POLL_MS = 50;

const bare = (id: string | undefined) => (id ?? '').replace(/^<|>$/g, '');
const refs = (m: ReceivedMail) => {
  const r = m.parsed.references;
  return (Array.isArray(r) ? r : r ? [r] : []).map(bare);
};

/**
 * The email channel against a responder that ignores Auto-Submitted (a ticket system, an "I'm
 * away" script): it answers every mail the bot sends, without any auto-reply marker. Limits set
 * low (EMAIL_LOOP_MAX_REPLIES 4, EMAIL_LOOP_MAX_REPEATS 2) on the Redis limiter, as a hub of
 * several processes counts.
 */
describe('mail loops with an auto-responder (dovecot in, SMTP out, Redis limiter)', () => {
  const smtp = new SmtpSink();
  const redis = testRedisPrefix();
  const logs = capturingLogger('warn');
  let servers: MailServers;
  let running: RunningHub;
  const responders: (() => void)[] = [];

  beforeAll(async () => {
    servers = await startMailServers(smtp);
    const env = {
      ...localEmailEnv(servers.dovecot, smtp.port, 'INBOX=default', OUR_ADDRESS),
      EMAIL_LOOP_MAX_REPLIES: String(MAX_REPLIES),
      EMAIL_LOOP_MAX_REPEATS: String(MAX_REPEATS),
    };
    running = await startTestHub(
      {
        databaseUrl: servers.database.url,
        configDir: CONFIG_DIR,
        redisUrl: TEST_REDIS_URL,
        redisPrefix: redis.prefix,
      },
      { adapters: [createEmailAdapter(loadEmailConfig(env))], logger: logs.logger },
    );
  });
  afterAll(async () => {
    for (const stop of responders) stop();
    await stopMailServers(running, smtp, servers ?? {});
    await redis.cleanup();
  });

  /** Answers every mail the bot sends to `address`, in its thread, with `body(n)` (n from 1). */
  function autoResponder(address: string, body: (n: number) => string): void {
    let answered = 0;
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      const pending = smtp.to(address).slice(answered);
      if (pending.length === 0) return;
      busy = true;
      void (async () => {
        for (const m of pending) {
          answered++;
          const id = bare(m.parsed.messageId);
          await servers.dovecot.append(
            mail({
              authResults: [passed('example.org')],
              from: `Away <${address}>`,
              messageId: `auto-${answered}.${address}`,
              subject: `Automatic reply: ${m.parsed.subject ?? ''}`,
              inReplyTo: id,
              references: [...refs(m), id],
              body: body(answered),
            }),
          );
        }
      })().finally(() => {
        busy = false;
      });
    }, RESPONDER_POLL_MS);
    responders.push(() => clearInterval(timer));
  }

  const inbound = (address: string) =>
    running.hub.db
      .query<{ content: string; envelope_id: string; no_reply: string | null; answerable: boolean }>(
        `SELECT m.content, m.envelope_id, e.no_reply, e.reply_to IS NOT NULL AS answerable FROM messages m
         JOIN sessions s ON s.id = m.session_id
         LEFT JOIN email_messages e ON e.envelope_id = m.envelope_id AND e.direction = 'in'
         WHERE s.channel = 'email' AND s.native_key LIKE $1 AND m.role = 'user' ORDER BY m.seq`,
        [`${address}#%`],
      )
      .then((r) => r.rows);
  const replies = (address: string) =>
    running.hub.db
      .query<{ status: string }>(
        `SELECT m.delivery_status AS status FROM messages m JOIN sessions s ON s.id = m.session_id
         WHERE s.channel = 'email' AND s.native_key LIKE $1 AND m.role = 'assistant'`,
        [`${address}#%`],
      )
      .then((r) => r.rows);
  const suspected = async (reason: string) =>
    (
      await running.hub.metrics.registry.getSingleMetric('switchboard_email_loop_suspected_total')?.get()
    )?.values.find((v) => v.labels.reason === reason)?.value ?? 0;

  it('answers a responder that writes something new each time at most EMAIL_LOOP_MAX_REPLIES times; later mail is recorded, logged once', async () => {
    const away = 'desk@example.org';
    autoResponder(
      away,
      (n) =>
        `Ticket update ${['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'][n - 1]}: we have your request.`,
    );
    await servers.dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from: `Desk <${away}>`,
        messageId: `start.${away}`,
        subject: 'Your order',
        body: 'Where is my order?',
      }),
    );
    // The first mail and MAX_REPLIES - 1 auto-replies are answered; the next one is recorded
    // without an answer, and then the responder has nothing more to answer.
    const rows = await until(
      () => inbound(away),
      (r) => r.length === MAX_REPLIES + 1,
    );
    expect(rows.map((r) => r.no_reply)).toEqual([...Array(MAX_REPLIES).fill(null), 'loop-replies']);
    await until(
      () => replies(away),
      (r) => r.length > 0 && r.every((x) => x.status === 'sent'),
    );
    expect(smtp.to(away)).toHaveLength(MAX_REPLIES);

    // Mail from that address in the window is still recorded, and still not answered.
    for (const n of [1, 2])
      await servers.dovecot.append(
        mail({
          authResults: [passed('example.org')],
          from: `Desk <${away}>`,
          messageId: `later-${n}.${away}`,
          subject: 'Re: Your order',
          inReplyTo: `start.${away}`,
          references: [`start.${away}`],
          body: `and another thing, number ${n}`,
        }),
      );
    const all = await until(
      () => inbound(away),
      (r) => r.length === MAX_REPLIES + 3,
    );
    expect(all.slice(MAX_REPLIES).map((r) => r.no_reply)).toEqual([
      'loop-replies',
      'loop-replies',
      'loop-replies',
    ]);
    expect(all.at(-1)!.content).toBe('and another thing, number 2');
    // Unlike an auto-reply, a mail held back keeps the address an agent would answer at.
    expect(all.every((r) => r.answerable)).toBe(true);
    await until(
      () => replies(away),
      (r) => r.every((x) => x.status === 'sent'),
    );
    expect(smtp.to(away)).toHaveLength(MAX_REPLIES);
    // One line for the window, naming the first mail held back; every held mail counted.
    const lines = logs.lines.filter((l) => l.event === 'email.loop_suspected' && l.reason === 'loop-replies');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ envelopeId: all[MAX_REPLIES]!.envelope_id, limit: MAX_REPLIES });
    expect(await suspected('loop-replies')).toBe(3);
  });

  it('stops sooner when the responder repeats the same text: EMAIL_LOOP_MAX_REPEATS answers', async () => {
    const away = 'holiday@example.org';
    // The same notice each time (only a number in it changes).
    autoResponder(away, (n) => `I am out of the office until Monday ${n}. Your mail will not be forwarded.`);
    await servers.dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from: `Holiday <${away}>`,
        messageId: `start.${away}`,
        subject: 'Invoice',
        body: 'Please send the invoice again.',
      }),
    );
    // The person's first mail, then MAX_REPEATS copies of the notice answered, the next held.
    const rows = await until(
      () => inbound(away),
      (r) => r.length === MAX_REPEATS + 2,
    );
    expect(rows.map((r) => r.no_reply)).toEqual([...Array(MAX_REPEATS + 1).fill(null), 'loop-repeated']);
    await until(
      () => replies(away),
      (r) => r.length > 0 && r.every((x) => x.status === 'sent'),
    );
    expect(smtp.to(away)).toHaveLength(MAX_REPEATS + 1);
    expect(
      logs.lines.filter((l) => l.event === 'email.loop_suspected' && l.reason === 'loop-repeated'),
    ).toHaveLength(1);
    expect(await suspected('loop-repeated')).toBe(1);
  });
});
