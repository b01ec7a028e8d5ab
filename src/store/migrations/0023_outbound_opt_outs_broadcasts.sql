-- People who sent a bot's stop word on a channel: no broadcasts or operator messages there until they send a start word.
CREATE TABLE outbound_opt_outs (
  bot text NOT NULL,
  channel text NOT NULL,
  native_id text NOT NULL,
  opted_out_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bot, channel, native_id)
);

-- Broadcasts: one message to many; each recipient is an outbound_messages row (broadcast_id).
CREATE TABLE broadcasts (
  id uuid PRIMARY KEY,
  bot text NOT NULL,
  channel text NOT NULL,
  text text NOT NULL,
  template jsonb,
  rate_per_second real NOT NULL,
  total integer NOT NULL,
  opted_out integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
-- Broadcast recipients wait as 'pending' until the run hands them to their lane (once: the move is atomic).
ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_status_check;
ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_status_check
  CHECK (status IN ('pending', 'queued', 'scheduled', 'cancelled', 'failed'));
CREATE UNIQUE INDEX outbound_messages_recipient ON outbound_messages (broadcast_id, native_key) WHERE broadcast_id IS NOT NULL;
