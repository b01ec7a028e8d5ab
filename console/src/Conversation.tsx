import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api } from './api.ts';
import { draftOf, keepDraft } from './drafts.ts';
import { STREAM_READY, useConversationEvents } from './events.ts';
import { Attachments, Cards } from './Files.tsx';
import { clock, personName, typingInField } from './format.ts';
import { useReloadTickets } from './reload-tickets.ts';
import { navigate } from './route.ts';
import { TransferPicker } from './TransferPicker.tsx';
import type { ConversationDetail, HistoryRow, Me } from './types.ts';

/** How often the reply box tells the person the agent is still typing. */
const TYPING_EVERY_MS = 3_000;

/** Rows read by each *Show earlier messages*. */
const EARLIER_PAGE = 100;

/** `a` and `b`'s rows, each once (by seq), oldest first. */
function mergeRows(a: readonly HistoryRow[], b: readonly HistoryRow[]): HistoryRow[] {
  const bySeq = new Map<number, HistoryRow>();
  for (const row of [...a, ...b]) if (row.seq !== undefined) bySeq.set(row.seq, row);
  return [...bySeq.values()].sort((x, y) => x.seq! - y.seq!);
}

/** `conversation.released`'s reason when the session was erased (src/erasure.ts). */
const ERASED_REASON = 'erased';

const ROLE_LABELS: Record<string, string> = {
  user: 'Person',
  assistant: 'Bot',
  agent: 'Agent',
  note: 'Note',
  system: 'System',
};

function Row(props: { row: HistoryRow; person: string; me: Me }) {
  const { row } = props;
  const who =
    row.role === 'user'
      ? props.person
      : row.role === 'agent'
        ? row.agent_id === props.me.agent_id
          ? `${props.me.name} (you)`
          : (row.agent_name ?? 'Agent')
        : (ROLE_LABELS[row.role] ?? row.role);
  return (
    <li class={`msg msg-${row.role}`} data-role={row.role}>
      <div class="meta">
        <span class="who" dir="auto">
          {who}
        </span>
        {row.role === 'note' && <span class="private">internal, never sent</span>}
        <time dateTime={row.created_at}>{clock(row.created_at)}</time>
        {row.delivery_status && (
          <span class={`delivery delivery-${row.delivery_status}`} title="Delivery status">
            {row.delivery_status}
          </span>
        )}
      </div>
      {/* A row of files or cards only has no text of its own (or only their names, for text channels). */}
      {row.text !== '' && !(row.text_is_fallback && (row.attachments?.length || row.cards?.length)) && (
        <p class="text" dir="auto">
          {row.text}
        </p>
      )}
      <Attachments files={row.attachments} refused={row.refused_attachments} />
      <Cards cards={row.cards} />
    </li>
  );
}

function Facts(props: { title: string; value: unknown }) {
  const entries =
    props.value && typeof props.value === 'object' && !Array.isArray(props.value)
      ? Object.entries(props.value as Record<string, unknown>)
      : [];
  return (
    <section aria-label={props.title}>
      <h3>{props.title}</h3>
      {Array.isArray(props.value) ? (
        props.value.length === 0 ? (
          <p class="empty">None.</p>
        ) : (
          <ul>
            {props.value.map((v) => (
              <li>{typeof v === 'string' ? v : JSON.stringify(v)}</li>
            ))}
          </ul>
        )
      ) : entries.length === 0 ? (
        <p class="empty">None.</p>
      ) : (
        <dl>
          {entries.map(([k, v]) => (
            <>
              <dt>{k}</dt>
              <dd>{typeof v === 'string' ? v : JSON.stringify(v)}</dd>
            </>
          ))}
        </dl>
      )}
    </section>
  );
}

export function Conversation(props: { me: Me; sessionId: string; onChanged: () => void }) {
  const { me, sessionId } = props;
  const [detail, setDetail] = useState<ConversationDetail>();
  /** Why the conversation cannot be read (again): gone once a read succeeds. */
  const [loadError, setLoadError] = useState<string>();
  /**
   * Why the agent's last action (claim, reply, note, transfer, release) was refused: kept until the
   * next action, since the event that follows a refusal reads the conversation again at once.
   */
  const [actionError, setActionError] = useState<string>();
  /** The session the hub said was erased while it was shown: nothing of it is shown any more. */
  const [erasedId, setErasedId] = useState<string>();
  /** The reply or note being written: kept per conversation (drafts.ts). */
  const [text, setText] = useState(() => draftOf(sessionId));
  const [asNote, setAsNote] = useState(false);
  /**
   * Rows older than the latest read's first one: read by *Show earlier messages*, or shown by an
   * earlier read and since pushed out of the latest page by new messages (still shown, no gap).
   */
  const [older, setOlder] = useState<HistoryRow[]>([]);
  /** *Show earlier messages* found the conversation's first row. */
  const [allEarlier, setAllEarlier] = useState(false);
  const shown = useRef<ConversationDetail | undefined>(undefined);
  const transcript = useRef<HTMLOListElement>(null);
  const lastTyping = useRef(0);
  const replyBox = useRef<HTMLTextAreaElement>(null);
  /** Claimed from this page: the reply box takes the focus once the conversation shows as the agent's. */
  const focusReply = useRef(false);
  const claimButton = useRef<HTMLButtonElement>(null);
  /** Released from this page: the Claim button takes the focus once the conversation is not the agent's. */
  const focusClaim = useRef(false);
  /** A reply or note on its way: another Enter meanwhile would send the person the text twice. */
  const sending = useRef(false);
  const base = `/api/agent/conversations/${encodeURIComponent(sessionId)}`;

  const ticket = useReloadTickets();

  const load = useCallback(async () => {
    const fresh = ticket();
    try {
      const read = await api<ConversationDetail>('GET', base);
      if (!fresh()) return;
      const first = read.messages[0]?.seq;
      const fallen =
        first === undefined
          ? []
          : (shown.current?.messages ?? []).filter((m) => m.seq !== undefined && m.seq < first);
      if (fallen.length > 0) setOlder((rows) => mergeRows(rows, fallen));
      shown.current = read;
      setDetail(read);
      setLoadError(undefined);
    } catch (err) {
      if (!fresh()) return;
      // No longer the agent's to see (another agent took it), or gone (erased while this console
      // was not listening): what was shown goes too.
      if (err instanceof ApiError && (err.status === 403 || err.status === 404)) setDetail(undefined);
      setLoadError(err instanceof ApiError ? err.message : 'The conversation cannot be loaded.');
    }
  }, [base, ticket]);

  useEffect(() => {
    void load();
  }, [load]);

  useEffect(() => keepDraft(sessionId, text), [sessionId, text]);

  // The newest row, not the count: a long conversation's page is always the same length.
  useEffect(() => {
    transcript.current?.lastElementChild?.scrollIntoView({ block: 'end' });
  }, [detail?.messages.at(-1)?.seq]);

  useConversationEvents((event) => {
    if (
      event.type === 'conversation.released' &&
      event.session_id === sessionId &&
      event.data.reason === ERASED_REASON
    ) {
      // Shown at once, and over any reload still on its way (it would bring back what was erased).
      ticket()();
      setDetail(undefined);
      setErasedId(sessionId);
      setText('');
      return;
    }
    if (event.type === STREAM_READY || event.session_id === sessionId) void load();
  });

  const act = useCallback(
    /** `reload`: read the conversation again afterwards (not when the agent is leaving it). */
    async (method: string, path: string, body?: unknown, reload = true) => {
      try {
        await api(method, `${base}${path}`, body);
        setActionError(undefined);
        if (reload) await load();
        props.onChanged();
        return true;
      } catch (err) {
        setActionError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
        return false;
      }
    },
    [base, load, props.onChanged],
  );

  const mine = detail?.state === 'assigned' && detail.assigned_to === me.agent_id;
  const claim = async () => {
    // Asked for before the claim: the conversation may show as the agent's before its answer is read.
    focusReply.current = true;
    if (!(await act('POST', '/claim'))) focusReply.current = false;
  };
  // The Claim button the agent pressed is gone once the conversation is theirs: the reply box takes
  // the focus, not the page's body (a keyboard-only agent would start again from the top).
  useEffect(() => {
    if (mine && focusReply.current) {
      focusReply.current = false;
      replyBox.current?.focus();
    }
    // Released from this page: the Claim button that replaces Release takes the focus.
    if (!mine && focusClaim.current) {
      focusClaim.current = false;
      claimButton.current?.focus();
    }
  }, [mine]);
  const release = async () => {
    focusClaim.current = true;
    if (!(await act('POST', '/release'))) focusClaim.current = false;
  };

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (typingInField(event) || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === 'c' && !mine) void claim();
      if (event.key === 'r' && mine) void release();
      if (event.key === 'Escape') navigate({ page: 'inbox' });
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  const send = async () => {
    const body = text.trim();
    if (!body || sending.current) return;
    sending.current = true;
    // The box empties at once, so that the agent can write the next message while this one is on
    // its way; a refused one comes back, before whatever was typed since.
    const draft = text;
    setText('');
    try {
      const ok = await act('POST', asNote ? '/notes' : '/messages', { text: body });
      if (!ok) setText((now) => (now.trim() ? `${draft}\n${now}` : draft));
    } finally {
      sending.current = false;
    }
  };

  if (erasedId === sessionId)
    return (
      <main class="conversation">
        <p class="error" role="alert">
          This conversation was erased: nothing of it is kept any more.
        </p>
        <button type="button" class="link back" onClick={() => navigate({ page: 'inbox' })}>
          ← Inbox
        </button>
      </main>
    );

  if (!detail)
    return (
      <main class="conversation">
        {loadError ? (
          <p class="error" role="alert">
            {loadError}
          </p>
        ) : (
          <p class="loading">Loading…</p>
        )}
      </main>
    );

  const person = personName(detail.person);
  const firstRead = detail.messages[0]?.seq;
  const rows = [
    ...(firstRead === undefined ? older : older.filter((r) => r.seq! < firstRead)),
    ...detail.messages,
  ];
  const oldest = rows[0]?.seq;
  const moreEarlier =
    !allEarlier && oldest !== undefined && oldest > 1 && (older.length > 0 || detail.next_before != null);
  const showEarlier = async () => {
    if (oldest === undefined) return;
    try {
      const page = await api<ConversationDetail>('GET', `${base}?before=${oldest}&limit=${EARLIER_PAGE}`);
      setOlder((had) => mergeRows(had, page.messages));
      if (page.next_before == null || page.messages.length === 0) setAllEarlier(true);
    } catch (err) {
      setActionError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
    }
  };
  return (
    <main class="conversation">
      <section class="thread" aria-label="Conversation">
        <header class="thread-head">
          <button type="button" class="link back" onClick={() => navigate({ page: 'inbox' })}>
            ← Inbox
          </button>
          <span class={`channel channel-${detail.channel}`}>{detail.channel}</span>
          <h2 dir="auto">{person}</h2>
          <span class={`state state-${detail.state}`}>{detail.state}</span>
          <div class="actions">
            {!mine && (
              <button type="button" ref={claimButton} onClick={claim}>
                Claim
              </button>
            )}
            {mine && (
              <button type="button" onClick={release}>
                Release to bot
              </button>
            )}
            {/* An agent transfers what it holds; a supervisor or admin moves any conversation. */}
            {(mine || me.role !== 'agent') && (
              <TransferPicker
                sessionId={sessionId}
                holder={detail.assigned_to}
                onTransferred={async () => {
                  setActionError(undefined);
                  props.onChanged();
                  // An agent sees what it holds and what waits in its queues: a conversation
                  // handed to a colleague is theirs now (a supervisor or admin still sees it).
                  if (me.role === 'agent') navigate({ page: 'inbox' });
                  else await load();
                }}
              />
            )}
          </div>
        </header>
        {[actionError, loadError].map(
          (error) =>
            error && (
              <p class="error" role="alert">
                {error}
              </p>
            ),
        )}
        <ol class="transcript" ref={transcript} aria-label="Transcript">
          {moreEarlier && (
            <li class="earlier">
              <button type="button" class="link" onClick={showEarlier}>
                Show earlier messages
              </button>
            </li>
          )}
          {rows.map((row) => (
            <Row row={row} person={person} me={me} />
          ))}
        </ol>
        <form
          class={asNote ? 'reply note-mode' : 'reply'}
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <textarea
            ref={replyBox}
            aria-label={asNote ? 'Internal note' : `Reply to ${person}`}
            placeholder={
              asNote
                ? 'Internal note: only people at the business see it'
                : mine
                  ? `Reply to ${person} (Enter sends, Shift+Enter new line)`
                  : 'Claim the conversation to reply'
            }
            disabled={!asNote && !mine}
            dir="auto"
            value={text}
            rows={3}
            onInput={(e) => {
              setText(e.currentTarget.value);
              // "typing…" for the person, at most every few seconds; notes are never shown to them.
              if (!asNote && mine && Date.now() - lastTyping.current > TYPING_EVERY_MS) {
                lastTyping.current = Date.now();
                api('POST', `${base}/typing`).catch(() => undefined);
              }
            }}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                void send();
              }
            }}
          />
          <div class="reply-actions">
            <label>
              <input type="checkbox" checked={asNote} onChange={(e) => setAsNote(e.currentTarget.checked)} />
              Note
            </label>
            <button type="submit" disabled={!text.trim() || (!asNote && !mine)}>
              {asNote ? 'Add note' : 'Send'}
            </button>
          </div>
        </form>
      </section>
      <aside class="facts" aria-label="About this person">
        <section aria-label="Person">
          <h3>Person</h3>
          <p>
            {person} <span class="muted">on {detail.bot}</span>
          </p>
          {detail.identities && detail.identities.length > 0 && (
            <ul class="identities" aria-label="Linked identities">
              {detail.identities.map((i) => (
                <li>
                  <span class={`channel channel-${i.channel}`}>{i.channel}</span> {i.native_id}
                </li>
              ))}
            </ul>
          )}
        </section>
        <Facts title="Variables" value={detail.variables ?? {}} />
        <Facts title="Context" value={detail.context ?? []} />
        <section aria-label="Recent events">
          <h3>Recent events</h3>
          {(detail.events ?? []).length === 0 ? (
            <p class="empty">None.</p>
          ) : (
            <ul>
              {(detail.events ?? []).map((e) => (
                <li>
                  <time dateTime={e.created_at}>{clock(e.created_at)}</time> {e.type}
                </li>
              ))}
            </ul>
          )}
        </section>
      </aside>
    </main>
  );
}
