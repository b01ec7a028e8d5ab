import type { ChunkFrame, MessageFrame, Status } from './client.ts';
import type { PendingMessage, UploadedFile } from './storage.ts';
import { STYLES } from './styles.ts';

export type Mode = 'page' | 'embed';

export interface ViewActions {
  send(text: string, files?: UploadedFile[]): void;
  upload(file: File): Promise<UploadedFile>;
  newConversation(): void;
}

type FrameAttachment = NonNullable<MessageFrame['attachments']>[number];
type FrameCard = NonNullable<MessageFrame['cards']>[number];

/** Images the widget shows inline (the hub serves these inline); anything else is a file chip. */
const INLINE_IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif']);

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 102.4) / 10} KB`;
  return `${Math.round(n / 104_857.6) / 10} MB`;
}

/** A file being attached in the composer. */
interface Chip {
  el: HTMLElement;
  file?: UploadedFile;
  state: 'uploading' | 'ready' | 'failed';
}

type Attrs = Record<string, string | boolean>;

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An inline SVG icon (24×24 viewBox, stroked with the text colour): no emoji font needed, so it
 * shows the same on a kiosk or a minimal Linux desktop as anywhere else.
 */
export function icon(name: keyof typeof ICONS): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg');
  for (const [k, v] of Object.entries({
    viewBox: '0 0 24 24',
    width: '24',
    height: '24',
    fill: 'none',
    stroke: 'currentColor',
    'stroke-width': '2',
    'stroke-linecap': 'round',
    'stroke-linejoin': 'round',
    'aria-hidden': 'true',
    focusable: 'false',
    class: `icon icon-${name}`,
  }))
    svg.setAttribute(k, v);
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

const ICONS = {
  chat: 'M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z',
  close: 'M6 6l12 12M18 6L6 18',
  attach:
    'M21 11.5l-8.5 8.5a5.5 5.5 0 0 1-7.8-7.8l9-9a3.7 3.7 0 0 1 5.2 5.2l-9 9a1.8 1.8 0 0 1-2.6-2.6l8.3-8.3',
  file: 'M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5',
} as const;

/** A small element builder: attributes (true: present, false: absent), then children. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === true) el.setAttribute(name, '');
    else if (value !== false) el.setAttribute(name, value);
  }
  el.append(...children);
  return el;
}

/**
 * A constructed stylesheet where the browser has them: a host page's Content-Security-Policy
 * governs <style> elements but not these, so the widget needs no 'unsafe-inline' from the sites
 * that embed it. Older browsers get a <style> element.
 */
function adoptStyles(shadow: ShadowRoot): void {
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLES);
    shadow.adoptedStyleSheets = [sheet];
  } catch {
    const style = h('style');
    style.textContent = STYLES;
    shadow.append(style);
  }
}

const STATUS_TEXT: Record<Status, string> = {
  connecting: 'Connecting…',
  online: 'Online',
  offline: 'Offline',
  ended: 'Conversation ended',
  failed: 'Unavailable',
};

/** How long a typing indicator may stay up without news (a lost `typing: false`). */
const TYPING_TIMEOUT_MS = 30_000;

/**
 * The chat's DOM, in a shadow root: a log of messages (role=log, aria-live), the typing line,
 * suggestion buttons, and the composer. In embed mode, a launcher button opens it as a floating
 * panel (full screen on a phone); on the chat page it fills the window.
 */
export class ChatView {
  private readonly panel: HTMLElement;
  private readonly title: HTMLElement;
  private readonly status: HTMLElement;
  private readonly log: HTMLOListElement;
  private readonly typingLine: HTMLElement;
  private readonly suggestionBar: HTMLElement;
  private readonly endedBar: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly launcher: HTMLButtonElement | undefined;
  private readonly streams = new Map<string, { el: HTMLElement; parts: string[] }>();
  private readonly chipBar: HTMLElement;
  private readonly fileInput: HTMLInputElement;
  private readonly lightbox: HTMLElement;
  private readonly lightboxImage: HTMLImageElement;
  private chips: Chip[] = [];
  private typingTimer: number | undefined;
  private botName: string;

  constructor(
    host: HTMLElement,
    mode: Mode,
    botTitle: string,
    /** The hub's origin: file links in frames are relative to it. */
    private readonly hubOrigin: string,
    private readonly actions: ViewActions,
  ) {
    this.botName = botTitle;
    const shadow = host.attachShadow({ mode: 'open' });
    const uid = Math.random().toString(36).slice(2, 8);
    this.title = h('h2', { id: `sb-title-${uid}` }, botTitle);
    this.status = h(
      'span',
      { class: 'status', role: 'status', 'data-state': 'connecting' },
      STATUS_TEXT.connecting,
    );
    const newButton = h('button', { type: 'button', class: 'new' }, 'New conversation');
    newButton.addEventListener('click', () => this.actions.newConversation());
    const header = h('header', {}, this.title, this.status, newButton);
    if (mode === 'embed') {
      const close = h(
        'button',
        { type: 'button', class: 'close', 'aria-label': 'Close chat' },
        icon('close'),
      );
      close.addEventListener('click', () => this.setOpen(false));
      header.append(close);
    }
    this.log = h('ol', {
      class: 'log',
      role: 'log',
      'aria-live': 'polite',
      'aria-relevant': 'additions',
      'aria-label': 'Messages',
      tabindex: '0',
    });
    this.typingLine = h('div', { class: 'typing', 'aria-live': 'polite' });
    this.suggestionBar = h('div', { class: 'suggestions', role: 'group', 'aria-label': 'Suggestions' });
    const restart = h('button', { type: 'button' }, 'Start a new conversation');
    restart.addEventListener('click', () => this.actions.newConversation());
    this.endedBar = h('div', { class: 'ended', hidden: true }, 'This conversation has ended. ', restart);
    this.input = h('textarea', {
      id: `sb-input-${uid}`,
      rows: '1',
      placeholder: 'Type a message…',
      autocomplete: 'off',
    });
    const label = h('label', { class: 'sr-only', for: `sb-input-${uid}` }, 'Message');
    this.fileInput = h('input', {
      type: 'file',
      class: 'sr-only',
      tabindex: '-1',
      multiple: true,
      'aria-hidden': 'true',
    });
    this.fileInput.addEventListener('change', () => {
      for (const f of Array.from(this.fileInput.files ?? [])) this.attach(f);
      this.fileInput.value = '';
    });
    const attach = h(
      'button',
      { type: 'button', class: 'attach', 'aria-label': 'Attach a file', title: 'Attach a file' },
      icon('attach'),
    );
    attach.addEventListener('click', () => this.fileInput.click());
    this.chipBar = h('ul', { class: 'chips', 'aria-label': 'Attached files' });
    const form = h(
      'form',
      {},
      attach,
      this.fileInput,
      label,
      this.input,
      h('button', { type: 'submit', class: 'send' }, 'Send'),
    );
    this.input.addEventListener('paste', (e) => {
      const files = Array.from(e.clipboardData?.files ?? []);
      if (files.length === 0) return;
      e.preventDefault();
      for (const f of files) this.attach(f);
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener('keydown', (e) => {
      // Enter sends, Shift+Enter is a new line; not while an input method composes.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.panel = h(
      'section',
      { class: 'panel', 'aria-labelledby': `sb-title-${uid}`, id: `sb-panel-${uid}` },
      header,
      this.log,
      this.typingLine,
      this.suggestionBar,
      this.endedBar,
      this.chipBar,
      form,
    );
    this.panel.addEventListener('dragover', (e) => {
      if (!e.dataTransfer?.types.includes('Files')) return;
      e.preventDefault();
      this.panel.classList.add('dropping');
    });
    this.panel.addEventListener('dragleave', (e) => {
      if (e.target === this.panel) this.panel.classList.remove('dropping');
    });
    this.panel.addEventListener('drop', (e) => {
      this.panel.classList.remove('dropping');
      const files = Array.from(e.dataTransfer?.files ?? []);
      if (files.length === 0) return;
      e.preventDefault();
      for (const f of files) this.attach(f);
    });
    this.lightboxImage = h('img', { alt: '' });
    const closeLightbox = h(
      'button',
      { type: 'button', class: 'close-lightbox', 'aria-label': 'Close image' },
      icon('close'),
    );
    this.lightbox = h(
      'div',
      { class: 'lightbox', role: 'dialog', 'aria-label': 'Image', hidden: true },
      closeLightbox,
      this.lightboxImage,
    );
    closeLightbox.addEventListener('click', () => this.closeLightbox());
    this.lightbox.addEventListener('click', (e) => {
      if (e.target === this.lightbox) this.closeLightbox();
    });
    this.lightbox.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        this.closeLightbox();
      }
    });
    this.panel.append(this.lightbox);
    const root = h('div', { class: `root ${mode}` }, this.panel);
    if (mode === 'embed') {
      this.panel.hidden = true;
      this.panel.setAttribute('role', 'dialog');
      this.launcher = h(
        'button',
        {
          type: 'button',
          class: 'launcher',
          'aria-label': `Chat with ${botTitle}`,
          'aria-expanded': 'false',
          'aria-controls': `sb-panel-${uid}`,
        },
        icon('chat'),
      );
      this.launcher.addEventListener('click', () => this.setOpen(this.panel.hidden));
      this.panel.addEventListener('keydown', (e) => {
        if (e.key === 'Escape') this.setOpen(false);
      });
      root.append(this.launcher);
    }
    adoptStyles(shadow);
    shadow.append(root);
  }

  setOpen(open: boolean): void {
    if (!this.launcher) return;
    this.panel.hidden = !open;
    this.launcher.setAttribute('aria-expanded', String(open));
    if (open) {
      this.input.focus();
      this.scrollToEnd();
    } else this.launcher.focus();
  }

  setTitle(title: string): void {
    this.botName = title;
    this.title.textContent = title;
    this.launcher?.setAttribute('aria-label', `Chat with ${title}`);
  }

  setStatus(status: Status, detail: { retryInMs?: number; reason?: string } = {}): void {
    this.status.dataset.state = status;
    let text = STATUS_TEXT[status];
    if (status === 'offline' && detail.retryInMs !== undefined)
      text = `Offline — retrying in ${Math.max(1, Math.round(detail.retryInMs / 1000))} s`;
    if (status === 'failed' && detail.reason) text = `Unavailable: ${detail.reason}`;
    this.status.textContent = text;
    this.endedBar.hidden = status !== 'ended';
    if (status !== 'online') this.setTyping(false);
  }

  /** Empties the conversation (another session is about to be shown). */
  reset(): void {
    this.log.replaceChildren();
    this.streams.clear();
    this.setSuggestions([]);
    this.setTyping(false);
    this.endedBar.hidden = true;
  }

  /** The shown messages belong to an earlier session: a new session's numbers must not match them. */
  renewed(): void {
    this.log.querySelectorAll<HTMLElement>('[data-seq]').forEach((el) => {
      el.dataset.previousSeq = el.dataset.seq;
      delete el.dataset.seq;
    });
  }

  message(m: MessageFrame): void {
    if (this.log.querySelector(`[data-seq="${m.seq}"]`)) return;
    if (m.role === 'system') return; // "session started" and the like are for the record, not the chat
    if (m.clientId) this.log.querySelector(`[data-client-id="${m.clientId}"]`)?.remove();
    if (m.role === 'assistant' || m.role === 'agent') {
      this.setTyping(false);
      if (m.inReplyTo) {
        this.streams.get(m.inReplyTo)?.el.remove();
        this.streams.delete(m.inReplyTo);
      }
    }
    this.setSuggestions([]);
    const li = h('li', { class: `msg ${m.role}`, 'data-seq': String(m.seq) });
    const rich = (m.attachments?.length ?? 0) > 0 || (m.cards?.length ?? 0) > 0;
    if (!(rich && m.textIsFallback) && m.text) li.append(h('span', { class: 'text' }, m.text));
    if (m.attachments?.length) li.append(...m.attachments.map((a) => this.attachmentView(a)));
    if (m.cards?.length) li.append(this.cardsView(m.cards));
    if (rich) li.classList.add('rich');
    if (m.clientId) li.dataset.clientId = m.clientId;
    // In sequence order, before the messages still being sent.
    const after = Array.from(this.log.children).find(
      (el) => !(el as HTMLElement).dataset.seq || Number((el as HTMLElement).dataset.seq) > m.seq,
    );
    this.log.insertBefore(li, after ?? null);
    this.scrollToEnd();
  }

  pending(item: PendingMessage, state: 'sending' | 'waiting' | 'failed', note?: string): void {
    let li = this.log.querySelector<HTMLElement>(`[data-client-id="${item.id}"]`);
    if (li?.dataset.seq) return; // already confirmed
    if (!li) {
      li = h('li', { class: 'msg user pending', 'data-client-id': item.id });
      if (item.text) li.append(h('span', { class: 'text' }, item.text));
      for (const f of item.files ?? []) li.append(this.fileChip(f.name, f.size));
      this.log.append(li);
      this.scrollToEnd();
    }
    li.classList.toggle('failed', state === 'failed');
    li.querySelector('.note')?.remove();
    const text =
      note ?? (state === 'waiting' ? 'Waiting for connection…' : state === 'failed' ? 'Not sent' : '');
    if (text) li.append(h('span', { class: 'note' }, text));
  }

  typing(active: boolean): void {
    this.setTyping(active);
  }

  chunk(c: ChunkFrame): void {
    let stream = this.streams.get(c.inReplyTo);
    if (!stream) {
      stream = { el: h('li', { class: 'msg assistant streaming', 'aria-busy': 'true' }), parts: [] };
      this.streams.set(c.inReplyTo, stream);
      const firstPending = Array.from(this.log.children).find((el) => !(el as HTMLElement).dataset.seq);
      this.log.insertBefore(stream.el, firstPending ?? null);
    }
    stream.parts[c.index] = c.text;
    stream.el.textContent = stream.parts.join('');
    this.setTyping(false);
    this.scrollToEnd();
  }

  setSuggestions(items: { text: string; value: string }[]): void {
    this.suggestionBar.replaceChildren(
      ...items.map((s) => {
        const b = h('button', { type: 'button' }, s.text);
        b.addEventListener('click', () => {
          this.setSuggestions([]);
          this.actions.send(s.value);
        });
        return b;
      }),
    );
  }

  private setTyping(active: boolean): void {
    clearTimeout(this.typingTimer);
    this.typingLine.textContent = active ? `${this.botName} is typing…` : '';
    if (active) this.typingTimer = window.setTimeout(() => this.setTyping(false), TYPING_TIMEOUT_MS);
  }

  private submit(): void {
    const text = this.input.value;
    if (this.chips.some((c) => c.state === 'uploading')) return;
    const files = this.chips.flatMap((c) => (c.state === 'ready' && c.file ? [c.file] : []));
    if (text.trim() === '' && files.length === 0) return;
    this.input.value = '';
    this.chips = [];
    this.chipBar.replaceChildren();
    this.setSuggestions([]);
    this.actions.send(text, files);
  }

  /** Uploads a file chosen, dropped or pasted, shown as a chip in the composer until sent. */
  attach(file: File): void {
    const remove = h(
      'button',
      { type: 'button', class: 'remove', 'aria-label': `Remove ${file.name}` },
      icon('close'),
    );
    const status = h('span', { class: 'status-line' }, 'Uploading…');
    const el = h(
      'li',
      { class: 'chip uploading' },
      icon('file'),
      h('span', { class: 'name' }, file.name),
      h('span', { class: 'size' }, formatSize(file.size)),
      status,
      remove,
    );
    const chip: Chip = { el, state: 'uploading' };
    this.chips.push(chip);
    this.chipBar.append(el);
    remove.addEventListener('click', () => {
      this.chips = this.chips.filter((c) => c !== chip);
      el.remove();
    });
    this.actions.upload(file).then(
      (uploaded) => {
        chip.file = uploaded;
        chip.state = 'ready';
        el.className = 'chip ready';
        status.textContent = '';
        el.querySelector('.size')!.textContent = formatSize(uploaded.size);
      },
      (err: Error) => {
        chip.state = 'failed';
        el.className = 'chip failed';
        el.setAttribute('role', 'alert');
        status.textContent = err.message;
      },
    );
  }

  /** A link from a frame, on the hub; only http(s) (never `javascript:`). */
  private href(url: string): string | undefined {
    try {
      const u = new URL(url, this.hubOrigin);
      return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : undefined;
    } catch {
      return undefined;
    }
  }

  private fileChip(name: string, size: number | undefined, url?: string): HTMLElement {
    const parts = [
      icon('file'),
      h('span', { class: 'name' }, name),
      ...(size !== undefined ? [h('span', { class: 'size' }, formatSize(size))] : []),
    ];
    return url
      ? h('a', { class: 'file', href: url, download: name, target: '_blank', rel: 'noopener' }, ...parts)
      : h('span', { class: 'file' }, ...parts);
  }

  private attachmentView(a: FrameAttachment): HTMLElement {
    const url = a.url ? this.href(a.url) : undefined;
    const name = a.name ?? 'file';
    if (url && INLINE_IMAGES.has(a.type)) {
      const img = h('img', { src: url, alt: name, loading: 'lazy' });
      const open = h('button', { type: 'button', class: 'image', 'aria-label': `Open ${name}` }, img);
      open.addEventListener('click', () => this.openLightbox(url, name));
      img.addEventListener('load', () => this.scrollToEnd());
      return open;
    }
    return this.fileChip(name, a.size, url);
  }

  private cardsView(cards: FrameCard[]): HTMLElement {
    const views = cards.map((c) => {
      const card = h('div', { class: 'card' });
      const image = c.image ? this.href(c.image.url) : undefined;
      if (image) {
        const img = h('img', { src: image, alt: c.image?.name ?? c.title ?? '' });
        img.addEventListener('load', () => this.scrollToEnd());
        card.append(img);
      }
      if (c.title) card.append(h('h3', {}, c.title));
      if (c.text) card.append(h('p', {}, c.text));
      if (c.buttons.length) {
        const bar = h('div', { class: 'buttons' });
        for (const b of c.buttons) {
          if ('url' in b) {
            const href = this.href(b.url);
            if (href)
              bar.append(h('a', { class: 'button', href, target: '_blank', rel: 'noopener' }, b.title));
          } else {
            const button = h('button', { type: 'button', class: 'button' }, b.title);
            button.addEventListener('click', () => {
              this.setSuggestions([]);
              this.actions.send(b.value);
            });
            bar.append(button);
          }
        }
        card.append(bar);
      }
      return card;
    });
    return views.length === 1
      ? views[0]!
      : h('div', { class: 'carousel', role: 'group', 'aria-label': 'Cards' }, ...views);
  }

  private openLightbox(url: string, name: string): void {
    this.lightboxImage.src = url;
    this.lightboxImage.alt = name;
    this.lightbox.hidden = false;
    this.lightbox.querySelector<HTMLButtonElement>('.close-lightbox')?.focus();
  }

  private closeLightbox(): void {
    this.lightbox.hidden = true;
    this.lightboxImage.removeAttribute('src');
    this.input.focus();
  }

  private scrollToEnd(): void {
    this.log.scrollTop = this.log.scrollHeight;
  }
}
