-- The people an erasure removed, by channel contact (src/store/erased-contacts.ts): a message
-- accepted for them before the erasure, still queued when it ran (a Redis lane, the embedded
-- queue's memory, a lane waiting in its retry backoff), is dropped when it comes to be processed
-- instead of making them a new user, identity and session from what they wrote before. A message
-- accepted after `erased_at` is a new contact as always. The contact is kept as the SHA-256 of
-- `channel` and the native id (a phone number, an address), never in clear; a row is pruned by
-- the expiry job a week after the erasure (ERASED_CONTACT_KEEP_MS), far beyond how long an
-- envelope waits in a lane. Runs unchanged on PostgreSQL and on the embedded PGlite.
CREATE TABLE erased_contacts (
  contact_digest bytea PRIMARY KEY,
  erased_at timestamptz NOT NULL
);
CREATE INDEX erased_contacts_erased_at ON erased_contacts (erased_at);
