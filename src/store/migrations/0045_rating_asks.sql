-- The hub's own rating ask at a conversation's end (bot setting `sessions.askRating`, issue 25).
-- The end turn writes the ask in its own transaction; until `open_until` passes, a message on the
-- same key (bot, channel, native_key) that is a rating answers it: the ended session gets its
-- `rating` event instead of a new session opening. One row per session; `answered_at` makes the
-- answer happen once (a second rating in the window starts a new conversation, as any message).
CREATE TABLE rating_asks (
  session_id uuid PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
  bot text NOT NULL,
  channel text NOT NULL,
  native_key text NOT NULL,
  asked_at timestamptz NOT NULL,
  open_until timestamptz NOT NULL,
  answered_at timestamptz,
  score smallint CHECK (score BETWEEN 1 AND 5)
);
-- The resolver's look-up for every message that finds no open session.
CREATE INDEX rating_asks_waiting ON rating_asks (bot, channel, native_key, open_until DESC) WHERE answered_at IS NULL;
