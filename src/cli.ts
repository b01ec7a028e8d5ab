import { parseArgs } from 'node:util';
import { CHANNEL_PLUGINS, checkChannels, loadAdapters } from '../adapters/index.ts';
import { AGENT_USAGE, runAgentCommand } from './agents/cli.ts';
import { failureExitCode, reportFailure } from './cli-failure.ts';
import { EXIT_USAGE, noMoreArguments, UsageError } from './cli-usage.ts';
import { botFolders, DEFAULT_BOT } from './config/bots.ts';
import { checkConfiguration } from './config/check.ts';
import { loadConfig, ROLES, type Role } from './config/env.ts';
import { formatProblem } from './config/problems.ts';
import {
  deferWasmTierUp,
  EMBEDDED_HEAP_GROWING_PERCENT,
  EMBEDDED_WASM_TIERING_BUDGET,
  limitHeapGrowth,
} from './hub/heap.ts';
import { HubStoppedError } from './hub/lifecycle.ts';
import { stopOnSignals } from './hub/shutdown.ts';
import { createHub, openDatabase } from './hub.ts';
import { commandLogger, createLogger } from './logger.ts';
import { BROADCAST_USAGE, runBroadcastCommand } from './outbound/cli.ts';
import { migrate } from './store/migrate.ts';
import { startTracing } from './telemetry/tracing.ts';

const USAGE = `Usage: switchboard <command> [options]

Commands:
  start [--role all|gateway|worker] [--port N]   run the hub (default role: all)
  migrate                                      apply database migrations and exit
  check [bot]                                  check the bots and channels as start would (bot.json, scripts, handlers, secrets, channel settings)
  queue status [--json]                        what the queues hold now: queued, ready, claimed, stuck
  queue failed [--json]                        envelopes set aside after failing again and again (kept DEAD_LETTER_KEEP_DAYS)
  queue replay                                 put them back in the queue
  outbox failed [--json]                       replies given up: refused, or failing past DELIVERY_GIVE_UP_AFTER_SECONDS
  outbox replay [--session ID]                 send them again (all, or one session's)
  webhooks failed [--json]                     event webhooks dead-lettered after WEBHOOK_MAX_AGE_SECONDS of failures (kept DEAD_LETTER_KEEP_DAYS)
  webhooks replay [--id EVENT_ID]              send them again (all, or one event)
  scheduler failed [--json]                    scheduled jobs set aside after failing their last attempt
  scheduler replay [ID…]                       run them again now, with fresh attempts (all, or these)
${AGENT_USAGE}
${BROADCAST_USAGE}
  help                                         show this help
${CHANNEL_PLUGINS.flatMap((p) => (p.command ? [`${p.command.usage}\n`] : [])).join('')}
Configuration is read from the environment; see README.md.
Exit codes: 0 done; 1 failed (a setting, a dependency, the operation); 2 a command line it cannot read.`;

async function start(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { role: { type: 'string', default: 'all' }, port: { type: 'string' } },
    strict: true,
  });
  const role = values.role as Role;
  // A value out of a fixed set is the command line's, like an unknown option: exit 2, nothing opened.
  if (!ROLES.includes(role))
    throw new UsageError(`--role must be ${ROLES.slice(0, -1).join(', ')} or ${ROLES.at(-1)}, not "${role}"`);
  const env = { ...process.env, ...(values.port ? { PORT: values.port } : {}) };
  const config = loadConfig(env);
  // Before the hub: the SDK (loaded only when OTLP is configured) must see every span.
  const logger = createLogger(config.logLevel, { role });
  const tracing = await startTracing({
    role,
    env,
    // An export that fails loses those spans, never a message: a warning, not an error.
    onProblem: (_level, message) => logger.warn({ event: 'tracing.problem', err: message.slice(0, 500) }),
  });
  if (tracing.on)
    logger.info({
      event: 'tracing.started',
      protocol: tracing.protocol,
      url: tracing.url,
      ...(tracing.warmUp
        ? {
            warmUpMessages: tracing.warmUp.messages,
            warmUpSpans: tracing.warmUp.spans,
            warmUpMs: tracing.warmUp.ms,
          }
        : {}),
    });
  const adapters = await loadAdapters(config, env, logger);
  // The embedded hub is one process for everything: its heap grows deliberately, and its
  // PostgreSQL is optimised by V8 only where messages make it hot (src/hub/heap.ts).
  if (!config.databaseUrl && limitHeapGrowth())
    logger.debug({ event: 'process.heap_growth', percent: EMBEDDED_HEAP_GROWING_PERCENT });
  if (!config.databaseUrl && deferWasmTierUp())
    logger.debug({ event: 'process.wasm_tiering', budget: EMBEDDED_WASM_TIERING_BUDGET });
  const hub = await createHub({ config, role, adapters, logger });

  stopOnSignals({
    hub,
    logger,
    timeoutMs: config.shutdownTimeoutMs,
    afterStop: () => tracing.shutdown(),
  });
  process.on('unhandledRejection', (reason) => {
    logger.error({
      event: 'process.unhandled_rejection',
      err: reason instanceof Error ? reason.message : String(reason),
      stack: reason instanceof Error ? reason.stack : undefined,
    });
  });
  try {
    await hub.start();
  } catch (err) {
    // A signal during the start: the start gave way, and the stop ends the process.
    if (err instanceof HubStoppedError) return;
    logger.error({ event: 'hub.start_failed', err: err instanceof Error ? err.message : String(err) });
    throw err;
  }
}

async function runMigrate(): Promise<void> {
  const config = loadConfig();
  const logger = commandLogger(config.logLevel);
  const db = await openDatabase(config, logger);
  try {
    const applied = await migrate(db, logger);
    process.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'the database is up to date\n');
  } finally {
    await db.close();
  }
}

async function runCheck(args: string[]): Promise<void> {
  const { positionals } = parseArgs({ args, allowPositionals: true, strict: true });
  noMoreArguments('check', positionals.slice(1));
  const config = loadConfig();
  const checked = await checkConfiguration(config, { only: positionals[0] });
  // The channels as start reads and builds them (connecting nowhere), answering with bots that exist
  // (every folder, and the built-in default bot: start refuses a folder that does not load, above).
  const folders = new Set(await botFolders(config.configDir));
  const channels = await checkChannels(
    config,
    process.env,
    commandLogger(config.logLevel === 'info' ? 'warn' : config.logLevel),
    (bot) => bot === DEFAULT_BOT || folders.has(bot),
  );
  const problems = [...checked.bots.flatMap((b) => b.problems), ...checked.problems, ...channels];
  for (const problem of problems) process.stdout.write(`${formatProblem(problem)}\n`);
  const scripts = checked.bots.reduce((n, b) => n + b.scripts.length, 0);
  const bots = `${checked.bots.length} bot${checked.bots.length === 1 ? '' : 's'}`;
  const summary = `${scripts} script${scripts === 1 ? '' : 's'} in ${bots}`;
  if (problems.length > 0) {
    process.stdout.write(`${problems.length} error${problems.length === 1 ? '' : 's'} in ${summary}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(`${summary}: no errors\n`);
  }
}

export async function main(argv: string[]): Promise<void> {
  const [command = 'help', ...rest] = argv;
  switch (command) {
    case 'start':
      return start(rest);
    case 'migrate':
      parseArgs({ args: rest, strict: true });
      return runMigrate();
    case 'check':
      await runCheck(rest);
      // A handler imported for the check may hold the process open (a timer, a connection made
      // at import): the check is over, whatever it left running.
      process.exit();
      return;
    case 'queue':
    case 'outbox':
    case 'webhooks':
    case 'scheduler': {
      const { parseOperatorArguments, runOperatorCommand } = await import('./operator.ts');
      process.exitCode = await runOperatorCommand(command, parseOperatorArguments(command, rest));
      return;
    }
    case 'agent':
      process.exitCode = await runAgentCommand(rest);
      return;
    case 'broadcast':
      process.exitCode = await runBroadcastCommand(rest, { env: process.env, out: process.stdout });
      return;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return;
    default: {
      const channel = CHANNEL_PLUGINS.find((p) => p.declaration.name === command && p.command);
      if (channel?.command) {
        process.exitCode = await channel.command.run(rest, { env: process.env, out: process.stdout });
        return;
      }
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}\n`);
      process.exitCode = EXIT_USAGE;
    }
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  reportFailure(err, { env: process.env, write: (text) => process.stderr.write(text) });
  process.exit(failureExitCode(err));
});
