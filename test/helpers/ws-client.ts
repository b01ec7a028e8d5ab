import WebSocket from 'ws';

// biome-ignore lint/suspicious/noExplicitAny: a frame's fields are what the test's assertions check
export type Frame = { type: string } & Record<string, any>;

/**
 * A WebSocket client for protocol tests: records every frame, and waits (with a deadline) for
 * the frames or the close a test expects.
 */
export class TestSocket {
  readonly frames: Frame[] = [];
  closeEvent: { code: number; reason: string } | undefined;
  private readonly waiters = new Set<() => void>();
  private read = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as Frame);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closeEvent = { code, reason: reason.toString() };
      this.wake();
    });
    ws.on('error', () => undefined);
  }

  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<TestSocket> {
    const ws = new WebSocket(url, options);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return new TestSocket(ws);
  }

  private wake() {
    for (const w of this.waiters) w();
  }

  private async until<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    const found = check();
    if (found !== undefined) return found;
    return new Promise<T>((resolve, reject) => {
      const waiter = () => {
        const value = check();
        if (value !== undefined) {
          this.waiters.delete(waiter);
          clearTimeout(timer);
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(this.frames)}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next frame (after those already taken) that matches. */
  next(match: (f: Frame) => boolean = () => true, what = 'a frame', timeoutMs = 10_000): Promise<Frame> {
    return this.until(
      () => {
        for (let i = this.read; i < this.frames.length; i++) {
          if (match(this.frames[i]!)) {
            this.read = i + 1;
            return this.frames[i];
          }
        }
        return undefined;
      },
      what,
      timeoutMs,
    );
  }

  nextOfType(type: string, timeoutMs?: number): Promise<Frame> {
    return this.next((f) => f.type === type, `a ${type} frame`, timeoutMs);
  }

  /** Waits until a message frame with this seq or higher was received; returns all message frames. */
  async messagesThrough(seq: number, timeoutMs = 10_000): Promise<Frame[]> {
    await this.until(
      () => (this.messages().some((m) => m.seq >= seq) ? true : undefined),
      `message seq ${seq}`,
      timeoutMs,
    );
    return this.messages();
  }

  /** Waits for a reply whose text matches. */
  reply(text: string | RegExp, timeoutMs?: number): Promise<Frame> {
    return this.next(
      (f) =>
        f.type === 'message' &&
        f.role === 'assistant' &&
        (typeof text === 'string' ? f.text === text : text.test(f.text)),
      `reply ${text}`,
      timeoutMs,
    );
  }

  messages(): Frame[] {
    return this.frames.filter((f) => f.type === 'message');
  }

  async closed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    return this.until(() => this.closeEvent, 'the socket to close', timeoutMs);
  }

  /** hello, then the welcome. */
  async hello(fields: Record<string, unknown> = {}): Promise<Frame> {
    this.send({ type: 'hello', ...fields });
    return this.nextOfType('welcome');
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close();
    return this.closed();
  }
}

/** ws://… of a hub's http://… address. */
export const wsUrl = (httpUrl: string) => `${httpUrl.replace(/^http/, 'ws')}/ws`;
