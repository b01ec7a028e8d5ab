-- Satisfaction ratings (issue 25): a `rating` session event (ASK RATING) is also the event webhook
-- `rating.received`, written in the same transaction as the event, like the others (0026).
CREATE FUNCTION webhook_on_rating() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.session_id IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE bot = NEW.bot) THEN RETURN NULL; END IF;
  PERFORM webhook_emit(NEW.bot, NEW.session_id, 'rating.received',
    jsonb_build_object('channel', NEW.channel, 'score', COALESCE(NEW.data->'score', NEW.data->'value')));
  RETURN NULL;
END $$;
CREATE TRIGGER session_events_webhook_rating AFTER INSERT ON session_events
  FOR EACH ROW WHEN (NEW.type = 'rating') EXECUTE FUNCTION webhook_on_rating();
