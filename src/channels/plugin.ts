import type { HubConfig } from '../config/env.ts';
import type { Logger } from '../logger.ts';
import type { ChannelAdapter } from '../ports.ts';
import type { ChannelDeclaration } from './declaration.ts';

/** What `loadAdapter` gets: the hub's configuration and the environment the adapter reads its own from. */
export interface AdapterLoadContext {
  config: HubConfig;
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

/**
 * One channel as `adapters/index.ts` registers it (`adapters/<name>/channel.ts` exports it).
 * Reading it is cheap: the declaration is data, `enabled` reads the environment, and only
 * `loadAdapter` imports the adapter (and its platform SDK).
 */
export interface ChannelPlugin {
  readonly declaration: ChannelDeclaration;
  /** Whether this hub runs the channel, from the environment alone (no SDK, no connection). */
  enabled(env: NodeJS.ProcessEnv): boolean;
  /**
   * Imports and builds the adapter; undefined when its configuration turns it off after all.
   * Throws ConfigError for a setting it refuses. `switchboard check` calls it too, to find what
   * start would refuse: it connects nowhere (connections belong to the adapter's setup and start).
   */
  loadAdapter(context: AdapterLoadContext): Promise<ChannelAdapter | undefined>;
  /** `switchboard <channel name> …`: what an operator runs for this channel, if anything. */
  readonly command?: ChannelCommand;
}

/**
 * A channel's own CLI command (registering a webhook with the platform, …), run as
 * `switchboard <channel name> <args…>`. Like `loadAdapter`, `run` imports what it needs itself.
 */
export interface ChannelCommand {
  /** Its lines in `switchboard help`: `<channel> <subcommand> [options]`, then what it does. */
  readonly usage: string;
  /**
   * Runs it; resolves with the exit code. Throws UsageError (src/cli-usage.ts, exit 2) for a
   * command line it cannot read, ConfigError (exit 1) for a setting or value it refuses.
   */
  run(args: string[], io: { env: NodeJS.ProcessEnv; out: NodeJS.WritableStream }): Promise<number>;
}
