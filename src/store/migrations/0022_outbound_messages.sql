-- Messages an operator sends first (POST /api/admin/messages), and broadcasts. The history row the
-- message becomes has envelope_id 'outbound:operator:' || id; its delivery status is the message's.
CREATE TABLE outbound_messages (
  id uuid PRIMARY KEY,
  bot text NOT NULL,
  channel text NOT NULL,
  -- The session key's native part the message goes to (identity, and '#' + thread where one exists).
  native_key text NOT NULL,
  -- The open session it was meant for when it was accepted (web sessions, an existing conversation).
  session_id uuid,
  -- What the channel's adapter prepared for a conversation the message opens (address, reference).
  reply_to jsonb,
  text text NOT NULL,
  -- A template (WhatsApp Cloud) and an email subject, as given.
  template jsonb,
  subject text,
  -- queued: handed to the session's lane; scheduled: waits for send_at; cancelled: DELETE before send_at;
  -- failed: could not enter its session at send time (error says why).
  status text NOT NULL CHECK (status IN ('queued', 'scheduled', 'cancelled', 'failed')),
  error text,
  send_at timestamptz,
  broadcast_id uuid,
  -- The caller's idempotency key and a hash of its request: a replay answers as the first did.
  idempotency_key text UNIQUE,
  request_hash text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbound_messages_broadcast ON outbound_messages (broadcast_id) WHERE broadcast_id IS NOT NULL;
