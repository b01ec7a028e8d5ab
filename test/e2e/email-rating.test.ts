import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RATING_QUESTION } from '../../src/lifecycle/rating.ts';
import { DovecotServer } from '../helpers/dovecot.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import { localEmailEnv, mail, passed, startEmailHub } from '../helpers/mail.ts';
import { type ReceivedMail, SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/rating-channels');
const OUR_ADDRESS = 'support@switchboard.test';
const ADMIN_TOKEN = 'email-rating-admin-token-0123456789abcdef';
const NUMBERED_STARS = '1. ★\n2. ★★\n3. ★★★\n4. ★★★★\n5. ★★★★★\n\n(Reply with the number of your choice.)';

const bare = (id: string | undefined) => (id ?? '').replace(/^<|>$/g, '');

/**
 * The rating ask by email, through the adapter against dovecot and the SMTP sink: the stars as
 * numbered choices, and a reply with the digit (above the quoted ask, as mail clients write it)
 * stored as the rating: for `ASK RATING`, and for the hub's ask when the conversation ended.
 */
describe('email: the rating ask as numbered choices, answered with a digit', () => {
  let dovecot: DovecotServer;
  const smtp = new SmtpSink();
  let running: RunningHub;
  const rows = async <T>(sql: string, params: unknown[]) =>
    (await running.hub.db.query(sql, params)).rows as T[];
  const sessionsOf = (address: string) =>
    rows<{ id: string; ended_at: Date | null }>(
      "SELECT id, ended_at FROM sessions WHERE channel = 'email' AND native_key LIKE $1 ORDER BY created_at",
      [`${address}#%`],
    );
  const ratingsOf = (sessionId: string) =>
    rows<{ score: string; source: string | null }>(
      `SELECT COALESCE(data->>'score', data->>'value') AS score, data->>'source' AS source
       FROM session_events WHERE session_id = $1 AND type = 'rating'`,
      [sessionId],
    );

  /** The person answers `to` (one of our mails) with `body`, quoting it as a mail client does. */
  const answer = (from: string, n: number, to: ReceivedMail, body: string, root: string) =>
    dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from,
        messageId: `answer.${n}.${from}`,
        subject: `Re: ${to.parsed.subject?.replace(/^Re: /, '')}`,
        inReplyTo: bare(to.parsed.messageId),
        references: [root, bare(to.parsed.messageId)],
        body: `${body}\n\nOn Sat, 5 Dec 2026, Switchboard Support wrote:\n${(to.parsed.text ?? '')
          .split('\n')
          .map((l) => `> ${l}`)
          .join('\n')}`,
      }),
    );

  beforeAll(async () => {
    dovecot = await DovecotServer.create();
    await dovecot.start();
    await smtp.start();
    running = await startEmailHub(
      { configDir: CONFIG_DIR, adminToken: ADMIN_TOKEN },
      localEmailEnv(dovecot, smtp.port, 'INBOX=default', OUR_ADDRESS),
    );
  });
  afterAll(async () => {
    await running?.stop();
    await smtp.stop();
    await dovecot?.cleanup();
  });

  it('ASK RATING: numbered stars; a reply with the digit is the rating', async () => {
    const from = 'rita@example.org';
    await dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from: `Rita <${from}>`,
        messageId: `first.${from}`,
        subject: 'Rate us',
        body: 'rate',
      }),
    );
    const [asked] = await smtp.waitFor(from);
    expect(asked!.parsed.text).toContain(`${DEFAULT_RATING_QUESTION}\n\n${NUMBERED_STARS}`);
    await answer(`Rita <${from}>`, 1, asked!, '4', `first.${from}`);
    const mails = await smtp.waitFor(from, 2);
    expect(mails[1]!.parsed.text).toContain('You gave 4');
    const [session] = await sessionsOf(from);
    expect(await ratingsOf(session!.id)).toEqual([{ score: '4', source: null }]);
  });

  it("askRating: the end mails the numbered stars; the digit is the ended session's rating", async () => {
    const from = 'sam@example.org';
    await dovecot.append(
      mail({
        authResults: [passed('example.org')],
        from: `Sam <${from}>`,
        messageId: `first.${from}`,
        subject: 'Opening hours',
        body: 'When are you open?',
      }),
    );
    await smtp.waitFor(from);
    const [session] = await sessionsOf(from);
    const res = await fetch(`${running.url}/api/admin/sessions/${session!.id}/end`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(res.status).toBe(202);
    const [, asked] = await smtp.waitFor(from, 2);
    expect(asked!.parsed.text).toContain(`${DEFAULT_RATING_QUESTION}\n\n${NUMBERED_STARS}`);
    // In the same thread as the conversation.
    expect(bare(asked!.parsed.inReplyTo)).toBe(`first.${from}`);
    await answer(`Sam <${from}>`, 2, asked!, '5', `first.${from}`);
    const mails = await smtp.waitFor(from, 3);
    expect(mails[2]!.parsed.text).toContain('Thank you for your rating!');
    expect(await ratingsOf(session!.id)).toEqual([{ score: '5', source: 'askRating' }]);
    expect(await sessionsOf(from)).toHaveLength(1);
    await until(
      () => sessionsOf(from),
      (s) => s.length === 1 && s[0]!.ended_at !== null,
    );
  });
});
