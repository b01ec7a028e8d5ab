-- Event webhooks (issue 26). Events are written by triggers, so they commit in the same
-- transaction as the change they report (a turn, a delivery status, a handoff): the outbox
-- pattern, with no edit to the code paths that make those changes. A separate worker loop
-- delivers them; nothing here waits on a receiver.

-- The configured endpoints (from each bot's bot.json `webhooks`), written by every worker at start.
CREATE TABLE webhook_endpoints (
  endpoint text PRIMARY KEY,
  bot text NOT NULL,
  url text NOT NULL,
  events text[] NOT NULL
);
CREATE INDEX webhook_endpoints_bot ON webhook_endpoints (bot);

-- One row per event per endpoint. `id` orders a session's events; `event_id` is the event's id
-- in the body (the same for every endpoint), for receivers to deduplicate on.
CREATE TABLE webhook_outbox (
  id bigserial PRIMARY KEY,
  event_id uuid NOT NULL,
  endpoint text NOT NULL,
  bot text NOT NULL,
  session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  type text NOT NULL,
  data jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz,
  last_error text,
  done_at timestamptz,
  UNIQUE (endpoint, event_id)
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox (endpoint, session_id, id) WHERE state = 'pending';
CREATE INDEX webhook_outbox_dead ON webhook_outbox (done_at) WHERE state = 'dead';

-- Who is delivering a (endpoint, session) lane right now: one process at a time keeps the order.
CREATE TABLE webhook_lanes (
  endpoint text NOT NULL,
  session_id uuid NOT NULL,
  owner text NOT NULL,
  leased_until timestamptz NOT NULL,
  PRIMARY KEY (endpoint, session_id)
);

CREATE FUNCTION webhook_emit(p_bot text, p_session uuid, p_type text, p_data jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_outbox (event_id, endpoint, bot, session_id, type, data)
  SELECT gen_random_uuid_once.id, e.endpoint, p_bot, p_session, p_type, p_data
  FROM webhook_endpoints e, (SELECT gen_random_uuid() AS id) gen_random_uuid_once
  WHERE e.bot = p_bot AND p_type = ANY (e.events);
END $$;

CREATE FUNCTION webhook_on_session() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE bot = NEW.bot) THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM webhook_emit(NEW.bot, NEW.id, 'session.started',
      jsonb_build_object('channel', NEW.channel, 'parent_session_id', NEW.parent_id));
  ELSE
    PERFORM webhook_emit(NEW.bot, NEW.id, 'session.ended',
      jsonb_build_object('channel', NEW.channel, 'reason', NEW.end_reason, 'message_count', NEW.message_count));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER sessions_webhook_started AFTER INSERT ON sessions
  FOR EACH ROW EXECUTE FUNCTION webhook_on_session();
CREATE TRIGGER sessions_webhook_ended AFTER UPDATE OF ended_at ON sessions
  FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL) EXECUTE FUNCTION webhook_on_session();

CREATE FUNCTION webhook_on_message() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  s_bot text;
  s_channel text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints) THEN RETURN NULL; END IF;
  SELECT bot, channel INTO s_bot, s_channel FROM sessions WHERE id = NEW.session_id;
  IF TG_OP = 'INSERT' THEN
    PERFORM webhook_emit(s_bot, NEW.session_id,
      CASE WHEN NEW.role = 'user' THEN 'message.received' ELSE 'message.sent' END,
      jsonb_build_object('channel', s_channel, 'seq', NEW.seq, 'role', NEW.role, 'text', NEW.content,
        'envelope_id', NEW.envelope_id, 'in_reply_to', NEW.in_reply_to));
  ELSE
    PERFORM webhook_emit(s_bot, NEW.session_id,
      CASE WHEN NEW.delivery_status = 'failed' THEN 'message.failed' ELSE 'message.delivered' END,
      jsonb_build_object('channel', s_channel, 'seq', NEW.seq, 'status', NEW.delivery_status,
        'error', NEW.delivery_error));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER messages_webhook_recorded AFTER INSERT ON messages
  FOR EACH ROW WHEN (NEW.role IN ('user', 'assistant', 'agent')) EXECUTE FUNCTION webhook_on_message();
CREATE TRIGGER messages_webhook_status AFTER UPDATE OF delivery_status ON messages
  FOR EACH ROW WHEN (
    (NEW.delivery_status = 'failed' AND OLD.delivery_status <> 'failed')
    OR (NEW.delivery_status IN ('delivered', 'read') AND OLD.delivery_status NOT IN ('delivered', 'read'))
  ) EXECUTE FUNCTION webhook_on_message();

CREATE FUNCTION webhook_on_handoff() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE bot = NEW.bot) THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM webhook_emit(NEW.bot, NEW.session_id, 'handoff.requested',
      jsonb_build_object('handoff_id', NEW.id, 'queue', NEW.queue));
  ELSIF NEW.state = 'ended' AND OLD.state <> 'ended' THEN
    PERFORM webhook_emit(NEW.bot, NEW.session_id, 'handoff.ended',
      jsonb_build_object('handoff_id', NEW.id, 'reason', NEW.end_reason, 'agent_id', NEW.agent_id));
  ELSIF NEW.state = 'assigned' AND OLD.state = 'waiting' THEN
    PERFORM webhook_emit(NEW.bot, NEW.session_id, 'handoff.assigned',
      jsonb_build_object('handoff_id', NEW.id, 'agent_id', NEW.agent_id));
  ELSIF NEW.state = 'assigned' AND OLD.agent_id IS DISTINCT FROM NEW.agent_id THEN
    PERFORM webhook_emit(NEW.bot, NEW.session_id, 'handoff.transferred',
      jsonb_build_object('handoff_id', NEW.id, 'from_agent_id', OLD.agent_id, 'agent_id', NEW.agent_id));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER handoffs_webhook_requested AFTER INSERT ON handoffs
  FOR EACH ROW EXECUTE FUNCTION webhook_on_handoff();
CREATE TRIGGER handoffs_webhook_changed AFTER UPDATE OF state, agent_id ON handoffs
  FOR EACH ROW EXECUTE FUNCTION webhook_on_handoff();
