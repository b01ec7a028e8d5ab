import { ChatClient } from './client.ts';
import { createStorage } from './storage.ts';
import { ChatView, type Mode } from './view.ts';

/**
 * The widget's entry: `<script src="https://hub.example/widget.js" data-bot="support"></script>`.
 * The script's own address says which hub to talk to, so it works on a page of any origin.
 * `data-mode="page"` (the hub's chat page) fills the window; the default is a floating bubble.
 * `data-open` opens the bubble at once. `Switchboard.authenticate(jwt)` signs the chat in.
 */
/**
 * What the host page can call: `Switchboard.authenticate(jwt)` signs the chat in as the page's
 * user (the first widget on the page; `Switchboard.widgets[bot]` for a given bot).
 */
interface SwitchboardApi {
  authenticate(jwt: string): Promise<{ authLevel: string; userId: string }>;
  widgets: Record<string, { authenticate(jwt: string): Promise<{ authLevel: string; userId: string }> }>;
}

function mount(script: HTMLScriptElement): void {
  const src = new URL(script.src, document.baseURI);
  const bot = script.dataset.bot || 'default';
  const mode: Mode = script.dataset.mode === 'page' ? 'page' : 'embed';
  const wsUrl = `${src.protocol === 'https:' ? 'wss:' : 'ws:'}//${src.host}/ws`;

  const host = document.createElement('div');
  host.setAttribute('data-switchboard', bot);
  document.body.append(host);

  let client: ChatClient | undefined;
  const view = new ChatView(host, mode, bot, src.origin, {
    send: (text, files) => client?.send(text, files),
    upload: (file) => (client ? client.upload(file) : Promise.reject(new Error('not ready'))),
    newConversation: () => client?.newConversation(),
  });
  client = new ChatClient({
    url: wsUrl,
    hubOrigin: src.origin,
    bot,
    storage: createStorage(src.origin, bot),
    // On the hub's own page the session is kept in an HttpOnly cookie, out of the page's reach.
    // Embedded on another site it cannot be (browsers block third-party cookies): localStorage.
    ...(mode === 'page' && src.origin === location.origin
      ? { cookieSessionUrl: `${src.origin}/api/web/session` }
      : {}),
    // Not its query or fragment: they can hold a token of the host site's (the hub drops them too).
    pageUrl: location.origin + location.pathname,
    language: navigator.language,
    events: {
      status: (status, detail) => view.setStatus(status, detail),
      reset: () => view.reset(),
      renewed: () => view.renewed(),
      welcome: (title) => view.setTitle(title),
      message: (m) => view.message(m),
      pending: (item, state, note) => view.pending(item, state, note),
      typing: (active) => view.typing(active),
      chunk: (c) => view.chunk(c),
      suggestions: (items) => view.setSuggestions(items),
    },
  });
  client.start();
  const signIn = (jwt: string) => client.authenticate(jwt);
  const page = window as unknown as { Switchboard?: SwitchboardApi };
  page.Switchboard ??= { widgets: {}, authenticate: signIn };
  page.Switchboard.widgets[bot] = { authenticate: signIn };
  if (mode === 'embed' && script.dataset.open !== undefined) view.setOpen(true);
}

const script =
  (document.currentScript as HTMLScriptElement | null) ??
  document.querySelector<HTMLScriptElement>('script[src*="widget.js"]');
if (script) {
  if (document.body) mount(script);
  else document.addEventListener('DOMContentLoaded', () => mount(script));
}
