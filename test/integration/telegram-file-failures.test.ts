import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBotApi } from '../../adapters/telegram/bot-api.ts';
import { telegramFileSource } from '../../adapters/telegram/files.ts';
import type { Attachment } from '../../src/envelope.ts';
import { isPermanentFetchFailure } from '../../src/files/fetch-failure.ts';
import { botApiError, startTelegramBotApi } from '../helpers/telegram-bot-api.ts';

const TOKEN = '123456:telegram-file-failures-token';

/**
 * Telegram's file fetch against a local Bot API: which failures the worker tries again (the
 * Bot API's 5xx and 429, a lost connection) and which are final (a bad file id, no file_path).
 */
describe('Telegram file fetch: failures that pass and failures that do not', () => {
  let api: Awaited<ReturnType<typeof startTelegramBotApi>>;
  beforeAll(async () => {
    api = await startTelegramBotApi(TOKEN);
  });
  afterAll(() => api?.close());

  const source = (apiUrl = api.url) =>
    telegramFileSource({
      api: createBotApi({ token: TOKEN, apiUrl, timeoutMs: 2_000 }),
      token: TOKEN,
      apiUrl,
      timeoutMs: 2_000,
    });
  const doc = (ref: string): Attachment => ({
    type: 'application/pdf',
    name: 'scan.pdf',
    ref,
    data: { kind: 'document' },
    pending: true,
  });
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error('the fetch succeeded');
      },
      (err: unknown) => err,
    );

  it('getFile answering 502 or 429 may pass; a bad file id (400) is final', async () => {
    api.hostFile('F-ok', Buffer.from('%PDF-1.4 test'));
    api.script((c) => c.method === 'getFile', botApiError(502, 'Bad Gateway'));
    expect(isPermanentFetchFailure(await failure(source()(doc('F-ok'))))).toBe(false);
    api.script((c) => c.method === 'getFile', botApiError(429, 'Too Many Requests: retry after 1'));
    expect(isPermanentFetchFailure(await failure(source()(doc('F-ok'))))).toBe(false);
    expect(isPermanentFetchFailure(await failure(source()(doc('F-unknown'))))).toBe(true);
    // And then it is there.
    const got = await source()(doc('F-ok'));
    expect(got).toBeDefined();
  });

  it('a Bot API that does not answer (connection refused) may pass', async () => {
    const err = await failure(source('http://127.0.0.1:9')(doc('F-ok')));
    expect(isPermanentFetchFailure(err)).toBe(false);
    // The token never shows in what is logged of it.
    expect(String((err as Error).message)).not.toContain(TOKEN.split(':')[1]);
  });
});
