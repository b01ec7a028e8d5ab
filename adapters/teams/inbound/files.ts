import type { Attachment } from '../../../src/envelope.ts';
import { AttachmentFetchError, attachmentStatusError } from '../../../src/files/fetch-failure.ts';
import type { FetchedAttachment } from '../../../src/files/inbound.ts';
import { safeGet } from '../../../src/files/safe-fetch.ts';

/** Attachment types that are not files: cards, the rich-text copy of the message. */
const NOT_FILES =
  /^(application\/vnd\.microsoft\.card\.|text\/html$|application\/vnd\.microsoft\.teams\.card\.)/;
/** A file's pre-authorised link (1:1 chats): it carries its own credential, the bot's token must not go there. */
const FILE_DOWNLOAD_INFO = 'application/vnd.microsoft.teams.file.download.info';
/** Redirects followed on a host that gets the bot's token; each is checked again. */
const MAX_REDIRECTS = 3;

/** Whether an inbound attachment has bytes to fetch (a file or a picture, not a card). */
export function isTeamsFile(a: Pick<Attachment, 'type' | 'url'>): boolean {
  return Boolean(a.url) && !NOT_FILES.test(a.type);
}

/**
 * Hosts where Teams keeps what people attach (inline pictures, files pasted into a chat) and
 * which answer only with the bot's Bot Connector token: the connector itself (public and
 * government clouds) and the chat service's object store. Exact names or Microsoft-owned
 * domains only: `*.trafficmanager.net` is anyone's.
 */
const TOKEN_HOSTS = new Set(['smba.trafficmanager.net', 'api.botframework.com']);
const TOKEN_DOMAINS = ['.botframework.com', '.asm.skype.com', '.teams.microsoft.com', '.teams.microsoft.us'];

/**
 * Whether a download from `url` carries the bot's token: over https to a Teams/Bot Framework host,
 * or to the activity's own Bot Connector (`serviceUrl`, which the verified token named). Never to
 * any other host: a person can put any URL in an attachment.
 */
export function needsBotToken(url: URL, serviceUrl: string | null | undefined): boolean {
  if (serviceUrl) {
    const service = new URL(serviceUrl);
    if (url.origin === service.origin) return true;
  }
  if (url.protocol !== 'https:') return false;
  const host = url.hostname.toLowerCase();
  return TOKEN_HOSTS.has(host) || TOKEN_DOMAINS.some((d) => host.endsWith(d));
}

export interface TeamsFileOptions {
  /** The activity's Bot Connector (`serviceUrl` of its conversation reference). */
  serviceUrl: string | null | undefined;
  timeoutMs: number;
  /** The bot's Bot Connector token; undefined without an app id (nothing to send). */
  token?: () => Promise<string | undefined>;
}

/**
 * The bytes of a file a person attached in Teams. A `contentUrl` on the activity's Bot Connector
 * or another Teams host is fetched with the bot's token (`Authorization: Bearer`, as Teams
 * requires for inline pictures); a redirect off those hosts drops the token and goes through
 * `safeGet`, as does any other URL (a file's pre-authorised `downloadUrl`, an https link: no
 * private addresses). Cards and the rich-text copy are not files.
 */
export async function fetchTeamsFile(
  a: Attachment,
  o: TeamsFileOptions,
): Promise<FetchedAttachment | undefined> {
  if (!a.url || !isTeamsFile(a)) return undefined;
  let url = new URL(a.url);
  const deadline = AbortSignal.timeout(o.timeoutMs);
  for (let hop = 0; a.type !== FILE_DOWNLOAD_INFO && needsBotToken(url, o.serviceUrl); hop++) {
    const token = await o.token?.();
    const res = await fetch(url, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      redirect: 'manual',
      signal: deadline,
    });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      if (hop >= MAX_REDIRECTS)
        throw new AttachmentFetchError('too many redirects for an attachment', { permanent: true });
      url = new URL(location, url);
      continue;
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw attachmentStatusError(res.status, `${url.host} answered ${res.status} for an attachment`);
    }
    return { body: res.body };
  }
  const got = await safeGet(url.href, { timeoutMs: o.timeoutMs, allowHosts: [] });
  return { body: got.body };
}
