-- Mail the email channel could not handle (adapters/email): how often each one failed, why, and
-- whether it was set aside (flagged, moved to EMAIL_UNUSABLE_FOLDER when set) so that the mail
-- after it is read. A person looks here, and in the folder, for what the bot never answered.
CREATE TABLE email_failures (
  mailbox text NOT NULL,
  uid_validity bigint NOT NULL,
  uid bigint NOT NULL,
  -- Known once the mail parsed; null for mail that did not.
  message_id text,
  failures integer NOT NULL DEFAULT 0,
  reason text NOT NULL,
  set_aside_at timestamptz,
  -- The folder it was moved to, if any.
  moved_to text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mailbox, uid_validity, uid)
);
CREATE INDEX email_failures_set_aside ON email_failures (set_aside_at) WHERE set_aside_at IS NOT NULL;
