import fs from 'node:fs/promises';
import path from 'node:path';
import { BOTS_DIR } from '../config/bots.ts';
import { compileScript } from '../dialog/compiler.ts';
import { DialogStateSchema } from '../dialog/state.ts';

export interface FramePosition {
  script: string;
  /** '' for the script's main part, a FUNCTION or SUB name. */
  unit: string;
  /** The line in the script as it is now; null when the file changed since the frame ran there. */
  line: number | null;
  /** The statement, as the position's anchor names it. */
  statement: string;
}

export interface DialogPosition {
  /** Bottom (the script the session started) to top (where HEAR waits). */
  frames: FramePosition[];
  hear: {
    variable: string;
    /** HEAR's type (`AS NUMBER`, `AS EMAIL`...), null for any text. */
    type: string | null;
    choices: string[] | null;
    tries: number;
  };
}

/** Where a session's dialog waits, read from its saved state and the bot's scripts; null when it does not. */
export async function dialogPosition(
  configDir: string,
  bot: string,
  dialog: unknown,
): Promise<DialogPosition | null> {
  const parsed = DialogStateSchema.safeParse(dialog);
  if (!parsed.success) return null;
  const state = parsed.data;
  const frames = await Promise.all(
    state.frames.map(async (frame, i) => {
      // The top frame stands at its HEAR; the others just after the call that led up.
      const pc = i === state.frames.length - 1 ? frame.pc : frame.pc - 1;
      let line: number | null = null;
      const source = await fs
        .readFile(path.join(configDir, BOTS_DIR, bot, frame.script), 'utf8')
        .catch(() => undefined);
      if (source !== undefined) {
        const { script } = compileScript(frame.script, source);
        if (script && script.hash === frame.hash) line = script.units.get(frame.unit)?.code[pc]?.line ?? null;
      }
      return { script: frame.script, unit: frame.unit, line, statement: frame.at.anchor };
    }),
  );
  const w = state.waiting;
  return { frames, hear: { variable: w.target, type: w.type, choices: w.choices, tries: w.tries } };
}
