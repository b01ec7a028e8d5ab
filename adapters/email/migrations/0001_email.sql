-- The email channel (adapters/email): where each IMAP mailbox was read up to, and every mail
-- the channel saw or sent, by Message-ID.

-- One row per watched mailbox (account and folder). A UIDVALIDITY other than the stored one
-- means the server renumbered the folder: the adapter resynchronises, deduplicating on Message-ID.
CREATE TABLE email_mailboxes (
  mailbox text PRIMARY KEY,
  uid_validity bigint NOT NULL,
  -- Every UID up to this one has been handled (accepted, or skipped for a logged reason).
  last_uid bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE email_messages (
  -- The Message-ID without its angle brackets.
  message_id text PRIMARY KEY,
  direction text NOT NULL CHECK (direction IN ('in', 'out')),
  -- The conversation root this mail belongs to (the envelope's thread).
  thread text NOT NULL,
  -- In: the envelope it became; out: the envelope it answers.
  envelope_id text,
  -- In: where it was read, and what a reply needs; why it gets no answer, if so.
  mailbox text,
  uid_validity bigint,
  uid bigint,
  reply_to jsonb,
  no_reply text,
  -- Out: the session that sent it and the numbered choices it offered.
  session_id uuid,
  suggestions jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_messages_envelope ON email_messages (envelope_id) WHERE direction = 'in';
CREATE INDEX email_messages_session ON email_messages (session_id, created_at) WHERE direction = 'out';

-- Attachment bytes up to EMAIL_MAX_ATTACHMENT_BYTES, so that a bot in any process can read what
-- an envelope's attachment `ref` ('email-attachment:<id>') points to.
CREATE TABLE email_attachments (
  id uuid PRIMARY KEY,
  message_id text NOT NULL,
  filename text,
  content_type text NOT NULL,
  size integer NOT NULL,
  content bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_attachments_message ON email_attachments (message_id);
