import type { Attachment } from '../../../src/envelope.ts';
import { safeGet } from '../../../src/files/safe-fetch.ts';

/** Attachment types that are not files: cards, the rich-text copy of the message. */
const NOT_FILES =
  /^(application\/vnd\.microsoft\.card\.|text\/html$|application\/vnd\.microsoft\.teams\.card\.)/;

/**
 * The bytes of a file a person attached in Teams: a `contentUrl` on the activity's own Bot
 * Connector (`serviceUrl`, whose activity was verified) is fetched from there; a file's
 * pre-authorised `downloadUrl` (`file.download.info`) or another https URL through `safeGet`
 * (no private addresses). Cards and the rich-text copy are not files.
 */
export async function fetchTeamsFile(
  a: Attachment,
  serviceUrl: string | null | undefined,
  timeoutMs: number,
): Promise<{ body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> } | undefined> {
  if (!a.url || NOT_FILES.test(a.type)) return undefined;
  const url = new URL(a.url);
  if (serviceUrl && url.origin === new URL(serviceUrl).origin) {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok || !res.body) throw new Error(`the Bot Connector answered ${res.status} for an attachment`);
    return { body: res.body };
  }
  const got = await safeGet(a.url, { timeoutMs, allowHosts: [] });
  return { body: got.body };
}
