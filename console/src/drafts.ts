/**
 * What the agent has typed and not sent, per conversation, for as long as the tab lives: going to
 * the inbox and back, a reload, or signing in again after the sign-in ended keeps it; it never
 * shows in another conversation's box. Forgotten at sign-out, so the next person does not see it.
 */

const DRAFTS_KEY = 'switchboard.console.drafts';

function readAll(): Record<string, string> {
  try {
    const parsed: unknown = JSON.parse(sessionStorage.getItem(DRAFTS_KEY) ?? '{}');
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, string>) : {};
  } catch {
    return {};
  }
}

export function draftOf(sessionId: string): string {
  const draft = readAll()[sessionId];
  return typeof draft === 'string' ? draft : '';
}

export function keepDraft(sessionId: string, text: string): void {
  const all = readAll();
  if (text) all[sessionId] = text;
  else delete all[sessionId];
  try {
    sessionStorage.setItem(DRAFTS_KEY, JSON.stringify(all));
  } catch {
    // Storage full or refused: the draft lives as long as the page shows it.
  }
}

export function forgetDrafts(): void {
  try {
    sessionStorage.removeItem(DRAFTS_KEY);
  } catch {
    // Nothing was kept.
  }
}
