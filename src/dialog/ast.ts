import type { SourcePosition } from './errors.ts';
import type { HearType } from './hear.ts';
import type { Value } from './values.ts';

/** `BOT MEMORY` is shared by all sessions of a bot; `USER MEMORY` follows one person across sessions and channels. */
export type MemoryScope = 'bot' | 'user';

export type Pos = SourcePosition;

/** What `DEBUG SHOW …` shows. */
export type DebugTopic = 'SESSION' | 'CONTEXT' | 'VARIABLES';

export type Expr =
  | { kind: 'literal'; value: Value; pos: Pos }
  | { kind: 'var'; name: string; pos: Pos }
  | { kind: 'list'; items: Expr[]; pos: Pos }
  | { kind: 'index'; target: Expr; index: Expr; pos: Pos }
  | { kind: 'unary'; op: '-' | 'NOT'; operand: Expr; pos: Pos }
  | { kind: 'binary'; op: BinaryOp; left: Expr; right: Expr; pos: Pos }
  | { kind: 'logical'; op: 'AND' | 'OR'; left: Expr; right: Expr; pos: Pos }
  /** A built-in function or a FUNCTION of the script; the compiler tells which. */
  | { kind: 'call'; name: string; args: Expr[]; pos: Pos }
  /** `GET name`, `GET "name"`: a session variable (or `session.*` information). */
  | { kind: 'getVar'; name: Expr; pos: Pos }
  | { kind: 'getMemory'; scope: MemoryScope; key: Expr; pos: Pos }
  | { kind: 'getSession'; key: Expr; pos: Pos }
  /** `GET AVAILABLE AGENT ["queue"]`: an agent's id, or "". */
  | { kind: 'availableAgent'; queue: Expr | null; pos: Pos }
  | { kind: 'llm'; prompt: Expr; pos: Pos }
  | { kind: 'saveState'; pos: Pos };

export type BinaryOp =
  | '+'
  | '-'
  | '*'
  | '/'
  | '\\'
  | 'MOD'
  | '^'
  | '&'
  | '='
  | '<>'
  | '<'
  | '>'
  | '<='
  | '>=';

export type HearSpec = { type: HearType } | { choices: Expr[] };

interface StmtBase {
  pos: Pos;
  /**
   * The statement's (for blocks: its first line's) tokens in canonical form. With the
   * enclosing blocks' texts it anchors a waiting position across edits of the script.
   */
  text: string;
}

export type StmtBody =
  | { kind: 'talk'; value: Expr }
  | { kind: 'hear'; target: string; spec: HearSpec | null }
  | { kind: 'assign'; target: string; indexes: Expr[]; value: Expr }
  | { kind: 'setVar'; name: Expr; value: Expr }
  | { kind: 'setMemory'; scope: MemoryScope; key: Expr; value: Expr }
  | { kind: 'setContext'; name: Expr; value: Expr }
  | { kind: 'clearContext'; name: Expr | null }
  | { kind: 'useKb'; name: Expr }
  | { kind: 'clearKb'; name: Expr | null }
  | { kind: 'useTool'; name: Expr }
  | { kind: 'clearTools'; name: Expr | null }
  | { kind: 'addSuggestion'; label: Expr; value: Expr | null }
  | { kind: 'clearSuggestions' }
  | { kind: 'logSession'; event: Expr; value: Expr | null }
  /** `TRANSFER SESSION [agent] [QUEUE "name"]`: hands the session to people. */
  | { kind: 'transfer'; agent: Expr | null; queue: Expr | null }
  | { kind: 'log'; value: Expr }
  | { kind: 'if'; branches: IfBranch[]; elseBody: Stmt[] | null }
  | { kind: 'for'; variable: string; from: Expr; to: Expr; step: Expr | null; body: Stmt[] }
  | { kind: 'forEach'; variable: string; list: Expr; body: Stmt[] }
  | { kind: 'while'; cond: Expr; body: Stmt[] }
  | { kind: 'callSub'; name: string; args: Expr[] }
  | { kind: 'return'; value: Expr | null }
  | { kind: 'run'; script: Expr }
  | { kind: 'restoreState'; value: Expr }
  | { kind: 'exit'; what: 'FOR' | 'WHILE' | 'FUNCTION' | 'SUB' }
  /** `SEND TO SESSION id, text`; `target = SEND TO SESSION …` keeps the refusal ("" when queued) instead of failing. */
  | { kind: 'sendToSession'; target: string | null; session: Expr; value: Expr }
  | { kind: 'createSubSession'; target: string }
  | { kind: 'runInSession'; session: Expr; script: Expr }
  | { kind: 'mergeSession'; session: Expr }
  | { kind: 'applyTemplate'; name: Expr }
  | { kind: 'debugShow'; what: DebugTopic }
  /** `SHOW IMAGE ref` (image) and `SEND FILE ref [, caption]`: a media name or an https URL. */
  | { kind: 'sendFile'; image: boolean; file: Expr; caption: Expr | null }
  /** `TALK CARD title, text [, image [, button, …]]`; a button is "Title|value" or "Title|https://…". */
  | { kind: 'talkCard'; args: Expr[] }
  /** `TALK CAROUSEL cards`: a list of records {title, text, image, buttons}. */
  | { kind: 'talkCarousel'; value: Expr }
  | { kind: 'end' };

export type Stmt = StmtBase & StmtBody;

export interface IfBranch {
  cond: Expr;
  body: Stmt[];
  /** Canonical text of this branch's own line (`ELSE IF x THEN`), for anchors. */
  text: string;
  pos: Pos;
}

export interface Routine {
  /** Upper-case: names are case-insensitive. */
  name: string;
  isFunction: boolean;
  params: string[];
  body: Stmt[];
  pos: Pos;
}

export interface ProgramAst {
  main: Stmt[];
  routines: Map<string, Routine>;
  /** The `ON SESSION END ... END ON` block, when the script has one. */
  onEnd: { body: Stmt[]; pos: Pos } | null;
  /** The `ON TRANSFER END ... END ON` block: people gave the session back to the bot. */
  onTransferEnd?: { body: Stmt[]; pos: Pos } | null;
}
