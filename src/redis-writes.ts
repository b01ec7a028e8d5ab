import type { Redis } from 'ioredis';
import { TickBatcher } from './queue/tick-batch.ts';
import { defineLuaCommands, type LuaCommand, readLua } from './redis-scripts.ts';

/** `redis-writes/writes.lua`: several SET EX / DEL / PUBLISH in one script, in order. */
export const WRITE_COMMANDS: readonly LuaCommand[] = [
  { name: 'switchboardWrites', numberOfKeys: 0, lua: readLua(import.meta.url, './redis-writes/writes.lua') },
];

type Write = ['s', string, string, number] | ['d', string] | ['p', string, string];

interface WritesCommand {
  switchboardWrites(...args: (string | number)[]): Promise<number>;
}

/**
 * The writes a process makes in the same turn of the event loop — after a group commit, each
 * turn's session snapshot for the shared cache and its `turn.completed` notice — sent as one
 * script (`TickBatcher`, up to 128 writes) instead of one command each. They keep their order
 * among themselves; each caller is answered when its batch has run. Reads do not wait for them:
 * a process that writes a key and reads it back in the same moment could read the old value, so
 * the session cache and the bus (whose readers are other processes, or this one later) are the
 * users.
 */
export class RedisWrites {
  private readonly redis: Redis & WritesCommand;
  private readonly batch = new TickBatcher<Write, void>(async (writes) => {
    const args: (string | number)[] = [];
    for (const w of writes) args.push(...w);
    await this.redis.switchboardWrites(...args);
    return writes.map(() => undefined);
  });

  constructor(redis: Redis) {
    defineLuaCommands(redis, WRITE_COMMANDS);
    this.redis = redis as Redis & WritesCommand;
  }

  set(key: string, value: string, ttlSeconds: number): Promise<void> {
    return this.batch.call(['s', key, value, ttlSeconds]);
  }

  del(key: string): Promise<void> {
    return this.batch.call(['d', key]);
  }

  publish(channel: string, message: string): Promise<void> {
    return this.batch.call(['p', channel, message]);
  }
}
