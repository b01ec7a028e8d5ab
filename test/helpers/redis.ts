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
