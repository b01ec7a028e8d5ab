import { ImapFlow, type ImapFlowOptions, type MessageStructureObject } from 'imapflow';
import type { ChannelQueryable } from '../../src/channels/declaration.ts';
import { errorMessage, isTransient } from '../../src/errors.ts';
import type { Logger } from '../../src/logger.ts';
import { backoffDelay } from '../../src/queue/queue.ts';
import { cleanText } from '../../src/text.ts';
import { ACCESS_TOKEN_FILE_ERROR, readAccessToken } from './access-token.ts';
import type { EmailConfig, MailboxSpec } from './config.ts';
import { firstScan } from './first-scan.ts';
import type { InboundMail, UnreadAttachment } from './inbound.ts';
import {
  type MailAt,
  mailboxState,
  mailFailure,
  recordMailFailure,
  recordMailSetAside,
  saveMailboxState,
} from './store.ts';

export const RECONNECT_BASE_MS = 1_000;
export const RECONNECT_MIN_MS = 250;
export const RECONNECT_CAP_MS = 60_000;
/** IDLE reports new mail at once; this re-check catches a notification a server failed to send. */
export const RESYNC_EVERY_MS = 60_000;
/** IDLE is restarted this often: some servers and NAT boxes drop connections idle for 30 minutes. */
export const MAX_IDLE_MS = 5 * 60_000;
/** A failed sync is tried again after a backoff from this, up to RESYNC_EVERY_MS. */
export const SYNC_RETRY_BASE_MS = 1_000;
/** Marks a failure to fetch a mail whole (in `email_failures.reason`), apart from a failure to handle it. */
const FETCH_FAILED = 'fetch failed: ';
/** The longest reason kept for a failed mail. */
const MAX_REASON_LENGTH = 1_000;
const CONNECT_TIMEOUT_MS = 30_000;
const LOGOUT_TIMEOUT_MS = 5_000;

export interface WatcherEvents {
  connected(mailbox: string): void;
  disconnected(mailbox: string): void;
}

/**
 * One IMAP connection watching one folder: it reads new mail by UID, hands each mail to the
 * inbound processor, marks it processed (\Seen, or moved to the processed folder) only once it is
 * durably accepted, and remembers the last UID handled under the folder's UIDVALIDITY in
 * PostgreSQL. It waits with IDLE, and reconnects with backoff when the connection drops.
 *
 * A mail that cannot be handled never stops the mailbox: one that fails `maxFailures` times for a
 * reason of its own (not the database or the queue being away), or that can never be used (no
 * sender, unparseable), is set aside: flagged, moved to the unusable folder when one is set,
 * recorded with the reason in `email_failures`, and the mail after it is read.
 */
export class MailboxWatcher {
  /** `user@host:port/folder`: the key of this mailbox's state row. */
  readonly key: string;
  private client: ImapFlow | undefined;
  private connected = false;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private wake: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private syncFailures = 0;

  constructor(
    private readonly spec: MailboxSpec,
    private readonly o: {
      config: EmailConfig;
      store: ChannelQueryable;
      inbound: InboundMail;
      logger: Logger;
      events?: WatcherEvents;
    },
  ) {
    const { imap } = o.config;
    this.key = `${imap.user}@${imap.host}:${imap.port}/${spec.folder}`.toLowerCase();
  }

  get isConnected(): boolean {
    return this.connected && this.client?.usable === true;
  }

  start(): void {
    this.stopping = false;
    this.loop ??= this.run().finally(() => {
      this.loop = undefined;
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    clearTimeout(this.retryTimer);
    await this.syncing?.catch(() => undefined);
    const client = this.client;
    if (client?.usable) {
      await Promise.race([
        client.logout().catch(() => undefined),
        new Promise((r) => setTimeout(r, LOGOUT_TIMEOUT_MS).unref()),
      ]);
    }
    client?.close();
    await this.loop;
  }

  private log(level: 'info' | 'warn' | 'error' | 'debug', fields: Record<string, unknown>) {
    this.o.logger[level]({ mailbox: this.spec.folder, ...fields });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      let client: ImapFlow | undefined;
      try {
        const options = await this.clientOptions();
        // Stopped while the token was read: `stop` closed the client it knew, not this one.
        if (this.stopping) break;
        client = new ImapFlow(options);
        this.client = client;
        const closed = new Promise<void>((resolve) => client?.once('close', () => resolve()));
        client.on('error', (err: Error) => this.log('warn', { event: 'email.imap_error', err: err.message }));
        await client.connect();
        await client.mailboxOpen(this.spec.folder);
        for (const folder of [this.o.config.processedFolder, this.o.config.unusableFolder])
          if (folder) await this.ensureFolder(client, folder);
        failures = 0;
        this.connected = true;
        this.o.events?.connected(this.key);
        this.log('info', {
          event: 'email.imap_connected',
          uidValidity: client.mailbox ? Number(client.mailbox.uidValidity) : undefined,
        });
        const connected = client;
        client.on('exists', () => this.requestSync(connected));
        this.resyncTimer = setInterval(() => this.requestSync(connected), RESYNC_EVERY_MS);
        this.resyncTimer.unref();
        this.requestSync(client);
        await closed;
      } catch (err) {
        // A refused login (an expired token, a changed password) or a token file that cannot be
        // read fails every reconnection until someone fixes it: said at error.
        const e = err as { message: string; authenticationFailed?: boolean; code?: string };
        const credentials = e.authenticationFailed === true || e.code === ACCESS_TOKEN_FILE_ERROR;
        this.log(this.stopping ? 'debug' : credentials ? 'error' : 'warn', {
          event: 'email.imap_connect_failed',
          ...(credentials ? { credentials } : {}),
          err: e.message,
        });
        client?.close();
      } finally {
        if (this.resyncTimer) clearInterval(this.resyncTimer);
        this.resyncTimer = undefined;
        clearTimeout(this.retryTimer);
        if (this.connected) {
          this.connected = false;
          this.o.events?.disconnected(this.key);
          if (!this.stopping) this.log('warn', { event: 'email.imap_disconnected' });
        }
      }
      await this.syncing?.catch(() => undefined);
      if (this.stopping) break;
      failures++;
      const delay = Math.max(RECONNECT_MIN_MS, backoffDelay(failures, RECONNECT_BASE_MS, RECONNECT_CAP_MS));
      this.log('info', { event: 'email.imap_reconnect', inMs: delay, attempt: failures });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** The connection's options; a token from EMAIL_IMAP_ACCESS_TOKEN_FILE is read again for each connection. */
  private async clientOptions(): Promise<ImapFlowOptions> {
    const { imap } = this.o.config;
    const accessToken = imap.accessTokenFile ? await readAccessToken(imap.accessTokenFile) : imap.accessToken;
    return {
      host: imap.host,
      port: imap.port,
      secure: imap.tls === 'implicit',
      ...(imap.tls === 'starttls' ? { doSTARTTLS: true } : {}),
      ...(imap.tls === 'none' ? { doSTARTTLS: false } : {}),
      auth: accessToken ? { user: imap.user, accessToken } : { user: imap.user, pass: imap.password ?? '' },
      logger: false,
      // IDLE starts right after each sync (below), not after imapflow's inactivity delay, so new
      // mail is reported at once.
      disableAutoIdle: true,
      maxIdleTime: MAX_IDLE_MS,
      connectionTimeout: CONNECT_TIMEOUT_MS,
      clientInfo: { name: 'switchboard' },
    };
  }

  private async ensureFolder(client: ImapFlow, folder: string): Promise<void> {
    const listed = await client.list();
    if (!listed.some((m) => m.path === folder)) await client.mailboxCreate(folder);
  }

  /** Runs a sync now, or once more after the running one when mail arrives meanwhile. */
  private requestSync(client: ImapFlow): void {
    if (this.stopping || client !== this.client) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = (async () => {
      do {
        this.syncAgain = false;
        try {
          await this.sync(client);
          this.syncFailures = 0;
        } catch (err) {
          // Tried again from the stored UID after a backoff (or sooner: new mail, a reconnect).
          this.syncFailures++;
          const inMs = Math.max(
            RECONNECT_MIN_MS,
            backoffDelay(this.syncFailures, SYNC_RETRY_BASE_MS, RESYNC_EVERY_MS),
          );
          this.log('warn', { event: 'email.sync_failed', err: errorMessage(err), retryInMs: inMs });
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => this.requestSync(client), inMs);
          this.retryTimer.unref();
          return;
        }
      } while (this.syncAgain && !this.stopping && client.usable);
    })().finally(() => {
      this.syncing = undefined;
      // Wait for the server to report new mail. The next command (a sync) breaks IDLE itself.
      if (!this.stopping && client.usable)
        client
          .idle()
          .catch((err: Error) => this.log('debug', { event: 'email.idle_ended', err: err.message }));
    });
  }

  /**
   * Handles every mail not handled yet. Normally that is every UID above the stored one. With no
   * stored state (first start) or a changed UIDVALIDITY (the server renumbered the folder), the
   * stored UID means nothing: the folder's unprocessed mail (unread ones, or all when processed
   * mail is moved away) is a backlog of any age, of which the first-scan policy picks what is
   * answered (by default the last day's); the rest is left untouched and counted. Mail already
   * recorded is skipped by its Message-ID.
   */
  private async sync(client: ImapFlow): Promise<void> {
    const box = client.mailbox;
    if (!box || !client.usable) return;
    const uidValidity = Number(box.uidValidity);
    const state = await mailboxState(this.o.store, this.key);
    let uids: number[];
    let scanUpTo: number | undefined;
    if (!state || state.uidValidity !== uidValidity) {
      // Every UID below UIDNEXT existed when the folder was selected; later mail gets a higher UID
      // and is read by the incremental passes that follow.
      scanUpTo = Number(box.uidNext) - 1;
      const policy = this.o.config.firstScan;
      const scan = await firstScan(client, {
        scanUpTo,
        unprocessed: this.o.config.processedFolder ? { all: true } : { seen: false },
        policy,
        now: Date.now(),
      });
      uids = scan.answer;
      this.log('info', {
        event: state ? 'email.uidvalidity_changed' : 'email.first_scan',
        uidValidity,
        previousUidValidity: state?.uidValidity,
        candidates: uids.length,
      });
      if (scan.skipped > 0)
        this.log('warn', {
          event: 'email.backlog_skipped',
          count: scan.skipped,
          policy: policy.mode,
          ...(scan.cutoff ? { arrivedBefore: scan.cutoff.toISOString() } : {}),
        });
    } else {
      const found = (await client.search({ uid: `${state.lastUid + 1}:*` }, { uid: true })) || [];
      // `n:*` always includes the highest UID, even one below n.
      uids = found.filter((uid) => uid > state.lastUid);
    }
    uids.sort((a, b) => a - b);
    for (const uid of uids) {
      if (this.stopping || !client.usable) return;
      await this.handle(client, uid, uidValidity);
      if (scanUpTo === undefined)
        await saveMailboxState(this.o.store, this.key, { uidValidity, lastUid: uid });
    }
    if (scanUpTo !== undefined)
      await saveMailboxState(this.o.store, this.key, { uidValidity, lastUid: scanUpTo });
  }

  private async handle(client: ImapFlow, uid: number, uidValidity: number): Promise<void> {
    const at: MailAt = { mailbox: this.key, uidValidity, uid };
    const location = { mailbox: this.key, folder: this.spec.folder, bot: this.spec.bot, uidValidity, uid };
    const { maxFailures } = this.o.config;
    // A mail whose whole fetch failed `maxFailures` times is read without its attachments' bytes
    // (fetches and handling are counted apart: one does not spend the other's tries).
    const earlier = await mailFailure(this.o.store, at);
    const fetchGaveUp = (earlier?.fetchFailures ?? 0) >= maxFailures;
    let read: { source: Buffer; unread: UnreadAttachment[] } | undefined;
    try {
      // Over EMAIL_MAX_MAIL_BYTES a mail is read as one whose fetch gave up: a whole fetch would
      // hold every byte of it in memory (and parse it there), whatever size its sender chose.
      const tooLarge = !fetchGaveUp && (await this.tooLarge(client, uid));
      read =
        fetchGaveUp || tooLarge
          ? await this.readWithoutAttachments(client, uid)
          : await this.readWhole(client, uid);
    } catch (err) {
      // The connection dropped midway, a timeout, the server's error for this mail: the sync
      // fails and reads the mail again after its backoff, on this connection or the next. The
      // failures are counted for this mail (in PostgreSQL): after `maxFailures` the mail is read
      // without its attachments, and the person is told to send them again; if even that fails
      // `maxFailures` more times, the mail is set aside for a person.
      const reason = cleanText(`${FETCH_FAILED}${errorMessage(err)}`).slice(0, MAX_REASON_LENGTH);
      const failures = await recordMailFailure(this.o.store, at, { kind: 'fetch', reason });
      this.log('warn', {
        event: 'email.fetch_failed',
        uid,
        failures,
        maxFailures,
        withoutAttachments: fetchGaveUp,
        err: reason,
      });
      if (fetchGaveUp && failures >= 2 * maxFailures && client.usable) {
        await this.setAside(client, at, `could not be fetched ${failures} times: ${reason}`);
        return;
      }
      throw err;
    }
    if (!read) {
      // Not even its header and text came back: the mail was expunged meanwhile (or the server
      // will not hand it over at all); moved past, and said.
      this.log('warn', { event: 'email.message_gone', uid, fetchFailures: earlier?.fetchFailures ?? 0 });
      return;
    }
    const { source } = read;
    let outcome: Awaited<ReturnType<InboundMail['process']>>;
    try {
      outcome = await this.o.inbound.process(source, location, read.unread);
    } catch (err) {
      // The database or the queue being away is nobody's mail's fault: retried, never counted.
      if (isTransient(err)) throw err;
      const reason = cleanText(errorMessage(err)).slice(0, MAX_REASON_LENGTH);
      const failures = await recordMailFailure(this.o.store, at, { kind: 'handle', reason });
      this.log('warn', { event: 'email.message_failed', uid, failures, maxFailures, err: reason });
      if (failures < maxFailures) throw err;
      await this.setAside(client, at, `failed ${failures} times: ${reason}`);
      return;
    }
    if (outcome.status === 'unusable') {
      await this.setAside(client, at, outcome.reason);
      return;
    }
    const { processedFolder } = this.o.config;
    if (processedFolder) await client.messageMove(String(uid), processedFolder, { uid: true });
    else await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true });
  }

  /** Whether the mail is larger on the server (RFC822.SIZE) than EMAIL_MAX_MAIL_BYTES; logged when it is. */
  private async tooLarge(client: ImapFlow, uid: number): Promise<boolean> {
    const message = await client.fetchOne(String(uid), { size: true }, { uid: true });
    const size = message ? message.size : undefined;
    const max = this.o.config.maxMailBytes;
    if (size === undefined || size <= max) return false;
    this.log('warn', { event: 'email.mail_too_large', uid, size, maxMailBytes: max });
    return true;
  }

  /**
   * The mail whole (`BODY[]`): its attachments are in these bytes. A fetch that brings no body
   * (the mail expunged meanwhile, or a server that did not send it) is a failed fetch, counted as
   * one: after `maxFailures` the mail is read without its attachments, or found gone.
   */
  private async readWhole(
    client: ImapFlow,
    uid: number,
  ): Promise<{ source: Buffer; unread: UnreadAttachment[] }> {
    const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
    const source = message ? message.source : undefined;
    if (!source)
      throw new Error(message ? 'the server sent the mail without its body' : 'the server sent no mail');
    return { source, unread: [] };
  }

  /**
   * A mail that could not be fetched whole: its header and its text part only (the parts that
   * are not attachments, found in BODYSTRUCTURE), put together as a plain text mail with the
   * same header, and the attachments it lists, to be told as unavailable.
   */
  private async readWithoutAttachments(
    client: ImapFlow,
    uid: number,
  ): Promise<{ source: Buffer; unread: UnreadAttachment[] } | undefined> {
    const message = await client.fetchOne(String(uid), { headers: true, bodyStructure: true }, { uid: true });
    // `false`: expunged meanwhile.
    const headers = message ? message.headers : undefined;
    const structure = message ? message.bodyStructure : undefined;
    if (!headers || !structure) return undefined;
    const { text, attachments } = splitStructure(structure);
    let body = '';
    if (text) {
      // The text part's size is its sender's choice too: read up to EMAIL_MAX_MAIL_BYTES of it.
      const max = this.o.config.maxMailBytes;
      const { content } = await client.download(String(uid), text.part ?? '1', {
        uid: true,
        maxBytes: max,
      });
      const chunks: Buffer[] = [];
      let bytes = 0;
      if (content)
        for await (const chunk of content) {
          chunks.push(chunk as Buffer);
          bytes += (chunk as Buffer).length;
          if (bytes >= max) break;
        }
      body = Buffer.concat(chunks).subarray(0, max).toString('utf8');
    }
    const header = headers
      .toString('utf8')
      .replace(/\r?\n\r?\n$/, '')
      .split(/\r?\n(?![ \t])/)
      .filter(
        (line) => line !== '' && !/^(content-type|content-transfer-encoding|mime-version):/i.test(line),
      );
    const source = Buffer.from(
      [
        ...header,
        'MIME-Version: 1.0',
        `Content-Type: ${text?.type === 'text/html' ? 'text/html' : 'text/plain'}; charset=utf-8`,
        'Content-Transfer-Encoding: 8bit',
        '',
        body,
      ].join('\r\n'),
    );
    return { source, unread: attachments };
  }

  /**
   * Puts a mail the bot will never answer where a person finds it: recorded with the reason,
   * flagged (and left unread), moved to the unusable folder when one is set. The caller then
   * moves past it.
   */
  private async setAside(client: ImapFlow, at: MailAt, reason: string): Promise<void> {
    const uid = String(at.uid);
    const fetched = await client.fetchOne(uid, { envelope: true }, { uid: true }).catch(() => undefined);
    const messageId = fetched ? fetched.envelope?.messageId : undefined;
    const movedTo = this.o.config.unusableFolder;
    await recordMailSetAside(this.o.store, at, {
      reason: cleanText(reason).slice(0, MAX_REASON_LENGTH),
      movedTo,
      messageId: messageId ? cleanText(messageId.replace(/^<|>$/g, '')) : undefined,
    });
    await client.messageFlagsAdd(uid, ['\\Flagged'], { uid: true });
    if (movedTo) await client.messageMove(uid, movedTo, { uid: true });
    this.log('error', {
      event: 'email.message_set_aside',
      uid: at.uid,
      reason,
      ...(movedTo ? { movedTo } : {}),
    });
  }
}

/** The part of a BODYSTRUCTURE a mail client shows as the text, and every attachment. */
function splitStructure(root: MessageStructureObject): {
  text: MessageStructureObject | undefined;
  attachments: UnreadAttachment[];
} {
  let plain: MessageStructureObject | undefined;
  let html: MessageStructureObject | undefined;
  const attachments: UnreadAttachment[] = [];
  const visit = (node: MessageStructureObject) => {
    if (node.childNodes?.length) {
      for (const child of node.childNodes) visit(child);
      return;
    }
    const type = (node.type ?? 'text/plain').toLowerCase();
    const filename = node.dispositionParameters?.filename ?? node.parameters?.name;
    const attached =
      node.disposition === 'attachment' || (filename !== undefined && !type.startsWith('text/'));
    if (!attached && type === 'text/plain' && !plain) plain = node;
    else if (!attached && type === 'text/html' && !html) html = node;
    else if (attached || !type.startsWith('multipart/'))
      attachments.push({
        contentType: type,
        ...(filename ? { filename } : {}),
        ...(node.size ? { size: node.size } : {}),
      });
  };
  visit(root);
  return { text: plain ?? html, attachments };
}
