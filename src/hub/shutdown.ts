import type { Logger } from '../logger.ts';

/** A second SIGINT or SIGTERM exits with 128 + the signal's number, as a shell reports it. */
const FORCED_EXIT_CODES: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };
/** The stop failed, or passed SHUTDOWN_TIMEOUT_SECONDS. */
const STOP_FAILED_EXIT_CODE = 1;

/** What the signal handling needs of a hub. */
export interface Stoppable {
  stop(): Promise<void>;
  /** What the stop is doing now (HubLifecycle.step). */
  readonly step: string | undefined;
}

/**
 * SIGTERM and SIGINT stop the hub, within `timeoutMs` (SHUTDOWN_TIMEOUT_SECONDS): past it the
 * process logs `hub.stop_timeout`, naming the step still under way, and exits 1. Nothing is lost
 * by that: an envelope whose turn had not committed is delivered again (the queue is
 * at-least-once: the inbox row, or the Redis lane whose job lock lapses), replies and webhook
 * events wait in PostgreSQL. A second signal exits at once (`process.forced_exit`).
 */
export function stopOnSignals(options: {
  hub: Stoppable;
  logger: Logger;
  timeoutMs: number;
  /** Runs once the hub has stopped, within the same deadline (the tracing's last spans). */
  afterStop?: () => Promise<void>;
  exit?: (code: number) => void;
}): void {
  const { hub, logger, timeoutMs } = options;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const timeoutSeconds = timeoutMs / 1000;
  let signalled = false;
  let hubStopped = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn({ event: 'process.forced_exit', signal, step: hub.step });
      exit(FORCED_EXIT_CODES[signal] ?? STOP_FAILED_EXIT_CODE);
      return;
    }
    signalled = true;
    logger.info({ event: 'process.signal', signal, timeoutSeconds });
    // Not unref'd: whatever the stop waits for, the process ends by then.
    setTimeout(() => {
      logger.error({
        event: 'hub.stop_timeout',
        step: hub.step ?? (hubStopped ? 'after the stop (tracing: the last spans)' : 'stop'),
        timeoutSeconds,
      });
      exit(STOP_FAILED_EXIT_CODE);
    }, timeoutMs);
    hub
      .stop()
      .then(() => {
        hubStopped = true;
        return options.afterStop?.();
      })
      .then(
        () => exit(0),
        (err: Error) => {
          logger.error({ event: 'hub.stop_failed', err: err.message });
          exit(STOP_FAILED_EXIT_CODE);
        },
      );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
