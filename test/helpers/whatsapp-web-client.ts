import { EventEmitter } from 'node:events';
import wwebjs from 'whatsapp-web.js';
import type { WebClient, WebMedia, WebMessage, WebSendOptions } from '../../adapters/whatsapp/web/client.ts';

/** The library's own class: `sendMessage` tells media from text with `instanceof` on it, as here. */
const { MessageMedia } = wwebjs;

/** A file a person sends: what `downloadMedia()` hands over, as the library builds it. */
export function personMedia(bytes: Buffer, mimetype: string, filename?: string): WebMedia {
  return new MessageMedia(mimetype, bytes.toString('base64'), filename ?? null, bytes.length);
}

/** The linked account of every LocalWebClient: its phone number's id and its `@lid`. */
export const LINKED = { pn: '5511900000000@c.us', lid: '99887766554433@lid' };

/**
 * A local stand-in for whatsapp-web.js's `Client`: the same events and methods, driven by the
 * test. `initialize()` emits `qr` when the session is not linked yet, else `authenticated` and
 * `ready`, as the library does.
 */
export class LocalWebClient extends EventEmitter implements WebClient {
  readonly sent: {
    chatId: string;
    text: string;
    id: string;
    /** A `MessageMedia` sent: its type, name and bytes (decoded), with the send options. */
    media?: { mimetype: string; filename: string | null | undefined; bytes: Buffer; options: WebSendOptions };
  }[] = [];
  /** Media downloads the adapter asked for (`message.downloadMedia()`), by message id. */
  readonly downloads: string[] = [];
  /** Every `downloadMedia()` call, failed ones too, by message id. */
  readonly downloadAttempts: string[] = [];
  initialized = false;
  destroyed = false;
  /** As the library sets it before `ready`: the linked account's id (its phone number's). */
  readonly info = { wid: { server: 'c.us', user: LINKED.pn.split('@')[0], _serialized: LINKED.pn } };
  private n = 0;

  constructor(private readonly linked: boolean) {
    super();
  }

  async initialize(): Promise<void> {
    this.initialized = true;
    queueMicrotask(() => {
      if (!this.linked) {
        this.emit('qr', '2@local-test-pairing-code,abc,def');
        return;
      }
      this.emit('authenticated');
      this.emit('ready');
    });
  }

  async sendMessage(
    chatId: string,
    content: string | WebMedia,
    options: WebSendOptions = {},
  ): Promise<{ id: { _serialized: string } }> {
    if (this.destroyed) throw new Error('Protocol error: Session closed');
    const id = `true_${chatId}_LOCAL${++this.n}`;
    if (content instanceof MessageMedia) {
      const media = content as WebMedia;
      this.sent.push({
        chatId,
        text: '',
        id,
        media: {
          mimetype: media.mimetype,
          filename: media.filename,
          bytes: Buffer.from(media.data, 'base64'),
          options,
        },
      });
    } else if (typeof content === 'string') {
      this.sent.push({ chatId, text: content, id });
    } else {
      // The library sends a plain object as its string form: never what a bot meant.
      throw new Error('sendMessage got an object that is not a MessageMedia');
    }
    return { id: { _serialized: id } };
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
  }

  /** The library's lookup: a phone number's id gives its `@lid` (known for the linked account only); a `@lid` its number. */
  async getContactLidAndPhone(ids: string[]) {
    return ids.map((id) =>
      id.endsWith('@c.us')
        ? { ...(id === LINKED.pn ? { lid: LINKED.lid } : {}), pn: id }
        : { lid: id, pn: '5511966666666@c.us' },
    );
  }

  /** A person writes. */
  receive(message: Partial<WebMessage> & { from: string; body: string }): void {
    const id = `false_${message.from}_${Math.random().toString(16).slice(2)}`;
    this.emit('message', {
      id: { _serialized: id, fromMe: false },
      type: 'chat',
      timestamp: Math.floor(Date.now() / 1000),
      ...message,
    });
  }

  /**
   * A person sends a file, as the library reports it: `hasMedia`, the type in `type`, the caption
   * in `body`, the announced type, name and size in `_data`, and `downloadMedia()` for the bytes.
   */
  receiveMedia(
    from: string,
    media: WebMedia,
    kind: string,
    caption = '',
    options: {
      /**
       * What download number `attempt` (1 for the first) does instead of handing the media over:
       * an Error is thrown (the page failed), null resolves with nothing (as the library does for
       * media it cannot download now); undefined: the media comes.
       */
      fail?: (attempt: number) => Error | null | undefined;
    } = {},
  ): string {
    const id = `false_${from}_${Math.random().toString(16).slice(2)}`;
    const downloads = this.downloads;
    const attempts = this.downloadAttempts;
    let attempt = 0;
    this.emit('message', {
      id: { _serialized: id, fromMe: false },
      from,
      type: kind,
      body: caption,
      hasMedia: true,
      timestamp: Math.floor(Date.now() / 1000),
      _data: {
        notifyName: 'Ana',
        mimetype: media.mimetype,
        ...(media.filename ? { filename: media.filename } : {}),
        ...(media.filesize ? { size: media.filesize } : {}),
      },
      async downloadMedia() {
        attempts.push(id);
        const failure = options.fail?.(++attempt);
        if (failure === null) return undefined;
        if (failure) throw failure;
        downloads.push(id);
        return media;
      },
    } satisfies WebMessage);
    return id;
  }
}
