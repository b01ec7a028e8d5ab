-- Event webhooks (issue 26): the message and session triggers ask their question in the trigger's
-- WHEN clause, before any PL/pgSQL runs. A row trigger whose WHEN is false is not even queued, so
-- while no endpoint subscribes to the event type (no endpoint at all, the usual case) a message
-- insert pays one look at the (empty or tiny) webhook_endpoints table, about a third of what
-- calling the trigger function cost (`npm run bench -- webhooks`). The functions of 0041 still
-- check the bot, so a bot without a subscribed endpoint writes and builds nothing.

-- Does any endpoint take this event type? Does one of this bot?
CREATE FUNCTION webhook_wanted(p_type text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE p_type = ANY (events))
$$;
CREATE FUNCTION webhook_wanted_by(p_bot text, p_type text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE bot = p_bot AND p_type = ANY (events))
$$;

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
  -- Here only when some endpoint takes e_type (the WHEN clause); is it one of this session's bot?
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

DROP TRIGGER messages_webhook_recorded ON messages;
CREATE TRIGGER messages_webhook_recorded AFTER INSERT ON messages
  FOR EACH ROW WHEN (
    NEW.role IN ('user', 'assistant', 'agent')
    AND webhook_wanted(CASE WHEN NEW.role = 'user' THEN 'message.received' ELSE 'message.sent' END)
  ) EXECUTE FUNCTION webhook_on_message();
DROP TRIGGER messages_webhook_status ON messages;
CREATE TRIGGER messages_webhook_status AFTER UPDATE OF delivery_status ON messages
  FOR EACH ROW WHEN (
    ((NEW.delivery_status = 'failed' AND OLD.delivery_status <> 'failed')
      OR (NEW.delivery_status IN ('delivered', 'read') AND OLD.delivery_status NOT IN ('delivered', 'read')))
    AND webhook_wanted(CASE WHEN NEW.delivery_status = 'failed' THEN 'message.failed' ELSE 'message.delivered' END)
  ) EXECUTE FUNCTION webhook_on_message();

DROP TRIGGER sessions_webhook_started ON sessions;
CREATE TRIGGER sessions_webhook_started AFTER INSERT ON sessions
  FOR EACH ROW WHEN (webhook_wanted_by(NEW.bot, 'session.started')) EXECUTE FUNCTION webhook_on_session();
DROP TRIGGER sessions_webhook_ended ON sessions;
CREATE TRIGGER sessions_webhook_ended AFTER UPDATE OF ended_at ON sessions
  FOR EACH ROW WHEN (
    OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL AND webhook_wanted_by(NEW.bot, 'session.ended')
  ) EXECUTE FUNCTION webhook_on_session();
