import { Api, GrammyError, HttpError } from 'grammy';
import type { BotApiFailure } from './errors.ts';

export type BotApi = Api;

/** The Bot API client (grammY's), at TELEGRAM_API_URL: `<url>/bot<token>/<method>`. */
export function createBotApi(o: { token: string; apiUrl: string; timeoutMs: number }): BotApi {
  return new Api(o.token, { apiRoot: o.apiUrl, timeoutSeconds: Math.max(1, Math.ceil(o.timeoutMs / 1000)) });
}

/** What went wrong with a Bot API call, from grammY's errors; undefined for anything else. */
export function botApiFailure(err: unknown): BotApiFailure | undefined {
  if (err instanceof GrammyError) {
    const failure: BotApiFailure = { code: err.error_code, description: err.description };
    if (err.parameters?.retry_after !== undefined) failure.retryAfterSeconds = err.parameters.retry_after;
    if (err.parameters?.migrate_to_chat_id !== undefined)
      failure.migrateToChatId = err.parameters.migrate_to_chat_id;
    return failure;
  }
  if (err instanceof HttpError) {
    const cause = err.error instanceof Error ? err.error.message : String(err.error);
    // grammY's message names the method only; the cause can quote the URL, whose path holds the
    // token (`invalid json response body at …/bot<token>/sendPhoto`): it is blanked out.
    return { description: withoutToken(`${err.message} (${cause})`) };
  }
  return undefined;
}

/** A text with any `/bot<token>/` path (Bot API and file URLs) blanked out. */
export function withoutToken(text: string): string {
  return text.replace(/\/(file\/)?bot\d+:[A-Za-z0-9_-]+\//g, '/$1bot<token>/');
}
