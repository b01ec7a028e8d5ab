/** The shapes of the agent API (README "Human handoff"), as the console reads them. */

export type Role = 'agent' | 'supervisor' | 'admin';
export type AgentStatus = 'available' | 'away' | 'offline';

export interface Me {
  agent_id: string;
  name: string;
  email: string;
  role: Role;
  bots: string[];
  capacity: number;
  status: AgentStatus;
}

export interface ConversationSummary {
  session_id: string;
  bot: string;
  channel: string;
  person: { name?: string | null; native_id: string };
  state: 'waiting' | 'assigned';
  queue?: string | null;
  waiting_since?: string | null;
  assigned_to?: string | null;
  last_message?: { role: string; text: string; created_at: string } | null;
}

export interface HistoryRow {
  seq?: number;
  id?: string;
  role: string;
  text: string;
  created_at: string;
  agent_id?: string | null;
  agent_name?: string | null;
  delivery_status?: string | null;
  attachments?: FileView[];
  refused_attachments?: RefusedFileView[];
  cards?: CardView[];
  /** `text` only stands for the files or cards (what text-only channels were sent). */
  text_is_fallback?: boolean;
}

/** A file a message carries; `url` is a signed link on the hub, or the channel's own. */
export interface FileView {
  type: string;
  name?: string;
  size?: number;
  url?: string;
}

/** A file the hub did not keep: `too_large`, `type_refused`, `unavailable`. */
export interface RefusedFileView {
  type: string;
  name?: string;
  size?: number;
  reason: string;
  message?: string;
}

export interface CardView {
  title?: string;
  text?: string;
  image?: { url: string; name?: string };
  buttons?: ({ title: string; value: string } | { title: string; url: string })[];
}

export interface ConversationDetail extends ConversationSummary {
  identities?: { channel: string; native_id: string }[];
  messages: HistoryRow[];
  /** The `before` of the page of older rows; null when these are the first. */
  next_before?: number | null;
  variables?: Record<string, unknown>;
  context?: unknown;
  events?: { type: string; created_at: string; data?: unknown }[];
}

export interface AgentRecord {
  agent_id: string;
  name: string;
  email: string;
  role: Role;
  bots: string[];
  queues?: string[];
  capacity: number;
  status: AgentStatus;
}

export type InboxTab = 'waiting' | 'mine' | 'all';

/** A colleague a conversation can be handed to (`GET …/{session_id}/transfer-targets`). */
export interface TransferTarget {
  agent_id: string;
  name: string;
  status: AgentStatus;
  open_conversations: number;
  capacity: number;
}
