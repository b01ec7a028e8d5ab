-- Broadcast runs (src/outbound/broadcasts.ts). A recipient row moves pending -> dispatching (claimed
-- by the run's current tick) -> queued (in its session's lane), or to failed / opted_out. A tick that
-- died leaves rows in 'dispatching': the next tick hands them to their lane again, where the
-- envelope id ('outbound:operator:' || id) makes a second hand-over a no-op.
ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_status_check;
ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_status_check
  CHECK (status IN ('pending', 'dispatching', 'queued', 'scheduled', 'cancelled', 'failed', 'opted_out'));
CREATE INDEX outbound_messages_broadcast_status ON outbound_messages (broadcast_id, status)
  WHERE broadcast_id IS NOT NULL;

-- What the broadcast was asked with (audience or recipients, kept for operators), its email
-- subject, and the caller's idempotency key with a hash of its request.
ALTER TABLE broadcasts ADD COLUMN subject text;
ALTER TABLE broadcasts ADD COLUMN audience jsonb;
ALTER TABLE broadcasts ADD COLUMN idempotency_key text UNIQUE;
ALTER TABLE broadcasts ADD COLUMN request_hash text;
