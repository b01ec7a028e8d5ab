import QRCode from 'qrcode';
import type { Bus } from '../../../src/bus/bus.ts';
import type { EnvelopeInput } from '../../../src/envelope.ts';
import { ATTACHMENT_RETRY_DELAYS_MS, attachmentRetryDelay } from '../../../src/files/fetch-attempts.ts';
import { AttachmentFetchError } from '../../../src/files/fetch-failure.ts';
import {
  AttachmentRetryError,
  type InboundFilesDeps,
  storeInboundAttachments,
} from '../../../src/files/inbound.ts';
import { tooLarge } from '../../../src/files/store.ts';
import type { Logger } from '../../../src/logger.ts';
import type { Ingress } from '../../../src/ports.ts';
import { backoffDelay } from '../../../src/queue/queue.ts';
import type { DeliveryStatus } from '../../../src/store/records.ts';
import type { NumberedChoices } from '../choices.ts';
import type { WebConfig } from '../config.ts';
import { ACK, toMessageMedia, type WebClient, type WebClientFactory, type WebMessage } from './client.ts';
import { webMessageToEnvelope } from './inbound.ts';
import { SEND_TOPIC, type SendAnswer, type SendRequest, SendRequestSchema } from './protocol.ts';

export const RECONNECT_BASE_MS = 1_000;
export const RECONNECT_CAP_MS = 60_000;
/** Sends remembered by key, so a request retried after a lost answer is answered, not resent. */
const SENT_MEMORY = 10_000;
/** Tries to hand an arriving message to the ingress before giving up (the library never redelivers). */
const ACCEPT_ATTEMPTS = 5;
const ACCEPT_RETRY_MS = 200;
const LID_CACHE_SIZE = 10_000;
/**
 * Longest wait for one `downloadMedia()` (the browser fetches and decrypts the whole file): past
 * it the try counts as failed for now, and the chat's later messages are not held behind it.
 */
export const MEDIA_DOWNLOAD_TIMEOUT_MS = 60_000;

class FileGoneError extends Error {
  override name = 'FileGoneError';
}

export type WebState =
  | 'stopped'
  | 'starting'
  | 'qr'
  | 'authenticated'
  | 'ready'
  | 'disconnected'
  | 'auth_failure';

export interface WebSessionDeps {
  config: WebConfig;
  factory: WebClientFactory;
  bus: Bus;
  ingress: Ingress;
  logger: Logger;
  bot: string;
  applyStatus(messageId: string, status: DeliveryStatus, error?: string): Promise<void>;
  /** Where the pairing QR code is drawn for an operator at the terminal. */
  terminal?: NodeJS.WritableStream;
  /** The file store and the bots' limits: what people send comes in, what bots send goes out. */
  files?: InboundFilesDeps;
  /** The numbered choices replies offered: a number typed in answer becomes the choice's value. */
  choices?: NumberedChoices;
  /**
   * A download that failed for now: tried again `attempts` times (ATTACHMENT_RETRY_ATTEMPTS),
   * after `delaysMs` (ATTACHMENT_RETRY_DELAYS_MS, the last repeating). Absent: 3, 1 s/5 s/30 s.
   */
  fileRetry?: { attempts: number; delaysMs: readonly number[] };
}

const ACK_STATUS: Record<number, DeliveryStatus | undefined> = {
  [ACK.ERROR]: 'failed',
  [ACK.SERVER]: 'sent',
  [ACK.DEVICE]: 'delivered',
  [ACK.READ]: 'read',
  [ACK.PLAYED]: 'read',
};

/**
 * The linked WhatsApp Web session, held by one gateway process: pairs (QR code), turns incoming
 * messages into envelopes, sends what any process asks over the bus, and reconnects with
 * backoff after a disconnect.
 */
export class WebSession {
  private client: WebClient | undefined;
  private current: { state: WebState; since: Date; qr?: string } = { state: 'stopped', since: new Date() };
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  private stopping = false;
  private readonly sent = new Map<string, string>();
  private readonly inFlight = new Map<string, Promise<string>>();
  private readonly lidToPhone = new Map<string, string>();
  /** The linked account's own ids (phone and `@lid`), looked up once per client: what group mentions name. */
  private self: { client: WebClient; ids: Promise<string[]> } | undefined;
  /** The last message of each chat still being handled: the next one waits for it (order). */
  private readonly chats = new Map<string, Promise<void>>();
  /** Ends the file retries' waits and downloads under way: the gateway is stopping. */
  private readonly onStop = new Set<() => void>();

  constructor(private readonly d: WebSessionDeps) {}

  get status(): { state: WebState; since: string; qr?: string } {
    return {
      state: this.current.state,
      since: this.current.since.toISOString(),
      ...(this.current.qr ? { qr: this.current.qr } : {}),
    };
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.unsubscribe = await this.d.bus.subscribe(SEND_TOPIC, (message) => void this.onSendRequest(message));
    // Launching a browser takes seconds and pairing waits for a person: the hub does not wait for it.
    void this.connect();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    // The library never redelivers a message: one waiting for its file's retry goes on now, the
    // file refused as unavailable (the person is told), rather than being lost with this process.
    for (const wake of [...this.onStop]) wake();
    await Promise.allSettled([...this.chats.values()]);
    await this.unsubscribe?.().catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    this.setState('stopped');
    await client?.destroy().catch(() => undefined);
  }

  /** Readiness: fine while linked, and while waiting for an operator to scan the QR code. */
  ping(): void {
    const { state } = this.current;
    if (state !== 'ready' && state !== 'qr' && state !== 'authenticated')
      throw new Error(`WhatsApp Web is ${state}`);
  }

  private setState(state: WebState, qr?: string): void {
    this.current = { state, since: new Date(), ...(qr ? { qr } : {}) };
  }

  private async connect(): Promise<void> {
    if (this.stopping) return;
    this.setState('starting');
    let client: WebClient;
    try {
      client = await this.d.factory();
    } catch (err) {
      this.d.logger.error({ event: 'whatsapp.web_client_failed', err: (err as Error).message });
      this.scheduleReconnect();
      return;
    }
    this.client = client;
    const mine = () => this.client === client && !this.stopping;
    client.on('qr', (qr) => {
      if (!mine()) return;
      this.setState('qr', qr);
      this.d.logger.info({
        event: 'whatsapp.web_qr',
        hint: 'scan the QR code with WhatsApp > Linked devices',
      });
      void this.drawQr(qr);
    });
    client.on('authenticated', () => {
      if (mine()) this.setState('authenticated');
    });
    client.on('auth_failure', (message) => {
      if (!mine()) return;
      this.setState('auth_failure');
      this.d.logger.error({ event: 'whatsapp.web_auth_failure', err: message });
    });
    client.on('ready', () => {
      if (!mine()) return;
      this.attempt = 0;
      this.setState('ready');
      this.d.logger.info({ event: 'whatsapp.web_ready' });
    });
    client.on('message', (message) => {
      if (mine()) this.inChatOrder(message.from, () => this.onMessage(client, message));
    });
    client.on('message_ack', (message, ack) => {
      const status = ACK_STATUS[ack];
      if (!mine() || !status || status === 'sent') return;
      this.d
        .applyStatus(message.id._serialized, status)
        .catch((err: Error) => this.d.logger.warn({ event: 'whatsapp.web_status_failed', err: err.message }));
    });
    client.on('disconnected', (reason) => {
      if (!mine()) return;
      this.d.logger.warn({ event: 'whatsapp.web_disconnected', reason });
      this.setState('disconnected');
      this.client = undefined;
      void client.destroy().catch(() => undefined);
      this.scheduleReconnect();
    });
    try {
      await client.initialize();
    } catch (err) {
      if (!mine()) return;
      this.d.logger.error({ event: 'whatsapp.web_initialize_failed', err: (err as Error).message });
      this.setState('disconnected');
      this.client = undefined;
      await client.destroy().catch(() => undefined);
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.stopping) return;
    const delay = Math.max(100, backoffDelay(this.attempt, RECONNECT_BASE_MS, RECONNECT_CAP_MS));
    this.attempt++;
    this.d.logger.info({ event: 'whatsapp.web_reconnect', inMs: delay, attempt: this.attempt });
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  private async drawQr(qr: string): Promise<void> {
    try {
      const drawing = await QRCode.toString(qr, { type: 'terminal', small: true });
      (this.d.terminal ?? process.stderr).write(
        `\nWhatsApp Web: scan this with WhatsApp > Linked devices\n${drawing}\n`,
      );
    } catch (err) {
      this.d.logger.warn({ event: 'whatsapp.web_qr_draw_failed', err: (err as Error).message });
    }
  }

  /**
   * Runs a chat's messages one after the other, as they arrived: a file being downloaded (or
   * waiting for its retry) holds back the text sent after it, so the session sees them in order.
   * Other chats go on. The wait is bounded: the download's tries and the delays between them.
   */
  private inChatOrder(chat: string, task: () => Promise<void>): void {
    const previous = this.chats.get(chat) ?? Promise.resolve();
    const next = previous
      .then(task)
      .catch((err: unknown) =>
        this.d.logger.error({ event: 'whatsapp.web_message_failed', err: (err as Error).message }),
      );
    this.chats.set(chat, next);
    void next.finally(() => {
      if (this.chats.get(chat) === next) this.chats.delete(chat);
    });
  }

  private async onMessage(client: WebClient, message: WebMessage): Promise<void> {
    const { logger } = this.d;
    const inGroup = message.from.endsWith('@g.us') && this.d.config.groups !== 'ignore';
    const options = {
      bot: this.d.bot,
      groups: this.d.config.groups,
      phoneOf: (lid: string) => this.lidToPhone.get(lid),
      ...(inGroup ? { self: await this.selfIds(client) } : {}),
    };
    let result = webMessageToEnvelope(message, options);
    if (result.kind === 'needs_phone') {
      await this.lookUpLid(client, result.lid);
      result = webMessageToEnvelope(message, options);
    }
    if (result.kind !== 'envelope') {
      logger.debug({
        event: 'whatsapp.web_message_ignored',
        reason: result.kind === 'ignored' ? result.reason : 'lid',
      });
      return;
    }
    // Only this process holds the client that can fetch the bytes, and the library never
    // redelivers a message: they are stored before the message is handed on.
    let envelope =
      message.hasMedia && this.d.files
        ? await this.storeMedia(message, result.envelope, this.d.files)
        : result.envelope;
    if (this.d.choices) envelope = await this.d.choices.answer(envelope);
    for (let attempt = 1; ; attempt++) {
      try {
        const accepted = await this.d.ingress.accept(envelope);
        logger.debug({
          event: 'whatsapp.web_message',
          envelopeId: accepted.envelopeId,
          status: accepted.status,
        });
        return;
      } catch (err) {
        if (attempt >= ACCEPT_ATTEMPTS) {
          logger.error({
            event: 'whatsapp.web_message_lost',
            envelopeId: envelope.id,
            err: (err as Error).message,
          });
          return;
        }
        await new Promise((r) => setTimeout(r, ACCEPT_RETRY_MS * attempt));
      }
    }
  }

  /**
   * A photo, voice note or document a person sent: `downloadMedia()` (the library hands over the
   * whole file, base64), sniffed and stored within the bot's limits. A file WhatsApp announces as
   * larger than the limit is refused without downloading it.
   *
   * The library never redelivers a message, and only this process holds the client that can
   * fetch the bytes: a download that failed for now (the library threw, timed out, or handed
   * nothing over: media still being fetched or re-uploaded) is tried again here, after
   * `fileRetry.delaysMs`, as the queue does for the other channels. When the tries run out, or
   * the failure cannot pass (a 404 or 403 the library reports), the message goes on without the
   * file and the person is told (`refusedAttachments`, the bot's `fileUnavailableNotice`).
   */
  private async storeMedia(
    message: WebMessage,
    envelope: EnvelopeInput,
    files: InboundFilesDeps,
  ): Promise<EnvelopeInput> {
    const { maxFileBytes } = files.rules(envelope.bot, envelope.channel);
    const retry = this.d.fileRetry ?? { attempts: 3, delaysMs: ATTACHMENT_RETRY_DELAYS_MS };
    const download = message.downloadMedia?.bind(message);
    const source = async (a: { size?: number; name?: string }) => {
      if (a.size !== undefined && a.size > maxFileBytes) throw tooLarge(a.name ?? 'the file', maxFileBytes);
      if (!download) return undefined;
      if (this.stopping)
        throw new AttachmentFetchError('the gateway stopped before the file came', { permanent: false });
      const media = await this.untilStopped(withTimeout(download(), MEDIA_DOWNLOAD_TIMEOUT_MS));
      if (!media)
        throw new AttachmentFetchError('WhatsApp Web handed no media over (not downloadable now)', {
          permanent: false,
        });
      return {
        body: [Buffer.from(media.data, 'base64')],
        ...(media.filename ? { name: media.filename } : {}),
      };
    };
    for (let failures = 0; ; ) {
      const last = failures >= retry.attempts || this.stopping;
      try {
        return await storeInboundAttachments(files, envelope, source, {
          transient: last ? 'refuse' : 'retry',
        });
      } catch (err) {
        // The file store failed (its database away): tried again like a download; after the last
        // try the message goes on with the file refused as unavailable, the person told.
        const storeFailed = !(err instanceof AttachmentRetryError);
        if (storeFailed && last) return refuseAsUnavailable(files, envelope, err);
        failures++;
        const inMs = attachmentRetryDelay(failures, retry.delaysMs);
        this.d.logger.warn({
          event: storeFailed ? 'file.inbound_store_retry' : 'file.inbound_fetch_retry',
          envelopeId: envelope.id,
          channel: envelope.channel,
          failures,
          retriesLeft: retry.attempts - failures,
          retryInMs: inMs,
          err: (err as Error).message,
        });
        files.metrics?.inboundFileFailures.inc({ channel: envelope.channel, outcome: 'retry' });
        await this.untilStopped(new Promise((r) => setTimeout(r, inMs).unref()));
      }
    }
  }

  /** What `promise` gives, or undefined once the gateway stops (whichever comes first). */
  private untilStopped<T>(promise: Promise<T>): Promise<T | undefined> {
    let wake!: () => void;
    const stopped = new Promise<undefined>((resolve) => {
      wake = () => resolve(undefined);
    });
    if (this.stopping) wake();
    this.onStop.add(wake);
    return Promise.race([promise, stopped]).finally(() => this.onStop.delete(wake));
  }

  /**
   * The linked account's ids: `info.wid` (its phone number's id, else its `@lid`) and the other
   * of the two, which the library looks up. Groups mostly address people by `@lid` now, so a
   * mention of the account or a reply to it can name either. A failed lookup is tried again on
   * the next group message.
   */
  private selfIds(client: WebClient): Promise<string[]> {
    if (this.self?.client === client) return this.self.ids;
    const lookup = this.lookUpSelf(client);
    const ids = lookup.then((r) => r.ids);
    this.self = { client, ids };
    void lookup.then((r) => {
      if (!r.complete && this.self?.ids === ids) this.self = undefined;
    });
    return ids;
  }

  private async lookUpSelf(client: WebClient): Promise<{ ids: string[]; complete: boolean }> {
    const wid = client.info?.wid?._serialized;
    if (!wid) return { ids: [], complete: false };
    const found = new Set([wid]);
    if (!client.getContactLidAndPhone) return { ids: [...found], complete: true };
    try {
      const [both] = await client.getContactLidAndPhone([wid]);
      if (both?.lid) found.add(both.lid);
      if (both?.pn) found.add(both.pn);
      return { ids: [...found], complete: true };
    } catch (err) {
      this.d.logger.warn({ event: 'whatsapp.web_lid_lookup_failed', err: (err as Error).message });
      return { ids: [...found], complete: false };
    }
  }

  private async lookUpLid(client: WebClient, lid: string): Promise<void> {
    if (!client.getContactLidAndPhone) return;
    try {
      const [found] = await client.getContactLidAndPhone([lid]);
      if (found?.pn) {
        if (this.lidToPhone.size >= LID_CACHE_SIZE) this.lidToPhone.clear();
        this.lidToPhone.set(lid, found.pn);
      }
    } catch (err) {
      this.d.logger.warn({ event: 'whatsapp.web_lid_lookup_failed', err: (err as Error).message });
    }
  }

  private async onSendRequest(message: unknown): Promise<void> {
    const parsed = SendRequestSchema.safeParse(message);
    if (!parsed.success) {
      this.d.logger.warn({ event: 'whatsapp.web_bad_request' });
      return;
    }
    const request = parsed.data;
    let answer: SendAnswer;
    try {
      const messageId = await this.sendOnce(request);
      answer = { type: 'whatsapp-web.sent', requestId: request.requestId, ok: true, messageId };
    } catch (err) {
      // Not linked yet, or the browser failed: the delivery tries again later, up to its limit.
      // A file that is gone will not come back.
      answer = {
        type: 'whatsapp-web.sent',
        requestId: request.requestId,
        ok: false,
        error: (err as Error).message,
        retryable: !(err instanceof FileGoneError),
      };
    }
    await this.d.bus
      .publish(request.replyTopic, answer)
      .catch((err: Error) => this.d.logger.warn({ event: 'whatsapp.web_answer_failed', err: err.message }));
  }

  /**
   * A bot's file (SHOW IMAGE, SEND FILE) as a `MessageMedia` with its caption: pictures and videos
   * shown as such, anything else as a document with its name. The library takes the whole file.
   */
  private async sendFile(client: WebClient, request: SendRequest, fileId: string) {
    const store = this.d.files?.files;
    const file = await store?.get(fileId);
    if (!store || !file) throw new FileGoneError(`file ${fileId} is not in the store`);
    const media = await toMessageMedia({ type: file.type, name: file.name, bytes: await store.bytes(file) });
    const viewable = /^(image\/(png|jpeg|gif|webp)|video\/mp4)$/.test(file.type);
    return client.sendMessage(request.chatId, media, {
      ...(request.text.trim() ? { caption: request.text } : {}),
      ...(viewable ? {} : { sendMediaAsDocument: true }),
    });
  }

  private sendOnce(request: SendRequest): Promise<string> {
    const done = this.sent.get(request.key);
    if (done) return Promise.resolve(done);
    const pending = this.inFlight.get(request.key);
    if (pending) return pending;
    const client = this.client;
    if (!client || this.current.state !== 'ready')
      return Promise.reject(new Error(`WhatsApp Web is not connected (${this.current.state})`));
    const sending = (
      request.file
        ? this.sendFile(client, request, request.file.fileId)
        : client.sendMessage(request.chatId, request.text)
    ).then((sent) => {
      const id = sent.id._serialized;
      if (this.sent.size >= SENT_MEMORY) {
        const oldest = this.sent.keys().next().value;
        if (oldest !== undefined) this.sent.delete(oldest);
      }
      this.sent.set(request.key, id);
      return id;
    });
    this.inFlight.set(request.key, sending);
    void sending.finally(() => this.inFlight.delete(request.key)).catch(() => undefined);
    return sending;
  }
}

class DownloadTimeoutError extends Error {
  override name = 'DownloadTimeoutError';
}

/** The promise, or a DownloadTimeoutError (a failure that may pass) after `ms`. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DownloadTimeoutError(`downloadMedia() took over ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * The envelope with its files not yet stored refused as unavailable (the bot's
 * `fileUnavailableNotice`, logged `file.inbound_unavailable` and counted as any file that did not
 * come): the file store failed on the last try, and the message must not wait longer.
 */
function refuseAsUnavailable(
  files: InboundFilesDeps,
  envelope: EnvelopeInput,
  err: unknown,
): Promise<EnvelopeInput> {
  const cause = new AttachmentFetchError(`the file store failed: ${(err as Error).message}`, {
    permanent: false,
  });
  return storeInboundAttachments(files, envelope, async () => {
    throw cause;
  });
}
