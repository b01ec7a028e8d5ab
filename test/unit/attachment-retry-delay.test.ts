import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/env.ts';
import { ATTACHMENT_RETRY_DELAYS_MS, attachmentRetryDelay } from '../../src/files/fetch-attempts.ts';
import { AttachmentRetryError, fileUnavailableText } from '../../src/files/inbound.ts';
import { SessionSettingsSchema, sessionRules } from '../../src/lifecycle/rules.ts';
import { retryDelayHint } from '../../src/queue/queue.ts';

/** The attachment retry's spacing (src/files/fetch-attempts.ts) and the hint the queues read (src/queue/queue.ts). */
describe('attachment retry delays', () => {
  it('defaults to 1 s, 5 s, 30 s; the last one repeats', () => {
    expect(ATTACHMENT_RETRY_DELAYS_MS).toEqual([1_000, 5_000, 30_000]);
    expect([1, 2, 3, 4, 8].map((n) => attachmentRetryDelay(n, ATTACHMENT_RETRY_DELAYS_MS))).toEqual([
      1_000, 5_000, 30_000, 30_000, 30_000,
    ]);
    expect(attachmentRetryDelay(1, [])).toBe(0);
  });

  it('ATTACHMENT_RETRY_DELAYS_MS: milliseconds, comma-separated; unset is the default; nonsense is refused', () => {
    expect(loadConfig({}).attachmentRetryDelaysMs).toEqual([1_000, 5_000, 30_000]);
    expect(loadConfig({ ATTACHMENT_RETRY_DELAYS_MS: '500, 2000' }).attachmentRetryDelaysMs).toEqual([
      500, 2_000,
    ]);
    expect(() => loadConfig({ ATTACHMENT_RETRY_DELAYS_MS: '1s,5s' })).toThrow(ConfigError);
    expect(() => loadConfig({ ATTACHMENT_RETRY_DELAYS_MS: '1000,3600000' })).toThrow(ConfigError);
  });

  it('the queues read the hint an error carries; without one they back off as usual', () => {
    const err = new AttachmentRetryError('"photo" was not fetched: HTTP 503');
    expect(retryDelayHint(err)).toBeUndefined();
    err.retryAfterMs = 5_000;
    expect(retryDelayHint(err)).toBe(5_000);
    expect(retryDelayHint(new Error('database away'))).toBeUndefined();
    expect(retryDelayHint(Object.assign(new Error('x'), { retryAfterMs: Number.NaN }))).toBeUndefined();
    expect(retryDelayHint(undefined)).toBeUndefined();
  });
});

describe('sessions.fileUnavailableNotice', () => {
  const defaults = { anonymousSessionDays: 7, rateLimitPerMinute: 60 };
  it("is the bot's own words, with the file's name in place of {name}", () => {
    const rules = sessionRules(
      SessionSettingsSchema.parse({
        fileUnavailableNotice: 'No pude recibir «{name}». ¿Lo envías otra vez?',
      }),
      'telegram',
      defaults,
    );
    expect(fileUnavailableText(rules.fileUnavailableNotice, 'scan.pdf')).toBe(
      'No pude recibir «scan.pdf». ¿Lo envías otra vez?',
    );
  });

  it('defaults to the hub’s notice', () => {
    const rules = sessionRules(SessionSettingsSchema.parse({}), undefined, defaults);
    expect(fileUnavailableText(rules.fileUnavailableNotice, 'photo')).toBe(
      '"photo" could not be fetched from the chat service; please send it again',
    );
  });

  it('by email the default speaks of the mail, not a chat service; a bot’s own words hold there too', () => {
    const rules = sessionRules(SessionSettingsSchema.parse({}), 'email', defaults);
    expect(fileUnavailableText(rules.fileUnavailableNotice, 'kettle.png')).toBe(
      'The attachment "kettle.png" of your mail could not be received; please send it again',
    );
    const own = sessionRules(
      SessionSettingsSchema.parse({ fileUnavailableNotice: 'No «{name}»' }),
      'email',
      defaults,
    );
    expect(fileUnavailableText(own.fileUnavailableNotice, 'kettle.png')).toBe('No «kettle.png»');
  });
});
