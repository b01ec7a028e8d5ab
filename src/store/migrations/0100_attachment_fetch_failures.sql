-- Inbound attachments a platform failed to hand over for a reason that may pass (a 5xx, a timeout):
-- how often the worker tried each queued message's files (src/files/fetch-attempts.ts). The message
-- is tried again by its lane until ATTACHMENT_RETRY_ATTEMPTS retries are spent, then goes on without
-- the file. A row is removed when the message goes through; one left behind (the message
-- dead-lettered for another reason) is pruned after a day. Any worker reads it: the count holds
-- whichever worker the lane's retry lands on.
CREATE TABLE attachment_fetch_failures (
  envelope_id text PRIMARY KEY,
  failures integer NOT NULL,
  last_error text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachment_fetch_failures_updated ON attachment_fetch_failures (updated_at);
