import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The hub's Prometheus metrics, on a registry of its own (several hubs can live in one test
 * process). `/metrics` serves `registry.metrics()`.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'switchboard_' });
  const metrics = {
    registry,
    messagesIn: new Counter({
      name: 'switchboard_messages_in_total',
      help: 'Envelopes accepted from a channel',
      labelNames: ['channel'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'switchboard_messages_rate_limited_total',
      help: 'Messages refused because their session sent more than its limit in a minute',
      labelNames: ['channel'] as const,
      registers: [registry],
    }),
    duplicatesIn: new Counter({
      name: 'switchboard_messages_duplicate_total',
      help: 'Envelopes refused because their id was already accepted',
      labelNames: ['channel'] as const,
      registers: [registry],
    }),
    messagesOut: new Counter({
      name: 'switchboard_messages_out_total',
      help: 'Replies handed to a channel (sent, or committed for channels whose clients read them)',
      labelNames: ['channel'] as const,
      registers: [registry],
    }),
    deliveryFailures: new Counter({
      name: 'switchboard_delivery_failures_total',
      help: 'Reply batches given up: "refused" (retrying cannot help: failed at once), "budget" (failed for a reason that passes, for longer than DELIVERY_GIVE_UP_AFTER_SECONDS), "attempts" (an unclassified error, DELIVERY_ATTEMPTS times)',
      labelNames: ['channel', 'reason'] as const,
      registers: [registry],
    }),
    inboundFileFailures: new Counter({
      name: 'switchboard_inbound_file_failures_total',
      help: 'Files a person sent that the chat service failed to hand over: "retry" (may pass, tried again later), "gave_up" (the retries ran out: the person is told), "permanent" (cannot pass: told at once)',
      labelNames: ['channel', 'outcome'] as const,
      registers: [registry],
    }),
    turnSeconds: new Histogram({
      name: 'switchboard_engine_turn_seconds',
      help: 'Time the session engine takes for one envelope, from dequeue to commit (outcome "held": to the turn computed, committed with a later turn of its lane)',
      labelNames: ['channel', 'outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    envelopesSetAside: new Counter({
      name: 'switchboard_envelopes_set_aside_total',
      help: "Envelopes the inbound queue set aside after failing again and again (dead letters: switchboard queue failed), by channel and kind; a person's message set aside is answered with the bot's apology",
      labelNames: ['channel', 'kind'] as const,
      registers: [registry],
    }),
    botErrors: new Counter({
      name: 'switchboard_bot_errors_total',
      help: 'Turns in which the bot code threw',
      labelNames: ['bot'] as const,
      registers: [registry],
    }),
    activeSessions: new Gauge({
      name: 'switchboard_active_sessions',
      help: 'Open sessions with activity in the last 30 minutes',
      labelNames: ['bot', 'channel'] as const,
      registers: [registry],
    }),
    tablesAnalyzed: new Counter({
      name: 'switchboard_db_tables_analyzed_total',
      help: 'ANALYZE runs the hub made on tables whose planner statistics were stale (DB_ANALYZE_SECONDS)',
      labelNames: ['table'] as const,
      registers: [registry],
    }),
    queueRepairs: new Counter({
      name: 'switchboard_queue_repairs_total',
      help: 'Repairs a worker made to the shared queue: "wake" (ready lanes had no wake job, their producer died before adding it: one per job added), "claims" (lanes still claimed by a wake job that is over, handed back: one per lane), "lane_lost" (a drain found its job\'s lock gone, as after Redis was away, and handed its lane back: one per lane)',
      labelNames: ['queue', 'repair'] as const,
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'switchboard_queue_depth',
      help: 'Envelopes accepted and not yet handled (this process, or the shared queue)',
      registers: [registry],
    }),
    kbDocumentsFailing: new Gauge({
      name: 'switchboard_kb_documents_failing',
      help: 'Knowledge-base documents this process failed to index, waiting for their next try (kb.document_failed)',
      labelNames: ['bot'] as const,
      registers: [registry],
    }),
    schedulerFailedJobs: new Gauge({
      name: 'switchboard_scheduler_failed_jobs',
      help: 'Scheduled one-off jobs set aside after failing their last attempt, whose owners (a webhook retry, a broadcast tick, a scheduled send, a handoff timeout) wait on them: switchboard scheduler failed lists them, switchboard scheduler replay runs them again',
      registers: [registry],
    }),
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
