import { Readable } from 'node:stream';
import type { WebClient } from '@slack/web-api';
import type { Attachment } from '../../src/envelope.ts';
import { AttachmentFetchError, attachmentStatusError } from '../../src/files/fetch-failure.ts';
import type { AttachmentSource } from '../../src/files/inbound.ts';
import type { FileStore } from '../../src/files/store.ts';

/** Where Slack serves files (`url_private_download`): the bot token goes to these origins only. */
export const SLACK_FILES_ORIGIN = 'https://files.slack.com';

/** A Slack file reference this adapter put on an inbound attachment (`data.download`). */
interface SlackFileData {
  download?: string;
}

/**
 * Fetches a person's file from Slack: `url_private_download` with the bot token (Slack's files
 * are private to the workspace). The token is sent only to Slack's file host (or the origin of
 * SLACK_API_URL, a test's stand-in), never to a URL of any other host a payload might name.
 * Slack answers an HTML sign-in page, not the file, when the app lacks the `files:read` scope.
 */
export function slackFileSource(o: {
  token: string;
  allowedOrigins: readonly string[];
  timeoutMs: number;
}): AttachmentSource {
  return async (a: Attachment) => {
    const url = (a.data as SlackFileData | undefined)?.download;
    if (!url) return undefined;
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      throw new AttachmentFetchError('the file URL Slack gave is not a URL', { permanent: true });
    }
    if (!o.allowedOrigins.includes(origin))
      throw new AttachmentFetchError(
        `the file is at ${origin}, not Slack's file host: not fetched with the token`,
        { permanent: true },
      );
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${o.token}` },
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw attachmentStatusError(res.status, `Slack answered HTTP ${res.status} for the file`);
    }
    if ((res.headers.get('content-type') ?? '').startsWith('text/html')) {
      await res.body.cancel();
      throw new AttachmentFetchError(
        'Slack answered a page, not the file: the app needs the files:read scope',
        { permanent: true },
      );
    }
    return { body: res.body };
  };
}

/**
 * Sends a stored file to a conversation with Slack's upload flow: `files.getUploadURLExternal`
 * (name and length) gives an upload URL, the bytes are POSTed there streamed from the store, and
 * `files.completeUploadExternal` shares the file in the channel (and thread). Returns Slack's file id.
 */
export async function uploadStoredFile(
  client: WebClient,
  files: FileStore,
  fileId: string,
  to: { channel: string; threadTs?: string },
  timeoutMs: number,
): Promise<string | undefined> {
  const file = await files.get(fileId);
  if (!file) return undefined;
  const got = await client.files.getUploadURLExternal({ filename: file.name, length: file.size });
  if (!got.upload_url || !got.file_id) throw new Error('files.getUploadURLExternal gave no upload URL');
  const res = await fetch(got.upload_url, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(file.size) },
    body: Readable.toWeb(files.stream(file)) as ReadableStream<Uint8Array>,
    duplex: 'half',
    signal: AbortSignal.timeout(timeoutMs),
  } as RequestInit & { duplex: 'half' });
  await res.body?.cancel();
  if (res.status !== 200) throw new UploadFailedError(res.status);
  const shared = [{ id: got.file_id, title: file.name }] as [{ id: string; title: string }];
  await client.files.completeUploadExternal(
    to.threadTs
      ? { files: shared, channel_id: to.channel, thread_ts: to.threadTs }
      : { files: shared, channel_id: to.channel },
  );
  return got.file_id;
}

/** Slack's upload URL refused the bytes. */
export class UploadFailedError extends Error {
  override name = 'UploadFailedError';
  constructor(readonly status: number) {
    super(`Slack's upload URL answered HTTP ${status}`);
  }
}
