import type { SessionState } from '../store/records.ts';

/** What the bot keeps for a session, as the API shows it (the dialog's position only as a flag). */
export function toApiState(state: SessionState) {
  return {
    variables: state.variables,
    context: state.context,
    kbs: state.kbs,
    tools: state.tools,
    suggestions: state.suggestions,
    waiting_for_input: state.dialog !== null,
  };
}
