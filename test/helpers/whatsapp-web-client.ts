import { EventEmitter } from 'node:events';
import type { WebClient, WebMessage } from '../../adapters/whatsapp/web/client.ts';

/**
 * A local stand-in for whatsapp-web.js's `Client`: the same events and methods, driven by the
 * test. `initialize()` emits `qr` when the session is not linked yet, else `authenticated` and
 * `ready`, as the library does.
 */
export class LocalWebClient extends EventEmitter implements WebClient {
  readonly sent: { chatId: string; text: string; id: string }[] = [];
  initialized = false;
  destroyed = false;
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

  async sendMessage(chatId: string, text: string): Promise<{ id: { _serialized: string } }> {
    if (this.destroyed) throw new Error('Protocol error: Session closed');
    const id = `true_${chatId}_LOCAL${++this.n}`;
    this.sent.push({ chatId, text, id });
    return { id: { _serialized: id } };
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
  }

  async getContactLidAndPhone(ids: string[]) {
    return ids.map((lid) => ({ lid, pn: '5511966666666@c.us' }));
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
}
