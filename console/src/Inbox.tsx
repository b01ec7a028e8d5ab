import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, api } from './api.ts';
import { useConversationEvents } from './events.ts';
import { personName, timeAgo, typingInField } from './format.ts';
import { announceWaiting, notificationsWanted, setNotificationsWanted } from './notify.ts';
import { useReloadTickets } from './reload-tickets.ts';
import { navigate } from './route.ts';
import type { ConversationSummary, InboxTab, Me } from './types.ts';

const TAB_LABELS: Record<InboxTab, string> = { waiting: 'Waiting', mine: 'Mine', all: 'All' };
const BASE_TITLE = 'Switchboard console';
/** Rows per read of the agent API (its most). */
const INBOX_PAGE = 200;
/** Rows a tab shows at most: past that the count reads "1000+". */
const MAX_INBOX_ROWS = 1_000;

/**
 * Every conversation of a tab, up to MAX_INBOX_ROWS: the API answers newest first, a page at a
 * time, so one page alone would hide (and never count) those who have waited longest.
 */
async function readInbox(tab: InboxTab): Promise<{ rows: ConversationSummary[]; more: boolean }> {
  const rows: ConversationSummary[] = [];
  let before: string | null = null;
  do {
    const page: { conversations: ConversationSummary[]; next_before: string | null } = await api(
      'GET',
      `/api/agent/conversations?state=${tab}&limit=${INBOX_PAGE}${before ? `&before=${encodeURIComponent(before)}` : ''}`,
    );
    rows.push(...page.conversations);
    before = page.next_before;
  } while (before && rows.length < MAX_INBOX_ROWS);
  return { rows, more: before !== null };
}
/** How often the rows' ages ("3m") are worked out again: time passes without any event. */
const AGE_TICK_MS = 10_000;

export function Inbox(props: { me: Me; manages: boolean }) {
  const [tab, setTab] = useState<InboxTab>('waiting');
  const [rows, setRows] = useState<ConversationSummary[]>();
  const [waitingCount, setWaitingCount] = useState(0);
  /** More than MAX_INBOX_ROWS wait: the count reads "1000+". */
  const [moreWaiting, setMoreWaiting] = useState(false);
  const waitingLabel = `${waitingCount}${moreWaiting ? '+' : ''}`;
  const [notify, setNotify] = useState(notificationsWanted());
  const [now, setNow] = useState(Date.now());
  /** Why the conversations could not be read the last time; gone once a read succeeds. */
  const [error, setError] = useState<string>();
  const tabs: InboxTab[] = props.manages ? ['waiting', 'mine', 'all'] : ['waiting', 'mine'];

  const ticket = useReloadTickets();

  const load = useCallback(async () => {
    const fresh = ticket();
    try {
      const shown = await readInbox(tab);
      if (!fresh()) return;
      setRows(shown.rows);
      const waiting = tab === 'waiting' ? shown : await readInbox('waiting');
      if (!fresh()) return;
      setWaitingCount(waiting.rows.length);
      setMoreWaiting(waiting.more);
      setError(undefined);
    } catch (err) {
      // Said on the page: rows that stay as they were, or "Loading…" for good, would look like a
      // quiet inbox while people wait.
      if (fresh()) setError(err instanceof ApiError ? err.message : 'the hub cannot be reached');
    }
  }, [tab, ticket]);

  useEffect(() => {
    void load();
  }, [load]);

  useEffect(() => {
    const tick = setInterval(() => setNow(Date.now()), AGE_TICK_MS);
    return () => clearInterval(tick);
  }, []);

  useEffect(() => {
    document.title = waitingCount > 0 ? `(${waitingLabel}) ${BASE_TITLE}` : BASE_TITLE;
    return () => {
      document.title = BASE_TITLE;
    };
  }, [waitingCount, waitingLabel]);

  useConversationEvents((event) => {
    if (event.type === 'conversation.waiting') {
      const person = event.data.person as { name?: string; native_id: string } | undefined;
      announceWaiting('A conversation is waiting', person ? personName(person) : 'Someone asks for a person');
    }
    void load();
  });

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (typingInField(event) || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === 'n') {
        // The one who has waited longest (the list is newest first).
        const next = rows
          ?.filter((r) => r.state === 'waiting')
          .reduce<ConversationSummary | undefined>(
            (longest, r) =>
              !longest || Date.parse(r.waiting_since ?? '') < Date.parse(longest.waiting_since ?? '')
                ? r
                : longest,
            undefined,
          );
        if (next) navigate({ page: 'conversation', sessionId: next.session_id });
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [rows]);

  return (
    <main class="inbox">
      <div class="inbox-head">
        <div role="tablist" aria-label="Conversations">
          {tabs.map((t) => (
            <button
              type="button"
              role="tab"
              aria-selected={tab === t}
              class={tab === t ? 'tab active' : 'tab'}
              onClick={() => setTab(t)}
            >
              {TAB_LABELS[t]}
              {t === 'waiting' && waitingCount > 0 && <span class="badge">{waitingLabel}</span>}
            </button>
          ))}
        </div>
        <label class="notify">
          <input
            type="checkbox"
            checked={notify}
            onChange={async (e) => setNotify(await setNotificationsWanted(e.currentTarget.checked))}
          />
          Notify me
        </label>
      </div>
      {error && (
        <p class="error" role="alert">
          The conversations cannot be loaded: {error}.{' '}
          <button type="button" class="link" onClick={() => void load()}>
            Try again
          </button>
        </p>
      )}
      {rows === undefined ? (
        !error && <p class="loading">Loading…</p>
      ) : rows.length === 0 ? (
        <p class="empty">No conversations here.</p>
      ) : (
        <ul class="conversations" aria-label={`${TAB_LABELS[tab]} conversations`}>
          {rows.map((row) => (
            <li>
              <a
                href={`/console/conversations/${encodeURIComponent(row.session_id)}`}
                onClick={(e) => {
                  e.preventDefault();
                  navigate({ page: 'conversation', sessionId: row.session_id });
                }}
              >
                <span class={`channel channel-${row.channel}`}>{row.channel}</span>
                <strong class="person" dir="auto">
                  {personName(row.person)}
                </strong>
                <span class="bot">{row.bot}</span>
                {row.queue && <span class="queue">{row.queue}</span>}
                <span class={`state state-${row.state}`}>{row.state}</span>
                <span class="since">
                  {timeAgo(row.state === 'waiting' ? row.waiting_since : row.last_message?.created_at, now)}
                </span>
                <span class="preview" dir="auto">
                  {row.last_message?.text ?? ''}
                </span>
              </a>
            </li>
          ))}
        </ul>
      )}
      <p class="hint">
        Shortcuts: <kbd>n</kbd> next waiting conversation, <kbd>c</kbd> claim, <kbd>r</kbd> release.
      </p>
      {props.me.status !== 'available' && (
        <p class="hint">You are {props.me.status}: the bot will not hand you new conversations.</p>
      )}
    </main>
  );
}
