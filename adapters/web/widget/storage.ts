/**
 * localStorage, per server and bot, with an in-memory fallback where storage is blocked
 * (sandboxed iframes, some private modes): the widget then still works, for this page's life.
 */
export interface WidgetStorage {
  getToken(): string | undefined;
  setToken(token: string | undefined): void;
  getOutbox(): PendingMessage[];
  setOutbox(items: PendingMessage[]): void;
  /** Calls back when another tab changed this bot's token. */
  onTokenChange(callback: (token: string | undefined) => void): void;
}

export interface PendingMessage {
  id: string;
  text: string;
  /** Files uploaded for this message (`POST /api/session/files`). */
  files?: UploadedFile[];
}

export interface UploadedFile {
  file_id: string;
  name: string;
  type: string;
  size: number;
}

function safeLocalStorage(): Storage | undefined {
  try {
    const s = window.localStorage;
    const probe = '__sb_probe__';
    s.setItem(probe, '1');
    s.removeItem(probe);
    return s;
  } catch {
    return undefined;
  }
}

export function createStorage(serverOrigin: string, bot: string): WidgetStorage {
  const prefix = `switchboard:${serverOrigin}:${bot}:`;
  const tokenKey = `${prefix}token`;
  const outboxKey = `${prefix}outbox`;
  const store = safeLocalStorage();
  const memory = new Map<string, string>();
  const get = (key: string) => (store ? store.getItem(key) : memory.get(key)) ?? undefined;
  const set = (key: string, value: string | undefined) => {
    try {
      if (value === undefined) store ? store.removeItem(key) : memory.delete(key);
      else store ? store.setItem(key, value) : memory.set(key, value);
    } catch {
      // Quota exceeded: keep going without persistence for this value.
    }
  };
  return {
    getToken: () => get(tokenKey),
    setToken: (token) => set(tokenKey, token),
    getOutbox() {
      try {
        const parsed: unknown = JSON.parse(get(outboxKey) ?? '[]');
        return Array.isArray(parsed)
          ? parsed.filter(
              (p): p is PendingMessage => typeof p?.id === 'string' && typeof p?.text === 'string',
            )
          : [];
      } catch {
        return [];
      }
    },
    setOutbox: (items) => set(outboxKey, items.length ? JSON.stringify(items) : undefined),
    onTokenChange(callback) {
      window.addEventListener('storage', (e) => {
        if (e.key === tokenKey) callback(e.newValue ?? undefined);
      });
    },
  };
}
