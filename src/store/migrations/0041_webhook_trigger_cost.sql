-- Event webhooks (issue 26): what the triggers of 0026 cost a bot that has no endpoint for the event.
-- `webhook_on_message` ran for every message of every bot as soon as any endpoint existed anywhere:
-- a session lookup, the event's data built (with the message text) and an INSERT ... SELECT that
-- found no endpoint. Now each trigger first asks whether an endpoint takes this event type at all
-- (webhook_endpoints is a handful of rows, usually none), then whether one of this bot does, and
-- builds nothing otherwise. A message of a bot without subscribed endpoints costs the trigger's
-- call, one look at webhook_endpoints and, only when another bot subscribes to the type, the
-- session's primary-key lookup (the row the insert's foreign-key check has just read).

CREATE OR REPLACE FUNCTION webhook_on_message() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  e_type text;
  s_bot text;
  s_channel text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    e_type := CASE WHEN NEW.role = 'user' THEN 'message.received' ELSE 'message.sent' END;
  ELSE
    e_type := CASE WHEN NEW.delivery_status = 'failed' THEN 'message.failed' ELSE 'message.delivered' END;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE e_type = ANY (events)) THEN RETURN NULL; END IF;
  SELECT s.bot, s.channel INTO s_bot, s_channel FROM sessions s
  WHERE s.id = NEW.session_id
    AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.bot = s.bot AND e_type = ANY (e.events));
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM webhook_emit(s_bot, NEW.session_id, e_type,
      jsonb_build_object('channel', s_channel, 'seq', NEW.seq, 'role', NEW.role, 'text', NEW.content,
        'envelope_id', NEW.envelope_id, 'in_reply_to', NEW.in_reply_to));
  ELSE
    PERFORM webhook_emit(s_bot, NEW.session_id, e_type,
      jsonb_build_object('channel', s_channel, 'seq', NEW.seq, 'status', NEW.delivery_status,
        'error', NEW.delivery_error));
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION webhook_on_session() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  e_type text := CASE WHEN TG_OP = 'INSERT' THEN 'session.started' ELSE 'session.ended' END;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE bot = NEW.bot AND e_type = ANY (events)) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM webhook_emit(NEW.bot, NEW.id, e_type,
      jsonb_build_object('channel', NEW.channel, 'parent_session_id', NEW.parent_id));
  ELSE
    PERFORM webhook_emit(NEW.bot, NEW.id, e_type,
      jsonb_build_object('channel', NEW.channel, 'reason', NEW.end_reason, 'message_count', NEW.message_count));
  END IF;
  RETURN NULL;
END $$;

-- Handoffs: a handoff opened straight to an agent (TRANSFER SESSION to a named agent) is inserted
-- already assigned; 0026 reported only `handoff.requested` for it. Now it is requested, then assigned.
CREATE OR REPLACE FUNCTION webhook_on_handoff() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE bot = NEW.bot AND events && ARRAY[
    'handoff.requested', 'handoff.assigned', 'handoff.transferred', 'handoff.ended']) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM webhook_emit(NEW.bot, NEW.session_id, 'handoff.requested',
      jsonb_build_object('handoff_id', NEW.id, 'queue', NEW.queue));
    IF NEW.state = 'assigned' THEN
      PERFORM webhook_emit(NEW.bot, NEW.session_id, 'handoff.assigned',
        jsonb_build_object('handoff_id', NEW.id, 'agent_id', NEW.agent_id));
    END IF;
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
