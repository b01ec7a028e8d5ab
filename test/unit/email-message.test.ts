import { describe, expect, it } from 'vitest';
import { composeReply, LOOP_GUARD_HEADERS } from '../../adapters/email/message/compose.ts';
import type { Ours } from '../../adapters/email/message/no-reply.ts';
import {
  parseEmail,
  REPLY_CUT_TEXT_FACTOR,
  REPLY_CUT_TIMEOUT_MS,
} from '../../adapters/email/message/parse.ts';
import { visibleReplyText, visibleReplyTextWithin } from '../../adapters/email/message/reply-text.ts';
import { chosenSuggestion, renderSuggestions } from '../../adapters/email/message/suggestions.ts';
import {
  MAX_REFERENCES,
  messageIdList,
  normalizeMessageId,
  replyReferences,
  replySubject,
  threadRoot,
} from '../../adapters/email/message/thread.ts';
import type { EmailReplyTo } from '../../adapters/email/reply-to.ts';

const ours: Ours = { addresses: new Set(['support@switchboard.test']), messageIdDomain: 'switchboard.test' };
/** The hub's default MAX_TEXT_BYTES. */
const MAX_TEXT_BYTES = 16 * 1024;
const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'));

/** Gmail's reply: multipart/alternative, the quote under "On … wrote:" and in a gmail_quote div. */
const GMAIL_REPLY = crlf(`MIME-Version: 1.0
Date: Tue, 4 Mar 2025 11:02:41 +0100
References: <CAJ7mT1f3Qx=root@mail.gmail.com> <sb.6f1c.3@switchboard.test>
In-Reply-To: <sb.6f1c.3@switchboard.test>
Message-ID: <CAJ7mT1hB+reply2=XyZ@mail.gmail.com>
Subject: Re: Opening hours
From: Alice Example <Alice.Example@gmail.com>
To: Switchboard Support <support@switchboard.test>
Content-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f60718"

--000000000000a1b2c3d4e5f60718
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

And on Sundays? We would come with the whole team.

On Tue, Mar 4, 2025 at 10:15=E2=80=AFAM Switchboard Support <support@switch=
board.test> wrote:

> We are open Monday to Friday, 9 to 18.
>
> (Reply with the number of your choice.)
>

--000000000000a1b2c3d4e5f60718
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

<div dir=3D"ltr">And on Sundays? We would come with the whole team.</div><b=
r><div class=3D"gmail_quote"><div dir=3D"ltr" class=3D"gmail_attr">On Tue, =
Mar 4, 2025 at 10:15=E2=80=AFAM Switchboard Support &lt;<a href=3D"mailto:s=
upport@switchboard.test">support@switchboard.test</a>&gt; wrote:<br></div><=
blockquote class=3D"gmail_quote" style=3D"margin:0px 0px 0px 0.8ex">We are =
open Monday to Friday, 9 to 18.</blockquote></div>

--000000000000a1b2c3d4e5f60718--
`);

/** Outlook for Windows: the reply above a rule and a From/Sent/To/Subject block, a typed signature. */
const OUTLOOK_REPLY = crlf(`From: "Smith, Bob" <Bob.Smith@contoso.com>
To: Switchboard Support <support@switchboard.test>
Subject: RE: Your order 4711
Thread-Topic: Your order 4711
Thread-Index: AQHZjK2xR2m5Qb8a3UqB9k1nV7yXvA==
Date: Tue, 4 Mar 2025 10:31:09 +0000
Message-ID: <AM0PR07MB6211A0B1C2D3E4F5A6B7C8D9E0F1A@AM0PR07MB6211.eurprd07.prod.outlook.com>
References: <order.4711@shop.example> <sb.77aa.5@switchboard.test>
In-Reply-To: <sb.77aa.5@switchboard.test>
Accept-Language: en-GB, en-US
Content-Language: en-GB
X-MS-Has-Attach: yes
Content-Type: multipart/mixed; boundary="_004_AM0PR07MB6211_"
MIME-Version: 1.0

--_004_AM0PR07MB6211_
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

Please send it to the new address attached.

Kind regards
Bob

________________________________
From: Switchboard Support <support@switchboard.test>
Sent: Tuesday, March 4, 2025 10:15 AM
To: Smith, Bob <Bob.Smith@contoso.com>
Subject: Re: Your order 4711

Your order 4711 ships tomorrow. Where should it go?

--_004_AM0PR07MB6211_
Content-Type: application/pdf; name="new-address.pdf"
Content-Description: new-address.pdf
Content-Disposition: attachment; filename="new-address.pdf"; size=19
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcOkw7zDtsOfCg==

--_004_AM0PR07MB6211_--
`);

/** Apple Mail on an iPhone: the answer, the device line, then the quote under "On … wrote:". */
const APPLE_MAIL_REPLY = crlf(`Content-Type: text/plain;
	charset=utf-8
Content-Transfer-Encoding: quoted-printable
Mime-Version: 1.0 (1.0)
Subject: Re: Question
Date: Tue, 4 Mar 2025 10:20:11 +0100
Message-Id: <4F6B1C2D-9E8A-4B7C-A1D2-3E4F5A6B7C8D@icloud.com>
References: <menu.1@example.org> <sb.aa.2@switchboard.test>
In-Reply-To: <sb.aa.2@switchboard.test>
To: Switchboard Support <support@switchboard.test>
From: Dave <dave@icloud.com>
X-Mailer: iPhone Mail (21D61)

2

Sent from my iPhone

> On 4 Mar 2025, at 10:15, Switchboard Support <support@switchboard.test> wro=
te:
>=20
> =EF=BB=BFWhat do you need?
> 1. Prices and plans
> 2. Help with an order
`);

/** An HTML-only mail (a webmail): the text comes from the HTML, the blockquote is the quote. */
const HTML_ONLY = crlf(`From: erin@webmail.example
To: support@switchboard.test
Subject: Re: Hello
Message-ID: <html.only.1@webmail.example>
In-Reply-To: <sb.x.1@switchboard.test>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><body><p>Yes, <b>Thursday</b> works for me.</p>
<p>On Tue, Mar 4, 2025 Switchboard Support wrote:</p>
<blockquote>Does Thursday work?</blockquote></body></html>
`);

describe('visible reply text', () => {
  it('keeps what the person wrote in a Gmail reply', async () => {
    const m = await parseEmail(GMAIL_REPLY, ours, MAX_TEXT_BYTES);
    expect(m.text).toBe('And on Sundays? We would come with the whole team.');
    expect(m.fullText).toContain('We are open Monday to Friday');
  });

  it('cuts an Outlook reply at its From/Sent header block, and the sign-off above it', async () => {
    const m = await parseEmail(OUTLOOK_REPLY, ours, MAX_TEXT_BYTES);
    expect(m.text).toBe('Please send it to the new address attached.');
  });

  it('cuts Apple Mail’s device line and quote', async () => {
    const m = await parseEmail(APPLE_MAIL_REPLY, ours, MAX_TEXT_BYTES);
    expect(m.text).toBe('2');
  });

  it('turns an HTML-only mail into text without its blockquote', async () => {
    const m = await parseEmail(HTML_ONLY, ours, MAX_TEXT_BYTES);
    expect(m.text).toBe('Yes, Thursday works for me.');
  });

  it('removes a signature after "-- " and Outlook’s older "Original Message" separator', () => {
    expect(visibleReplyText('Where is my parcel?\n\n-- \nAlice Example\n+49 30 1234567\n')).toBe(
      'Where is my parcel?',
    );
    expect(
      visibleReplyText(
        'Fine by me.\n\n-----Original Message-----\nFrom: Switchboard Support <support@switchboard.test>\nSent: Tuesday, March 4, 2025 10:15 AM\nTo: Bob\nSubject: RE: Plan\n\nWhich plan?',
      ),
    ).toBe('Fine by me.');
  });

  it('removes a quote header that Gmail wrapped over two lines, in German too', () => {
    expect(
      visibleReplyText(
        'Ja, bitte.\n\nAm Di., 4. März 2025 um 10:15 Uhr schrieb Switchboard Support <\nsupport@switchboard.test>:\n\n> Hallo Alice,\n> wann passt es?\n',
      ),
    ).toBe('Ja, bitte.');
    expect(
      visibleReplyText(
        'Yes please.\n\nOn Tue, Mar 4, 2025 at 10:15 AM Switchboard Support Team of ACME <\nsupport@switchboard.test> wrote:\n\n> Shall we?\n',
      ),
    ).toBe('Yes please.');
  });

  it('keeps a message that only mentions writing', () => {
    expect(visibleReplyText('On Monday I wrote: "please call me".\nStill waiting.')).toBe(
      'On Monday I wrote: "please call me".\nStill waiting.',
    );
  });

  it('reads a long line of quote-header verbs without a colon once, and keeps it', () => {
    // Each verb followed by `.*:` made the header test go back over the rest of the line: a
    // 1.2 MB line took minutes. The person's text is all there is to keep.
    const line = `On ${'wrote '.repeat(200_000)}`;
    expect(visibleReplyText(`Hello\n${line}\n\nbye\n`)).toBe(`Hello\n${line.trimEnd()}\n\nbye`);
  });

  it('still cuts a wrapped quote header after many lines that look like one', () => {
    const lookalikes = 'On Monday I wrote to you\nso\n'.repeat(2_000);
    expect(
      visibleReplyText(
        `${lookalikes}Yes.\n\nOn Tue, Mar 4, 2025 at 10:15 AM Support <\nsupport@switchboard.test> wrote:\n\n> Shall we?\n`,
      ),
    ).toBe(`${lookalikes}Yes.`);
  });
});

describe('parsed mail', () => {
  it('gives the reply cutter REPLY_CUT_TIMEOUT_MS, then hands on the whole text', async () => {
    // The reply parser's expressions backtrack on these for minutes (blank lines: about 100 s).
    const crafted = [`Hello\n${'\n'.repeat(60_000)}bye`, `Hello\nx on ${'on at '.repeat(2_000)}`];
    for (const body of crafted) {
      const m = await parseEmail(
        crlf(`From: ana@example.org\nTo: support@switchboard.test\nSubject: Hi\n\n${body}\n`),
        ours,
        MAX_TEXT_BYTES,
      );
      expect(m.replyCutTimedOut).toBe(true);
      expect(m.text).toBe(m.fullText.replace(/\n{3,}/g, '\n\n'));
    }
    // Stopped midway, the parser is whole for the next mail.
    const next = await parseEmail(GMAIL_REPLY, ours, MAX_TEXT_BYTES);
    expect(next.text).toBe('And on Sundays? We would come with the whole team.');
    expect(next.replyCutTimedOut).toBeUndefined();
  });

  it('cuts within the time a mail as the reply parser alone would', () => {
    const text =
      'Yes please.\n\nOn Tue, Mar 4, 2025 at 10:15 AM Support <\nsupport@switchboard.test> wrote:\n\n> Shall we?\n';
    expect(visibleReplyTextWithin(text, REPLY_CUT_TIMEOUT_MS)).toEqual({
      text: visibleReplyText(text),
      timedOut: false,
    });
  });

  it('hands the reply cutter REPLY_CUT_TEXT_FACTOR × MAX_TEXT_BYTES of a longer body', async () => {
    const answer = 'Here is the whole log you asked for.';
    const log = 'x'.repeat(REPLY_CUT_TEXT_FACTOR * 100 + 500);
    const m = await parseEmail(
      crlf(`From: ana@example.org\nTo: support@switchboard.test\nSubject: Log\n\n${answer}\n${log}\n\nbye\n`),
      ours,
      100,
    );
    expect(m.text).toBe(`${answer}\n${log}`.slice(0, REPLY_CUT_TEXT_FACTOR * 100));
    expect(m.fullText).toBe(`${answer}\n${log}\n\nbye`);
  });

  it('gives ids without brackets, the sender lower-cased, the thread root and attachments', async () => {
    const m = await parseEmail(OUTLOOK_REPLY, ours, MAX_TEXT_BYTES);
    expect(m.messageId).toBe(
      'AM0PR07MB6211A0B1C2D3E4F5A6B7C8D9E0F1A@AM0PR07MB6211.eurprd07.prod.outlook.com',
    );
    expect(m.inReplyTo).toBe('sb.77aa.5@switchboard.test');
    expect(m.references).toEqual(['order.4711@shop.example', 'sb.77aa.5@switchboard.test']);
    expect(threadRoot(m)).toBe('order.4711@shop.example');
    expect(m.from).toEqual({ address: 'bob.smith@contoso.com', name: 'Smith, Bob' });
    expect(m.fromAll).toEqual([m.from]);
    expect(m.replyTo).toBeUndefined();
    expect(m.authenticationResults).toEqual([]);
    expect(m.subject).toBe('RE: Your order 4711');
    expect(m.attachments).toHaveLength(1);
    expect(m.attachments[0]).toMatchObject({
      filename: 'new-address.pdf',
      contentType: 'application/pdf',
      size: 19,
      inline: false,
    });
    expect(m.noReply).toBeUndefined();
  });

  it('reads Reply-To apart from From, and makes a stable id for a mail without one', async () => {
    const raw = crlf(
      'From: Newsroom <news@example.org>\nReply-To: Desk <Desk@Example.org>\nTo: support@switchboard.test\nSubject: Hi\n\nA question.\n',
    );
    const a = await parseEmail(raw, ours, MAX_TEXT_BYTES);
    const b = await parseEmail(raw, ours, MAX_TEXT_BYTES);
    expect(a.from).toEqual({ address: 'news@example.org', name: 'Newsroom' });
    expect(a.replyTo).toEqual({ address: 'desk@example.org', name: 'Desk' });
    expect(a.messageId).toMatch(/^sha256-[0-9a-f]{64}@missing-message-id\.invalid$/);
    expect(b.messageId).toBe(a.messageId);
    expect(threadRoot(a)).toBe(a.messageId);
  });
});

describe('mail that must not be answered', () => {
  const headers = (lines: string) =>
    crlf(`From: Someone <someone@example.org>
To: support@switchboard.test
Subject: Re: Your question
Message-ID: <x.${Math.random()}@example.org>
${lines}
Content-Type: text/plain

Body.
`);

  it('recognises a vacation auto-reply (Auto-Submitted: auto-replied)', async () => {
    const m = await parseEmail(
      headers('Auto-Submitted: auto-replied\nX-Autoreply: yes\nPrecedence: bulk'),
      ours,
      MAX_TEXT_BYTES,
    );
    expect(m.noReply).toBe('auto-submitted');
  });

  it('recognises an Exchange automatic reply and generated notices', async () => {
    expect(
      (
        await parseEmail(
          headers('Auto-Submitted: auto-generated\nX-Auto-Response-Suppress: All'),
          ours,
          MAX_TEXT_BYTES,
        )
      ).noReply,
    ).toBe('auto-submitted');
    expect((await parseEmail(headers('X-Autorespond: Out of office'), ours, MAX_TEXT_BYTES)).noReply).toBe(
      'auto-reply-header',
    );
  });

  it('answers a person even when the header says Auto-Submitted: no', async () => {
    expect((await parseEmail(headers('Auto-Submitted: no'), ours, MAX_TEXT_BYTES)).noReply).toBeUndefined();
  });

  it('recognises bulk, junk and list mail', async () => {
    expect((await parseEmail(headers('Precedence: junk'), ours, MAX_TEXT_BYTES)).noReply).toBe('precedence');
    expect((await parseEmail(headers('Precedence: list'), ours, MAX_TEXT_BYTES)).noReply).toBe('precedence');
    expect(
      (await parseEmail(headers('List-Id: Users <users.lists.example.org>'), ours, MAX_TEXT_BYTES)).noReply,
    ).toBe('mailing-list');
  });

  it('recognises newsletters and ESP mail marked only with List-Unsubscribe (RFC 2369, RFC 8058)', async () => {
    // A shop's newsletter sent through SendGrid: one-click unsubscribe, no List-Id, no Precedence.
    const newsletter = crlf(`Return-Path: <bounces+31807542-7f3a-support=switchboard.test@em4821.shop.example>
Received: from o1.ptr4821.shop.example (o1.ptr4821.shop.example [149.72.123.45])
	by mx.switchboard.test (Postfix) with ESMTPS id 4Tq8Zx1Yb2z9t
	for <support@switchboard.test>; Tue,  4 Mar 2025 09:00:03 +0000 (UTC)
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=shop.example; h=content-type:from:mime-version:subject:list-unsubscribe:list-unsubscribe-post:to; s=s1; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=Qm9ndXM=
Date: Tue, 04 Mar 2025 09:00:02 +0000 (UTC)
From: Example Shop <news@shop.example>
Mime-Version: 1.0
Message-ID: <mC7Xq2aKQ4uA1v3bN9sL8w@geopod-ismtpd-5>
Subject: Spring sale: 30% off everything
To: support@switchboard.test
List-Unsubscribe: <https://u31807542.ct.sendgrid.net/lu/unsubscribe?oc=u001.b2Xz>, <mailto:unsubscribe@shop.example?subject=unsubscribe>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
X-SG-EID: u001.mD9sVb3lZ2k
X-Entity-ID: u001.YkX4Hc0Ms2q9
Content-Type: text/plain; charset=utf-8

Spring sale! 30% off everything until Sunday.
`);
    expect((await parseEmail(newsletter, ours, MAX_TEXT_BYTES)).noReply).toBe('list-unsubscribe');
    // A CRM's mailing with the RFC 2369 header alone.
    const crm = crlf(`Return-Path: <mailer@crm.example.net>
Date: Tue, 4 Mar 2025 10:30:00 +0100
From: "Acme Events" <events@acme.example>
To: support@switchboard.test
Subject: Your invitation to the Acme summit
Message-ID: <20250304093000.12345.events@crm.example.net>
List-Unsubscribe: <mailto:leave-12345@crm.example.net>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

You are invited.
`);
    expect((await parseEmail(crm, ours, MAX_TEXT_BYTES)).noReply).toBe('list-unsubscribe');
    expect(
      (await parseEmail(headers('List-Unsubscribe-Post: List-Unsubscribe=One-Click'), ours, MAX_TEXT_BYTES))
        .noReply,
    ).toBe('list-unsubscribe');
  });

  it('recognises no-reply senders (noreply@, no-reply@, do-not-reply@, with suffixes)', async () => {
    // AWS's billing notice: no Auto-Submitted, no list headers, only the sender says it.
    const aws =
      crlf(`Return-Path: <0100018e0a1b2c3d-4e5f6a7b-8c9d-0e1f-2a3b-4c5d6e7f8a9b-000000@amazonses.com>
Date: Tue, 4 Mar 2025 08:12:45 +0000
From: Amazon Web Services <no-reply-aws@amazon.com>
To: support@switchboard.test
Message-ID: <0100018e0a1b2c3d-4e5f6a7b-8c9d-0e1f-2a3b-4c5d6e7f8a9b-000000@email.amazonses.com>
Subject: AWS Notification - Your invoice is available
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 7bit

Your invoice for February 2025 is available.
`);
    expect((await parseEmail(aws, ours, MAX_TEXT_BYTES)).noReply).toBe('no-reply-address');
    const from = async (address: string) =>
      (
        await parseEmail(
          crlf(
            `From: Sender <${address}>\nTo: support@switchboard.test\nSubject: Receipt\nMessage-ID: <r.${address}>\n\nThanks.\n`,
          ),
          ours,
          MAX_TEXT_BYTES,
        )
      ).noReply;
    for (const address of [
      'noreply@github.com',
      'No-Reply@accounts.example.com',
      'no_reply@bank.example',
      'do-not-reply@tickets.example',
      'DoNotReply@3c1b5d2e.azurecomm.net',
      'noreply+ab12cd@shop.example',
      'noreply-dmarc-support@google.com',
    ])
      expect(await from(address), address).toBe('no-reply-address');
    // People whose address merely looks close are answered.
    for (const address of [
      'noreen@example.org',
      'reply@example.org',
      'nora.reply@example.org',
      'replies@example.org',
    ])
      expect(await from(address), address).toBeUndefined();
    // A display name alone says nothing.
    expect(
      (
        await parseEmail(
          crlf('From: "No Reply" <alice@example.org>\nSubject: x\nMessage-ID: <dn@example.org>\n\nx\n'),
          ours,
          MAX_TEXT_BYTES,
        )
      ).noReply,
    ).toBeUndefined();
  });

  it('recognises a Postfix bounce, a postmaster notice and a null return path', async () => {
    const bounce = crlf(`Return-Path: <>
Date: Tue,  4 Mar 2025 10:15:02 +0100 (CET)
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: support@switchboard.test
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4F1A2B3C4D.1709543702/mx.example.org"
Message-Id: <20250304091502.5E6F7A8B9C@mx.example.org>

This is a MIME-encapsulated message.

--4F1A2B3C4D.1709543702/mx.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--4F1A2B3C4D.1709543702/mx.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1

--4F1A2B3C4D.1709543702/mx.example.org--
`);
    // Auto-Submitted is checked first; without it the report type and the sender still tell.
    expect((await parseEmail(bounce, ours, MAX_TEXT_BYTES)).noReply).toBe('auto-submitted');
    const stripped = Buffer.from(bounce.toString().replace('Auto-Submitted: auto-replied\r\n', ''));
    expect((await parseEmail(stripped, ours, MAX_TEXT_BYTES)).noReply).toBe('bounce');
    const plain = Buffer.from(
      stripped
        .toString()
        .replace(/Content-Type: multipart\/report[^\r]*\r\n\t[^\r]*/, 'Content-Type: text/plain'),
    );
    expect((await parseEmail(plain, ours, MAX_TEXT_BYTES)).noReply).toBe('mailer-daemon');
    expect(
      (
        await parseEmail(
          crlf('Return-Path: <>\nFrom: robot@example.org\nMessage-ID: <n@example.org>\nSubject: x\n\nx\n'),
          ours,
          MAX_TEXT_BYTES,
        )
      ).noReply,
    ).toBe('null-return-path');
    expect(
      (
        await parseEmail(
          crlf('From: Postmaster <postmaster@example.org>\nSubject: x\n\nx\n'),
          ours,
          MAX_TEXT_BYTES,
        )
      ).noReply,
    ).toBe('mailer-daemon');
  });

  it('recognises our own mail by its From and by the domain of its Message-ID', async () => {
    expect(
      (
        await parseEmail(
          crlf('From: Support <SUPPORT@switchboard.test>\nMessage-ID: <a@b.example>\n\nx\n'),
          ours,
          MAX_TEXT_BYTES,
        )
      ).noReply,
    ).toBe('own-message');
    expect(
      (
        await parseEmail(
          crlf('From: x@example.org\nMessage-ID: <sb.1.2@switchboard.test>\n\nx\n'),
          ours,
          MAX_TEXT_BYTES,
        )
      ).noReply,
    ).toBe('own-message');
    // Apple Mail and Thunderbird use the sender's domain in their Message-IDs: a colleague is not us.
    expect(
      (
        await parseEmail(
          crlf('From: colleague@switchboard.test\nMessage-ID: <4F6B1C2D-9E8A-4B7C@switchboard.test>\n\nx\n'),
          ours,
          MAX_TEXT_BYTES,
        )
      ).noReply,
    ).toBeUndefined();
  });
});

describe('threading', () => {
  it('reads Message-ID lists in any spacing, without brackets', () => {
    expect(messageIdList('<a@x>\r\n\t<b@y> <c@z>')).toEqual(['a@x', 'b@y', 'c@z']);
    expect(messageIdList(['<a@x>', '<b@y>'])).toEqual(['a@x', 'b@y']);
    expect(messageIdList('a@x')).toEqual(['a@x']);
    expect(messageIdList(undefined)).toEqual([]);
    expect(normalizeMessageId(' <abc@host> ')).toBe('abc@host');
    expect(normalizeMessageId('<>')).toBeUndefined();
    expect(normalizeMessageId(`<${'x'.repeat(400)}@host>`)).toMatch(/^sha256-[0-9a-f]{64}@hashed\.invalid$/);
  });

  it('takes the first reference as the root, else In-Reply-To, else the mail itself', () => {
    expect(threadRoot({ messageId: 'm', references: ['r1', 'r2'], inReplyTo: 'r2' })).toBe('r1');
    expect(threadRoot({ messageId: 'm', references: [], inReplyTo: 'p' })).toBe('p');
    expect(threadRoot({ messageId: 'm', references: [] })).toBe('m');
  });

  it('puts exactly one "Re: " before the subject', () => {
    expect(replySubject('Opening hours')).toBe('Re: Opening hours');
    expect(replySubject('Re: Opening hours')).toBe('Re: Opening hours');
    expect(replySubject('RE: Re: re:Opening hours')).toBe('Re: Opening hours');
    expect(replySubject('AW: Re[2]: SV: Angebot')).toBe('Re: Angebot');
    expect(replySubject('Fwd: Invoice')).toBe('Re: Fwd: Invoice');
    expect(replySubject('Return policy')).toBe('Re: Return policy');
    expect(replySubject('')).toBe('Re:');
    expect(replySubject(undefined)).toBe('Re:');
  });

  it('keeps the root and the latest references when a thread grows long', () => {
    const references = Array.from({ length: 30 }, (_, i) => `m${i}@x`);
    const out = replyReferences({ messageId: 'last@x', references });
    expect(out).toHaveLength(MAX_REFERENCES);
    expect(out[0]).toBe('m0@x');
    expect(out.at(-1)).toBe('last@x');
    expect(out.at(-2)).toBe('m29@x');
  });
});

describe('numbered choices', () => {
  const offered = [{ text: 'Prices and plans', value: 'pricing' }, { text: 'Help with an order' }];

  it('renders them as a numbered list', () => {
    expect(renderSuggestions(offered)).toBe(
      '1. Prices and plans\n2. Help with an order\n\n(Reply with the number of your choice.)',
    );
    expect(renderSuggestions([])).toBe('');
  });

  it('maps "2", "2.", "#1" and " 1) " back to the choice, and nothing else', () => {
    expect(chosenSuggestion('2', offered)?.suggestion).toEqual({ text: 'Help with an order' });
    expect(chosenSuggestion('2.', offered)?.index).toBe(1);
    expect(chosenSuggestion('#1', offered)?.suggestion.value).toBe('pricing');
    expect(chosenSuggestion(' 1) ', offered)?.index).toBe(0);
    expect(chosenSuggestion('3', offered)).toBeUndefined();
    expect(chosenSuggestion('0', offered)).toBeUndefined();
    expect(chosenSuggestion('2 please', offered)).toBeUndefined();
    expect(chosenSuggestion('two', offered)).toBeUndefined();
  });
});

describe('composed reply', () => {
  const replyTo: EmailReplyTo = {
    messageId: 'second@example.org',
    references: ['first@example.org', 'sb.s1.2@switchboard.test'],
    subject: 'RE: Re: Opening hours',
    to: { address: 'alice@example.org', name: 'Alice' },
    mailbox: 'INBOX',
    bot: 'default',
    envelopeId: 'email:second@example.org',
  };

  it('joins the replies of a turn, numbers the choices, and threads under the answered mail', () => {
    const { mail, messageId, suggestions } = composeReply({
      replies: [
        { seq: 7, text: 'Thanks for asking.', payload: {} },
        {
          seq: 8,
          text: 'What else?',
          payload: {
            suggestions: [{ text: 'Prices', value: 'pricing' }, { text: 'Hours' }],
            attachments: [{ type: 'application/pdf', name: 'Hours', url: 'https://example.org/hours.pdf' }],
          },
        },
      ],
      replyTo,
      from: { address: 'support@switchboard.test', name: 'Support' },
      messageIdDomain: 'switchboard.test',
      sessionId: 's1',
    });
    expect(messageId).toBe('sb.s1.7@switchboard.test');
    expect(mail.messageId).toBe('<sb.s1.7@switchboard.test>');
    expect(mail.inReplyTo).toBe('<second@example.org>');
    expect(mail.references).toEqual([
      '<first@example.org>',
      '<sb.s1.2@switchboard.test>',
      '<second@example.org>',
    ]);
    expect(mail.subject).toBe('Re: Opening hours');
    expect(mail.to).toEqual({ address: 'alice@example.org', name: 'Alice' });
    expect(mail.headers).toEqual(LOOP_GUARD_HEADERS);
    expect(mail.text).toBe(
      'Thanks for asking.\n\nWhat else?\nHours: https://example.org/hours.pdf\n\n1. Prices\n2. Hours\n\n(Reply with the number of your choice.)\n',
    );
    expect(suggestions).toEqual([{ text: 'Prices', value: 'pricing' }, { text: 'Hours' }]);
  });
});
