-- What a channel keeps in its keyed store (channel_values) no longer grows forever: a value may
-- belong to a session, and goes with it (removed with it by cascade: expiry, erasure; and, once
-- the session has ended, at the next expiry run), and may have an age bound (expires_at: not read
-- after it, removed by the expiry job). Until now only an erasure pruned WhatsApp's numbered
-- choices, and nothing pruned Telegram's long button values.
ALTER TABLE channel_values
  ADD COLUMN session_id uuid REFERENCES sessions (id) ON DELETE CASCADE,
  ADD COLUMN expires_at timestamptz;
CREATE INDEX channel_values_session ON channel_values (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX channel_values_expires ON channel_values (expires_at) WHERE expires_at IS NOT NULL;

-- The values stored before name no session. WhatsApp's numbered choices answer for a day
-- (adapters/whatsapp/choices.ts, CHOICES_TTL_MS); Telegram's long button values (by content, any
-- session's) now keep a week (adapters/telegram/outbound.ts, CALLBACK_VALUE_TTL_MS).
UPDATE channel_values SET expires_at = updated_at + interval '1 day'
  WHERE channel = 'whatsapp' AND starts_with(key, 'choices:');
UPDATE channel_values SET expires_at = updated_at + interval '7 days'
  WHERE channel = 'telegram' AND starts_with(key, 'callback:');
