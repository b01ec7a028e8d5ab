import { CHANNEL_NAME_PATTERN, type ChannelDeclaration } from './declaration.ts';

export class UnknownChannelError extends Error {
  override name = 'UnknownChannelError';
}

/**
 * The channels this hub knows, by name. Filled from `adapters/index.ts` (one line per channel)
 * before anything reads it; it holds declarations only, so filling it starts no adapter.
 */
export class ChannelRegistry {
  private readonly byName = new Map<string, ChannelDeclaration>();

  /** Adds a channel; registering the same declaration again is a no-op, another under a taken name an error. */
  register(declaration: ChannelDeclaration): void {
    if (!CHANNEL_NAME_PATTERN.test(declaration.name))
      throw new Error(`channel name "${declaration.name}" must match ${CHANNEL_NAME_PATTERN}`);
    const known = this.byName.get(declaration.name);
    if (known && known !== declaration) throw new Error(`channel "${declaration.name}" is declared twice`);
    this.byName.set(declaration.name, declaration);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The declaration, or undefined for a name no adapter declares (a removed channel's old sessions). */
  get(name: string): ChannelDeclaration | undefined {
    return this.byName.get(name);
  }

  /** The declaration; UnknownChannelError for a name no adapter declares. */
  require(name: string): ChannelDeclaration {
    const declaration = this.byName.get(name);
    if (!declaration)
      throw new UnknownChannelError(`unknown channel "${name}"; channels: ${this.names().join(', ')}`);
    return declaration;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  all(): ChannelDeclaration[] {
    return [...this.byName.values()];
  }
}

/** The hub's channels (one registry per process, filled by `registerChannels()` in `adapters/index.ts`). */
export const channels = new ChannelRegistry();

/** Whether the channel's clients follow a turn live on the bus (typing, streamed chunks). */
export function isLiveChannel(name: string): boolean {
  return channels.get(name)?.delivery === 'live';
}

/** Whether the channel's sessions are opened by a client holding a token, never by a message. */
export function hasExplicitSessions(name: string): boolean {
  return channels.get(name)?.sessions === 'explicit';
}
