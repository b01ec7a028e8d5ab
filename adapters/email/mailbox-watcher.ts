import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import type { ChannelQueryable } from '../../src/channels/declaration.ts';
import { errorMessage, isTransient } from '../../src/errors.ts';
import type { Logger } from '../../src/logger.ts';
import { backoffDelay } from '../../src/queue/queue.ts';
import { cleanText } from '../../src/text.ts';
import type { EmailConfig, MailboxSpec } from './config.ts';
import type { InboundMail } from './inbound.ts';
import {
  type MailAt,
  mailboxState,
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
      const client = new ImapFlow(this.clientOptions());
      this.client = client;
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.on('error', (err: Error) => this.log('warn', { event: 'email.imap_error', err: err.message }));
      try {
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
        client.on('exists', () => this.requestSync(client));
        this.resyncTimer = setInterval(() => this.requestSync(client), RESYNC_EVERY_MS);
        this.resyncTimer.unref();
        this.requestSync(client);
        await closed;
      } catch (err) {
        this.log(this.stopping ? 'debug' : 'warn', {
          event: 'email.imap_connect_failed',
          err: (err as Error).message,
        });
        client.close();
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

  private clientOptions(): ImapFlowOptions {
    const { imap } = this.o.config;
    return {
      host: imap.host,
      port: imap.port,
      secure: imap.tls === 'implicit',
      ...(imap.tls === 'starttls' ? { doSTARTTLS: true } : {}),
      ...(imap.tls === 'none' ? { doSTARTTLS: false } : {}),
      auth: imap.accessToken
        ? { user: imap.user, accessToken: imap.accessToken }
        : { user: imap.user, pass: imap.password ?? '' },
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
   * stored UID means nothing: the whole folder is scanned for unprocessed mail (unread ones, or all
   * when processed mail is moved away), and mail already recorded is skipped by its Message-ID.
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
      const query = this.o.config.processedFolder ? { all: true } : { seen: false };
      uids =
        scanUpTo > 0 ? (await client.search({ ...query, uid: `1:${scanUpTo}` }, { uid: true })) || [] : [];
      this.log('info', {
        event: state ? 'email.uidvalidity_changed' : 'email.first_scan',
        uidValidity,
        previousUidValidity: state?.uidValidity,
        candidates: uids.length,
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
    const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
    const source = message ? message.source : undefined;
    if (!source) return; // expunged meanwhile
    const at: MailAt = { mailbox: this.key, uidValidity, uid };
    let outcome: Awaited<ReturnType<InboundMail['process']>>;
    try {
      outcome = await this.o.inbound.process(source, {
        mailbox: this.key,
        folder: this.spec.folder,
        bot: this.spec.bot,
        uidValidity,
        uid,
      });
    } catch (err) {
      // The database or the queue being away is nobody's mail's fault: retried, never counted.
      if (isTransient(err)) throw err;
      const reason = cleanText(errorMessage(err)).slice(0, MAX_REASON_LENGTH);
      const failures = await recordMailFailure(this.o.store, at, { reason });
      const { maxFailures } = this.o.config;
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
