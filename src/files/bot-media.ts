import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Attachment } from '../envelope.ts';
import { safeGet } from './safe-fetch.ts';
import type { FileStore } from './store.ts';

/** Largest file a bot sends from its media folder or a URL. */
export const BOT_MEDIA_MAX_BYTES = 50 * 1024 * 1024;
export const MEDIA_DIR = 'media';

export class MediaNotFoundError extends Error {
  override name = 'MediaNotFoundError';
}

/**
 * A bot's file URL that could not be fetched (the host refused or dropped the connection, timed
 * out, answered other than 200). Not transient, whatever the socket said: the host is someone
 * else's, and a queue that retried the turn until it came back held the person's later messages
 * behind it. The bot's error (its apology) instead.
 */
export class MediaFetchError extends Error {
  override name = 'MediaFetchError';
}

export interface BotMediaOptions {
  files: FileStore;
  /** `config/bots`: a bot's media are in `<botsDir>/<bot>/media/`. */
  botsDir: string;
  fetchTimeoutMs: number;
  /** Hosts fetched even at private addresses (MEDIA_FETCH_ALLOW_HOSTS). */
  allowHosts: readonly string[];
}

/** Whether `ref` names a file of a bot's media folder (not a URL, no way out of the folder). */
export function isMediaName(ref: string): boolean {
  if (/^[a-z][a-z0-9+.-]*:/i.test(ref)) return false;
  const normal = path.posix.normalize(ref.replaceAll('\\', '/'));
  return normal !== '' && !normal.startsWith('../') && normal !== '..' && !path.posix.isAbsolute(normal);
}

/**
 * What a bot sends (`SHOW IMAGE`, `SEND FILE`, `ctx.talk(text, { files })`), brought into the
 * file store: a file of `config/bots/<bot>/media/`, or an https URL the hub fetches itself
 * (`safeGet`). The stored file is the bot's, claimed by the session when the turn commits.
 */
export class BotMedia {
  constructor(private readonly o: BotMediaOptions) {}

  async resolve(bot: string, ref: string): Promise<Attachment> {
    const put = { bot, origin: 'bot' as const, maxBytes: BOT_MEDIA_MAX_BYTES, allowedTypes: ['*'] };
    if (/^https?:\/\//i.test(ref)) {
      const got = await safeGet(ref, {
        timeoutMs: this.o.fetchTimeoutMs,
        allowHosts: this.o.allowHosts,
      }).catch((err: Error) => {
        // No `cause`: isTransient looks into it. The caller names the URL.
        throw new MediaFetchError(err.message || err.name);
      });
      const file = await this.o.files.put(got.body, { ...put, name: got.name });
      return { type: file.type, name: file.name, size: file.size, fileId: file.id };
    }
    if (!isMediaName(ref))
      throw new MediaNotFoundError(`"${ref}" is neither a file of the bot's media folder nor an https URL`);
    const dir = path.join(this.o.botsDir, bot, MEDIA_DIR);
    const full = path.join(dir, path.posix.normalize(ref.replaceAll('\\', '/')));
    const stat = await fs.stat(full).catch(() => undefined);
    if (!stat?.isFile())
      throw new MediaNotFoundError(`there is no "${ref}" in config/bots/${bot}/${MEDIA_DIR}/`);
    const file = await this.o.files.put(createReadStream(full), { ...put, name: path.basename(full) });
    return { type: file.type, name: file.name, size: file.size, fileId: file.id };
  }
}
