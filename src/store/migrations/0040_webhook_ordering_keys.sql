-- Event webhooks without a session (issue 26): the broadcast events. A session's events are
-- ordered per session per endpoint (0026); a session-less event carries an ordering key instead
-- ('broadcast:<id>'), and is ordered per key per endpoint. Both kinds share the outbox, the lanes
-- and the dispatcher: `lane` is the session id (as text) or the ordering key, never both, so a
-- broadcast's events never sit in, or wait behind, a session's lane.
ALTER TABLE webhook_outbox ALTER COLUMN session_id DROP NOT NULL;
ALTER TABLE webhook_outbox ADD COLUMN ordering_key text;
ALTER TABLE webhook_outbox ADD CONSTRAINT webhook_outbox_one_lane
  CHECK ((session_id IS NULL) <> (ordering_key IS NULL));
ALTER TABLE webhook_outbox ADD COLUMN lane text
  GENERATED ALWAYS AS (COALESCE(session_id::text, ordering_key)) STORED;
DROP INDEX webhook_outbox_pending;
CREATE INDEX webhook_outbox_pending ON webhook_outbox (endpoint, lane, id) WHERE state = 'pending';

-- Leases are per lane now (a session id as text, or an ordering key).
ALTER TABLE webhook_lanes ALTER COLUMN session_id TYPE text USING session_id::text;
ALTER TABLE webhook_lanes RENAME COLUMN session_id TO lane;

-- webhook_emit (0026) for an event without a session, ordered by `p_key`.
CREATE FUNCTION webhook_emit_keyed(p_bot text, p_key text, p_type text, p_data jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_outbox (event_id, endpoint, bot, ordering_key, type, data)
  SELECT ev.id, e.endpoint, p_bot, p_key, p_type, p_data
  FROM webhook_endpoints e, (SELECT gen_random_uuid() AS id) ev
  WHERE e.bot = p_bot AND p_type = ANY (e.events);
END $$;

-- Broadcasts: when the run found no recipient left to watch (every one sent, delivered, failed or
-- opted out), and the `broadcast.completed` event went out (once: set with the event).
ALTER TABLE broadcasts ADD COLUMN completed_at timestamptz;

CREATE FUNCTION webhook_broadcast_data(b broadcasts) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('broadcast_id', b.id, 'channel', b.channel, 'total', b.total,
    'opted_out', b.opted_out, 'rate_per_second', b.rate_per_second)
$$;

-- `broadcast.started`: at the commit of the transaction that accepted it (a deferred trigger, so
-- it reads the row as committed, with its recipients counted), and `broadcast.dispatched` when
-- every recipient has been handed to their session's lane (or set aside).
CREATE FUNCTION webhook_on_broadcast() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  b broadcasts;
  e_type text := CASE WHEN TG_OP = 'INSERT' THEN 'broadcast.started' ELSE 'broadcast.dispatched' END;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE bot = NEW.bot AND e_type = ANY (events)) THEN
    RETURN NULL;
  END IF;
  SELECT * INTO b FROM broadcasts WHERE id = NEW.id;
  IF NOT FOUND THEN RETURN NULL; END IF;
  PERFORM webhook_emit_keyed(b.bot, 'broadcast:' || b.id, e_type, webhook_broadcast_data(b));
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER broadcasts_webhook_started AFTER INSERT ON broadcasts
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION webhook_on_broadcast();
CREATE TRIGGER broadcasts_webhook_dispatched AFTER UPDATE OF finished_at ON broadcasts
  FOR EACH ROW WHEN (OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL)
  EXECUTE FUNCTION webhook_on_broadcast();
