-- The webhook triggers' WHEN question (0042) in PL/pgSQL instead of SQL (issue 19). A SQL
-- function that cannot be inlined (an EXISTS cannot) has its body parsed and planned again in
-- every statement that calls it; PL/pgSQL keeps its plan for the connection's life. Every
-- history insert asks (the row trigger's WHEN on `messages`), so each group commit planned it
-- once more: in a perf profile of the distributed bench, 1.8% of PostgreSQL's CPU was that
-- planning (5.4% the function in all). Same question, same answer, same triggers.
-- Runs unchanged on PostgreSQL and on the embedded PGlite.
CREATE OR REPLACE FUNCTION webhook_wanted(p_type text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM webhook_endpoints WHERE p_type = ANY (events));
END $$;
CREATE OR REPLACE FUNCTION webhook_wanted_by(p_bot text, p_type text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM webhook_endpoints WHERE bot = p_bot AND p_type = ANY (events));
END $$;
