-- Event webhooks (issue 19): `message.received` and `message.sent` from one trigger per INSERT
-- statement instead of one per row. The row trigger's WHEN (0042, 0090) called webhook_wanted()
-- for every history row a turn writes: a PL/pgSQL call and an executor start for its query per
-- row, ~11% of PostgreSQL's CPU in the group commit's statement (perf, 12 sessions × 9 turns a
-- statement) though no endpoint wanted anything. Now a statement (a group commit's hundreds of
-- rows, or a turn's one) asks once; only when an endpoint takes either type does it read the
-- statement's new rows (a transition table) and write their events, for the bots whose endpoints
-- take them, as 0041's function did row by row. Same events, same data: one event id per message
-- for all its endpoints; in the outbox (its `id`, the order receivers see) a session's messages in
-- their order (seq), as the row trigger wrote them, and still after the statement's other rows'
-- events and before those of the statements after it. Updates (`message.delivered`,
-- `message.failed`) keep their row trigger: a status update is one row. Runs unchanged on
-- PostgreSQL and on the embedded PGlite.
CREATE FUNCTION webhook_on_messages_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM webhook_endpoints WHERE events && ARRAY['message.received', 'message.sent']
  ) THEN
    RETURN NULL;
  END IF;
  INSERT INTO webhook_outbox (event_id, endpoint, bot, session_id, type, data)
  SELECT m.event_id, e.endpoint, s.bot, m.session_id, m.type,
    jsonb_build_object('channel', s.channel, 'seq', m.seq, 'role', m.role, 'text', m.content,
      'envelope_id', m.envelope_id, 'in_reply_to', m.in_reply_to)
  -- One id per message, whichever endpoints take it (a volatile target list is not flattened).
  FROM (
    SELECT n.session_id, n.seq, n.role, n.content, n.envelope_id, n.in_reply_to,
      CASE WHEN n.role = 'user' THEN 'message.received' ELSE 'message.sent' END AS type,
      gen_random_uuid() AS event_id
    FROM new_messages n
    WHERE n.role IN ('user', 'assistant', 'agent')
  ) m
  JOIN sessions s ON s.id = m.session_id
  JOIN webhook_endpoints e ON e.bot = s.bot AND m.type = ANY (e.events)
  ORDER BY m.session_id, m.seq, e.endpoint;
  RETURN NULL;
END $$;

DROP TRIGGER messages_webhook_recorded ON messages;
CREATE TRIGGER messages_webhook_recorded AFTER INSERT ON messages
  REFERENCING NEW TABLE AS new_messages
  FOR EACH STATEMENT EXECUTE FUNCTION webhook_on_messages_inserted();
