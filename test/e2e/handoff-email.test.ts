import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { DovecotServer } from '../helpers/dovecot.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import { localEmailEnv, mail, passed, startEmailHub } from '../helpers/mail.ts';
import { type ReceivedMail, SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

const CONFIG = path.join(REPO_ROOT, 'test/fixtures/handoff');
const ADMIN_TOKEN = 'operator-secret-for-the-handoff-email-0123456789';
const OUR_ADDRESS = 'support@switchboard.test';
const bare = (id: string | undefined) => (id ?? '').replace(/^<|>$/g, '');

/** An agent answering an email thread: the mail goes out in the person's thread (In-Reply-To kept). */
describe('handoff on email (dovecot IMAP in, SMTP sink out)', () => {
  let dovecot: DovecotServer;
  const smtp = new SmtpSink();
  let running: RunningHub;

  beforeAll(async () => {
    dovecot = await DovecotServer.create();
    await dovecot.start();
    await smtp.start();
    running = await startEmailHub(
      { configDir: CONFIG, adminToken: ADMIN_TOKEN },
      localEmailEnv(dovecot, smtp.port, 'INBOX=helpdesk', OUR_ADDRESS),
    );
  });
  afterAll(async () => {
    await running?.stop();
    await smtp.stop();
    await dovecot?.cleanup();
  });

  it('the agent’s answer is a mail in the thread, replying to the person’s latest mail', async () => {
    const alice = 'alice@example.org';
    await dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from: 'Alice Example <alice@example.org>',
        messageId: 'help.alice@example.org',
        subject: 'Broken order',
        body: 'I want to talk to a human',
      }),
    );
    const [first] = await smtp.waitFor(alice);
    expect(first!.parsed.text).toContain('Connecting you to an agent...');
    const { rows } = await running.hub.db.query<{ id: string }>(
      `SELECT id FROM sessions WHERE channel = 'email' AND bot = 'helpdesk'`,
    );
    const sessionId = rows[0]!.id;
    const made = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Ana',
      email: 'ana@example.com',
      bots: ['helpdesk'],
    });
    const agent = agentClient(running.url, { token: made.token });
    expect((await agent.call('POST', `/api/agent/conversations/${sessionId}/claim`)).status).toBe(200);
    const said = await agent.call('POST', `/api/agent/conversations/${sessionId}/messages`, {
      body: { text: 'Hello Alice, Ana here: I am looking into your order.' },
    });
    expect(said.status).toBe(202);
    const mails = await until(
      () => smtp.received.filter((m: ReceivedMail) => m.parsed.text?.includes('Ana here')),
      (m) => m.length > 0,
      30_000,
    );
    const answer = mails[0]!.parsed;
    expect(bare(answer.inReplyTo)).toBe('help.alice@example.org');
    expect(answer.subject).toBe('Re: Broken order');
    expect(answer.to && 'value' in answer.to ? answer.to.value[0]?.address : undefined).toBe(alice);
    const row = await running.hub.db.query<{ role: string }>(
      `SELECT role FROM messages WHERE session_id = $1 AND content LIKE 'Hello Alice%'`,
      [sessionId],
    );
    expect(row.rows).toEqual([{ role: 'agent' }]);
  });
});
