import type { Attachment } from '../../src/envelope.ts';
import { AttachmentFetchError, attachmentStatusError } from '../../src/files/fetch-failure.ts';
import type { AttachmentSource } from '../../src/files/inbound.ts';
import { type BotApi, botApiFailure } from './bot-api.ts';
import { FILE_KINDS } from './webhook/parse.ts';

/**
 * Fetches a person's file from Telegram: `getFile` gives its `file_path`, the bytes are at
 * `<api>/file/bot<token>/<file_path>` (the Bot API serves files up to 20 MB this way). Errors
 * never carry the URL, which holds the token.
 */
export function telegramFileSource(o: {
  api: BotApi;
  token: string;
  apiUrl: string;
  timeoutMs: number;
}): AttachmentSource {
  return async (a: Attachment) => {
    const kind = (a.data as { kind?: string } | undefined)?.kind;
    if (!a.ref || !kind || !FILE_KINDS.has(kind)) return undefined;
    const file = await o.api.getFile(a.ref).catch((err: unknown) => {
      // The Bot API's own error code is an HTTP status (400 bad file id, 429, 5xx); a network error has none.
      const failure = botApiFailure(err);
      if (failure?.code === undefined) throw err;
      throw attachmentStatusError(failure.code, `getFile: ${failure.description ?? failure.code}`);
    });
    if (!file.file_path)
      throw new AttachmentFetchError('Telegram gave no file_path for the file (larger than 20 MB?)', {
        permanent: true,
      });
    const res = await fetch(`${o.apiUrl}/file/bot${o.token}/${file.file_path}`, {
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw attachmentStatusError(res.status, `Telegram answered HTTP ${res.status} for the file`);
    }
    return { body: res.body, ...(a.name ? {} : { name: file.file_path.split('/').pop() }) };
  };
}
