-- Replies that failed for a reason that passes (the platform did not answer, a 5xx, a 429, an SMTP
-- 4xx or a refused login) are retried against a time budget, DELIVERY_GIVE_UP_AFTER_SECONDS, not
-- a count of attempts (src/delivery/delivery.ts). Until 2026-12-07 every failure counted against
-- DELIVERY_ATTEMPTS (8), so an outage of ~45 s failed every reply in it for good.
-- `delivery_next_attempt_at`: when the reply's next attempt is due (its retry's backoff); NULL
-- when it is due now. The retry waits on the durable scheduler, holding no worker; the outbox
-- sweep takes up a reply whose retry is long overdue (its scheduler job was lost).
-- `delivery_queued_at`: when an operator put a failed reply back (`switchboard outbox replay`);
-- the budget runs from it, else from `created_at`.
-- Nullable without a default: no table rewrite on PostgreSQL, and runs unchanged on PGlite.
ALTER TABLE messages ADD COLUMN delivery_next_attempt_at timestamptz;
ALTER TABLE messages ADD COLUMN delivery_queued_at timestamptz;
