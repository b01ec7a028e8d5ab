-- webhook_emit_keyed (0040) with the event's id given by the caller, written at most once per
-- endpoint: an event that can be written again for the same fact (a broadcast's progress point,
-- re-written by a tick that ran again after a crash, or by a second runner) carries an id made
-- from that fact, so the second write changes nothing, and a receiver that saw it already would
-- know it by its id anyway.
CREATE FUNCTION webhook_emit_keyed_once(p_event_id uuid, p_bot text, p_key text, p_type text, p_data jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_outbox (event_id, endpoint, bot, ordering_key, type, data)
  SELECT p_event_id, e.endpoint, p_bot, p_key, p_type, p_data
  FROM webhook_endpoints e
  WHERE e.bot = p_bot AND p_type = ANY (e.events)
  ON CONFLICT (endpoint, event_id) DO NOTHING;
END $$;
