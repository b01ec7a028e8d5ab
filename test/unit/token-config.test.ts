import { describe, expect, it } from 'vitest';
import { hashToken, newToken, TOKEN_PATTERN, tokenMatches } from '../../src/auth/token.ts';
import { ConfigError, loadConfig } from '../../src/config/env.ts';
import { createHub } from '../../src/hub.ts';
import { backoffDelay } from '../../src/queue/queue.ts';

describe('session tokens', () => {
  it('are 256 random bits in URL-safe base64, all different', () => {
    const tokens = new Set(Array.from({ length: 1000 }, newToken));
    expect(tokens.size).toBe(1000);
    for (const t of tokens) {
      expect(t).toMatch(TOKEN_PATTERN);
      expect(Buffer.from(t, 'base64url')).toHaveLength(32);
    }
  });

  it('are stored as a SHA-256 hash and compared against it', () => {
    const t = newToken();
    const h = hashToken(t);
    expect(h).toHaveLength(32);
    expect(h.toString('base64url')).not.toBe(t);
    expect(tokenMatches(t, h)).toBe(true);
    expect(tokenMatches(newToken(), h)).toBe(false);
  });
});

describe('configuration', () => {
  it('has working defaults with nothing set', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8080,
      databaseUrl: undefined,
      redisUrl: undefined,
      maxTextBytes: 16384,
      redisPrefix: 'sb:',
    });
    expect(c.dataDir.endsWith('/data')).toBe(true);
  });

  it('treats empty variables as unset and rejects bad ones by name', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' }).databaseUrl).toBeUndefined();
    expect(() => loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
  });

  it('refuses a LOG_FORMAT other than json or pretty by name, rather than guessing', () => {
    expect(() => loadConfig({ LOG_FORMAT: 'text' })).toThrow(/LOG_FORMAT/);
    expect(() => loadConfig({ LOG_FORMAT: 'pretty' })).not.toThrow();
    expect(() => loadConfig({ LOG_FORMAT: '' })).not.toThrow();
  });
});

describe('backoff', () => {
  it('grows exponentially with full jitter, up to the cap', () => {
    expect(backoffDelay(0, 100, 10_000, () => 0.999)).toBe(99);
    expect(backoffDelay(3, 100, 10_000, () => 0.5)).toBe(400);
    expect(backoffDelay(20, 100, 10_000, () => 0.999)).toBe(9990);
    expect(backoffDelay(5, 100, 10_000, () => 0)).toBe(0);
  });
});

describe('ADMIN_TOKEN', () => {
  it('is refused under 32 characters, by name, when the configuration is read', () => {
    expect(() => loadConfig({ ADMIN_TOKEN: 'x'.repeat(31) })).toThrow(ConfigError);
    expect(() => loadConfig({ ADMIN_TOKEN: 'too-short' })).toThrow(
      /ADMIN_TOKEN: must be at least 32 characters, not 9/,
    );
    expect(loadConfig({ ADMIN_TOKEN: 'x'.repeat(32) }).adminToken).toBe('x'.repeat(32));
    expect(loadConfig({ ADMIN_TOKEN: '' }).adminToken).toBeUndefined();
  });

  it('stops the hub from starting when a configuration with a short one is handed to it', async () => {
    const config = { ...loadConfig({ LOG_LEVEL: 'silent' }), adminToken: 'short' };
    await expect(createHub({ config })).rejects.toThrow(/^ADMIN_TOKEN must be at least 32 characters/);
  });
});
