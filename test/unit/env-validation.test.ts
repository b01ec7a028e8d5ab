import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/env.ts';
import { createHub } from '../../src/hub.ts';
import { tempDir } from '../helpers/database.ts';

/** The message of the ConfigError `loadConfig(env)` throws. */
function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`${JSON.stringify(env)} was accepted`);
}

describe('connection settings are checked when the configuration is read', () => {
  it('DATABASE_URL: a postgres:// or postgresql:// URL naming a host (or a socket, ?host=)', () => {
    for (const ok of [
      'postgres://switchboard@db.internal/switchboard',
      'postgresql://user:secret@127.0.0.1:5432/db?sslmode=require',
      'postgres://[::1]:5432/db',
      'postgresql:///switchboard?host=/var/run/postgresql',
    ])
      expect(loadConfig({ DATABASE_URL: ok }).databaseUrl).toBe(ok);
    for (const bad of [
      'not a url',
      'db.internal:5432/switchboard',
      'mysql://db/x',
      'postgres:///switchboard',
    ])
      expect(refusal({ DATABASE_URL: bad })).toBe(
        'invalid configuration: DATABASE_URL: must be a postgres:// or postgresql:// URL naming a host, such as postgres://user:password@db.example.com:5432/switchboard',
      );
  });

  it('REDIS_URL: a redis:// or rediss:// URL naming a host', () => {
    for (const ok of ['redis://127.0.0.1:6379/10', 'rediss://:secret@cache.example.com:6380'])
      expect(loadConfig({ REDIS_URL: ok }).redisUrl).toBe(ok);
    // Without a scheme ioredis connected to db 0 of whatever it made of it.
    for (const bad of ['127.0.0.1:6379', 'http://127.0.0.1:6379', 'redis://'])
      expect(refusal({ REDIS_URL: bad })).toBe(
        'invalid configuration: REDIS_URL: must be a redis:// or rediss:// URL naming a host, such as redis://redis.example.com:6379/0',
      );
  });

  it('never repeats a refused URL, which may hold a password', () => {
    expect(refusal({ DATABASE_URL: 'postgres//admin:hunter2@db/x' })).not.toContain('hunter2');
    expect(refusal({ REDIS_URL: ':hunter2@cache:6379' })).not.toContain('hunter2');
  });

  it('PUBLIC_URL: an absolute http:// or https:// URL', () => {
    expect(loadConfig({ PUBLIC_URL: 'https://chat.example.com/' }).publicUrl).toBe(
      'https://chat.example.com',
    );
    expect(loadConfig({ PUBLIC_URL: 'http://127.0.0.1:8080' }).publicUrl).toBe('http://127.0.0.1:8080');
    for (const bad of ['chat.example.com', '/chat', 'ftp://chat.example.com', 'https://'])
      expect(refusal({ PUBLIC_URL: bad })).toBe(
        'invalid configuration: PUBLIC_URL: must be an absolute http:// or https:// URL, such as https://chat.example.com',
      );
  });

  it('PORT: 0 to 65535', () => {
    expect(loadConfig({ PORT: '65535' }).port).toBe(65_535);
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
    expect(refusal({ PORT: '70000' })).toMatch(/^invalid configuration: PORT: .*65535/);
    expect(refusal({ PORT: '-1' })).toMatch(/^invalid configuration: PORT: /);
  });
});

describe('BROADCAST_RATE_LIMITS', () => {
  it('refuses a channel name no channel has, before anything is opened', async () => {
    const dataDir = await tempDir('sbt-rate-limits-');
    const config = loadConfig({
      LOG_LEVEL: 'silent',
      DATA_DIR: dataDir,
      BROADCAST_RATE_LIMITS: 'whatsap=5,email=2',
    });
    const err = await createHub({ config }).catch((e: unknown) => e);
    // Nothing was opened: the embedded database was never made.
    expect(await fs.readdir(dataDir)).toEqual([]);
    await fs.rm(dataDir, { recursive: true, force: true });
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      'BROADCAST_RATE_LIMITS: "whatsap" is not a channel; the channels are api, whatsapp, teams, telegram, slack, email, web',
    );
  });
});
