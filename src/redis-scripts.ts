import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** A Lua script run as an ioredis command: its name, how many of its arguments are keys, its source. */
export interface LuaCommand {
  name: string;
  numberOfKeys: number;
  lua: string;
}

/**
 * Reads a Lua script kept in a `.lua` file next to the module that runs it (`moduleUrl` is that
 * module's `import.meta.url`). `includes` are files whose text goes first: Redis scripts cannot
 * load one another, so a helper function shared by several scripts is prepended. Read once, when
 * the module loads.
 */
export function readLua(moduleUrl: string, file: string, includes: readonly string[] = []): string {
  const read = (name: string) => readFileSync(new URL(name, moduleUrl), 'utf8');
  return [...includes.map(read), read(file)].join('\n');
}

/**
 * Defines the commands on a connection (once per connection): ioredis then runs each by its SHA
 * (EVALSHA) and loads it again by itself after a Redis restart or SCRIPT FLUSH.
 */
export function defineLuaCommands(redis: Redis, commands: readonly LuaCommand[]): void {
  for (const { name, numberOfKeys, lua } of commands)
    if (!(name in redis)) redis.defineCommand(name, { numberOfKeys, lua });
}
