import fs from 'node:fs/promises';
import type { WebConfig } from '../config.ts';

/** The parts of a whatsapp-web.js `Message` the channel reads. */
export interface WebMessage {
  id: { _serialized: string; fromMe?: boolean };
  /** The chat: `5511999999999@c.us`, `<lid>@lid`, a group `...@g.us`, or `status@broadcast`. */
  from: string;
  to?: string;
  /** In a group: who wrote it. */
  author?: string;
  body: string;
  type: string;
  /** Seconds since the epoch. */
  timestamp?: number;
  fromMe?: boolean;
  isStatus?: boolean;
  hasMedia?: boolean;
  /** Who the message @mentions (`…@c.us` or `…@lid`; the library passes the page's ids, strings or `{_serialized}`). */
  mentionedIds?: WebId[];
  /**
   * A `location` message's place (the library's `Location`, from the page's `lat`, `lng`, `loc`
   * and `clientUrl`). Its `body` is then the map's JPEG thumbnail in base64, not words.
   */
  location?: { latitude?: unknown; longitude?: unknown; name?: unknown; address?: unknown; url?: unknown };
  /**
   * The raw message: the sender's name, a media message's type, file name and size as announced,
   * and, for a reply, who wrote the message it quotes.
   */
  _data?: {
    notifyName?: string;
    mimetype?: string;
    filename?: string;
    size?: number;
    quotedParticipant?: WebId;
  };
  /** A media message's bytes (base64, whole), or undefined when WhatsApp no longer has them. */
  downloadMedia?(): Promise<WebMedia | undefined>;
}

/** An id as the library hands it over from the page: a string, or a serialised `Wid`. */
export type WebId = string | { _serialized?: string };

/** whatsapp-web.js's `MessageMedia`: a file as the library carries it (base64, in memory). */
export interface WebMedia {
  mimetype: string;
  data: string;
  filename?: string | null;
  filesize?: number | null;
}

/** What `sendMessage` takes beside the content (the library's `MessageSendOptions`, the part we use). */
export interface WebSendOptions {
  caption?: string;
  /** Sends an image or video as a file, not as a picture to view. */
  sendMediaAsDocument?: boolean;
}

/** whatsapp-web.js ACK levels of a message we sent. */
export const ACK = { ERROR: -1, PENDING: 0, SERVER: 1, DEVICE: 2, READ: 3, PLAYED: 4 } as const;

/**
 * The parts of whatsapp-web.js's `Client` the channel uses. The adapter receives a factory of
 * these, so the same code runs against the real client and against a local object in tests.
 */
export interface WebClient {
  on(event: 'qr', listener: (qr: string) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  on(event: 'authenticated', listener: () => void): unknown;
  on(event: 'auth_failure', listener: (message: string) => void): unknown;
  on(event: 'message', listener: (message: WebMessage) => void): unknown;
  on(event: 'message_ack', listener: (message: WebMessage, ack: number) => void): unknown;
  on(event: 'disconnected', listener: (reason: string) => void): unknown;
  /** Set once ready: the linked account's own id (`wid`, its phone number's, else its `@lid`). */
  info?: { wid?: { _serialized?: string } };
  initialize(): Promise<void>;
  /** Text, or a `MessageMedia` (which must be the library's own class: it checks with `instanceof`). */
  sendMessage(
    chatId: string,
    content: string | WebMedia,
    options?: WebSendOptions,
  ): Promise<{ id: { _serialized: string } }>;
  destroy(): Promise<void>;
  /** Resolves a `@lid` chat to the person's phone number, where the library can. */
  getContactLidAndPhone?(ids: string[]): Promise<{ lid?: string; pn?: string }[]>;
}

export type WebClientFactory = () => WebClient | Promise<WebClient>;

type MessageMediaClass = new (
  mimetype: string,
  data: string,
  filename?: string | null,
  filesize?: number | null,
) => WebMedia;
let messageMedia: Promise<MessageMediaClass> | undefined;

/**
 * A `MessageMedia` of whatsapp-web.js for a file: `sendMessage` recognises media only as an
 * instance of the library's class, so it is made with that class (loaded on the first file).
 */
export async function toMessageMedia(file: { type: string; bytes: Buffer; name: string }): Promise<WebMedia> {
  messageMedia ??= import('whatsapp-web.js').then((m) => {
    const lib = (m as unknown as { default?: { MessageMedia: MessageMediaClass } }).default ?? m;
    return (lib as unknown as { MessageMedia: MessageMediaClass }).MessageMedia;
  });
  const MessageMedia = await messageMedia;
  return new MessageMedia(file.type, file.bytes.toString('base64'), file.name, file.bytes.length);
}

/**
 * The production client: whatsapp-web.js driving the system's Chromium, its linked session kept
 * by LocalAuth under DATA_DIR. Imported only when WhatsApp Web is turned on.
 */
export function realWebClientFactory(config: WebConfig): WebClientFactory {
  return async () => {
    await fs.mkdir(config.authDir, { recursive: true });
    const wwebjs = await import('whatsapp-web.js');
    const { Client, LocalAuth } = (wwebjs as unknown as { default?: typeof wwebjs }).default ?? wwebjs;
    const client = new Client({
      authStrategy: new LocalAuth({ clientId: config.clientId, dataPath: config.authDir }),
      puppeteer: {
        executablePath: config.chromiumPath,
        headless: true,
        // Chromium's sandbox needs user namespaces, which containers rarely grant.
        args: ['--no-sandbox', '--disable-setuid-sandbox', '--disable-dev-shm-usage'],
      },
    });
    return client as unknown as WebClient;
  };
}
