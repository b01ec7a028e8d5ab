import { LogLevel, type Logger as SlackLogger, WebClient } from '@slack/web-api';
import type { Logger } from '../../src/logger.ts';

/**
 * The Web API client (@slack/web-api) at SLACK_API_URL. It retries nothing itself and rejects a
 * rate-limited call at once: delivery's retries (with Slack's Retry-After) do that, across workers.
 */
export function createWebClient(o: {
  token: string;
  apiUrl: string;
  timeoutMs: number;
  logger: Logger;
}): WebClient {
  return new WebClient(o.token, {
    slackApiUrl: o.apiUrl,
    timeout: o.timeoutMs,
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    logger: pinoLogger(o.logger),
    logLevel: LogLevel.WARN,
  });
}

/** The SDK's logger interface over the hub's pino logger, one event name for everything it says. */
function pinoLogger(logger: Logger): SlackLogger {
  let level = LogLevel.WARN;
  const text = (msg: unknown[]) => msg.map((m) => (m instanceof Error ? m.message : String(m))).join(' ');
  return {
    debug: (...msg) => logger.debug({ event: 'slack.web_api', msg: text(msg) }),
    info: (...msg) => logger.info({ event: 'slack.web_api', msg: text(msg) }),
    warn: (...msg) => logger.warn({ event: 'slack.web_api', msg: text(msg) }),
    error: (...msg) => logger.error({ event: 'slack.web_api', msg: text(msg) }),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}
