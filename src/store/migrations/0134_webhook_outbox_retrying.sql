-- Event webhooks (src/webhooks/store.ts `overdueLanes`): every worker's delivery loop also looks,
-- at each poll, for lanes whose event waits for a retry that is long overdue (its scheduler job
-- was lost). Only a lane's head is ever tried, so this index holds about one entry per lane
-- waiting for a retry, not the pending events behind them: the look is a short range scan,
-- whatever the backlog. Runs unchanged on PostgreSQL and on the embedded PGlite.
CREATE INDEX webhook_outbox_retrying ON webhook_outbox (next_attempt_at)
  WHERE state = 'pending' AND attempts > 0;
