-- Each channel's small keyed store (AdapterHost.store: get/set/delete): values by channel and key.
-- A channel's own tables come from its own migrations (adapters/<name>/migrations/), not from here.
CREATE TABLE channel_values (
  channel text NOT NULL,
  key text NOT NULL,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (channel, key)
);
