import { z } from 'zod';
import { ConfigError } from '../../src/config/env.ts';
import { emptyAsUndefined, int, parseEnv } from '../../src/config/env-parsing.ts';

/** An origin as browsers send it: scheme, host and port, no path. */
const OriginSchema = z.string().regex(/^https?:\/\/[^/\s]+$/, 'an origin is like https://example.com[:port]');

/**
 * A CSP host-source for `frame-ancestors`: an origin, the host part possibly starting with `*.`
 * (`https://*.example.com`). Nothing that could end the directive or add another.
 */
const FrameAncestorSchema = z
  .string()
  .regex(
    /^https?:\/\/(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:(\d{1,5}|\*))?$/,
    'a frame ancestor is an origin like https://shop.example or https://*.example.com',
  );

const commaList = (v: unknown) =>
  typeof v === 'string' && v.trim() !== ''
    ? v
        .split(',')
        .map((s) => s.trim().replace(/\/$/, ''))
        .filter(Boolean)
    : undefined;

export const WebEnvSchema = z.object({
  /** The web channel is on unless this is `false` (it needs no credentials). */
  WEB_ENABLED: z.preprocess(emptyAsUndefined, z.enum(['true', 'false']).default('true')),
  /**
   * Comma-separated origins whose pages may open the widget's WebSocket (`https://shop.example`).
   * Unset: any origin (the widget is made to be embedded anywhere). The hub's own pages are always allowed.
   */
  WEB_ALLOWED_ORIGINS: z.preprocess(commaList, z.array(OriginSchema).optional()),
  /**
   * Comma-separated origins whose pages may show the hub's chat page (`/`, `/<bot>`) in a frame,
   * besides the hub itself. Unset: only the hub's own pages. (The embeddable widget is a script,
   * not a frame, and is not affected.)
   */
  WEB_FRAME_ANCESTORS: z.preprocess(commaList, z.array(FrameAncestorSchema).default([])),
  /** Largest WebSocket frame accepted; a bigger one closes the socket with 1009. */
  WEB_MAX_FRAME_BYTES: int(64 * 1024, 1024),
  /** How often the server pings each socket; one that missed the previous ping is closed. */
  WEB_HEARTBEAT_MS: int(30_000, 100),
  /** How long a new socket may take to send `hello`. */
  WEB_HELLO_TIMEOUT_MS: int(10_000, 100),
});

export interface WebConfig {
  enabled: boolean;
  allowedOrigins: string[] | undefined;
  frameAncestors: string[];
  maxFrameBytes: number;
  heartbeatMs: number;
  helloTimeoutMs: number;
}

/** A ConfigError, so the CLI reports it in one line. */
export class WebConfigError extends ConfigError {
  override name = 'WebConfigError';
}

export function loadWebConfig(env: NodeJS.ProcessEnv = process.env): WebConfig {
  const e = parseEnv(
    WebEnvSchema,
    env,
    (problems) => new WebConfigError(`invalid web channel configuration: ${problems}`),
  );
  return {
    enabled: e.WEB_ENABLED === 'true',
    allowedOrigins: e.WEB_ALLOWED_ORIGINS,
    frameAncestors: e.WEB_FRAME_ANCESTORS,
    maxFrameBytes: e.WEB_MAX_FRAME_BYTES,
    heartbeatMs: e.WEB_HEARTBEAT_MS,
    helloTimeoutMs: e.WEB_HELLO_TIMEOUT_MS,
  };
}
