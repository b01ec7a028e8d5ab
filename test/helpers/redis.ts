import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { TEST_REDIS_URL } from '../setup/services.ts';

/** Deletes every key under `prefix` on the Redis at `url` (tests' and benchmarks' own keys). */
export async function clearRedisPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** A key prefix of this test's own, and a cleanup that deletes every key under it. */
export function testRedisPrefix(): { prefix: string; cleanup: () => Promise<void> } {
  const prefix = `sbt:${randomBytes(6).toString('hex')}:`;
  return { prefix, cleanup: () => clearRedisPrefix(TEST_REDIS_URL, prefix) };
}

export { TEST_REDIS_URL };

/** Every key under `prefix`. */
export async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found;
}

/** A key's contents as text, whatever its type. */
export async function valueText(redis: Redis, key: string): Promise<string> {
  const type = await redis.type(key);
  if (type === 'string') return (await redis.get(key)) ?? '';
  if (type === 'list') return JSON.stringify(await redis.lrange(key, 0, -1));
  if (type === 'hash') return JSON.stringify(await redis.hgetall(key));
  if (type === 'set') return JSON.stringify(await redis.smembers(key));
  if (type === 'zset') return JSON.stringify(await redis.zrange(key, '0', '-1'));
  if (type === 'stream') return JSON.stringify(await redis.xrange(key, '-', '+'));
  return '';
}

/** The keys under `prefix` whose name or contents mention one of `needles` (`key: contents`). */
export async function keysMentioning(redis: Redis, prefix: string, needles: string[]): Promise<string[]> {
  const holding: string[] = [];
  for (const key of await keysUnder(redis, prefix)) {
    const text = await valueText(redis, key);
    if (needles.some((n) => key.includes(n) || text.includes(n)))
      holding.push(`${key}: ${text.slice(0, 300)}`);
  }
  return holding;
}
