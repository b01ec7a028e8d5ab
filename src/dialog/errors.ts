/** Where something is in a script: 1-based line and column. */
export interface SourcePosition {
  line: number;
  column: number;
}

/** A script that does not parse or compile. `toString()` is `file:line:column: message`. */
export class DialogSyntaxError extends Error {
  override name = 'DialogSyntaxError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}:${column}: ${reason}`);
  }
}

/** A script that failed while running: logged with file:line, answered with the bot's apology. */
export class DialogRuntimeError extends Error {
  override name = 'DialogRuntimeError';
  constructor(
    readonly reason: string,
    readonly file?: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(file ? `${file}:${line}:${column}: ${reason}` : reason);
  }

  /** The same error, placed at an instruction when it was raised without a position. */
  at(file: string, position: SourcePosition): DialogRuntimeError {
    return this.file ? this : new DialogRuntimeError(this.reason, file, position.line, position.column);
  }
}
