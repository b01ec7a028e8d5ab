import { z } from 'zod';
import { HEAR_TYPES } from './hear.ts';
import type { Value } from './values.ts';

const ValueSchema: z.ZodType<Value> = z.lazy(() =>
  z.union([
    z.null(),
    z.boolean(),
    z.number(),
    z.string(),
    z.array(ValueSchema),
    z.record(z.string(), ValueSchema),
  ]),
);

/** Where a frame stands in its script, in words that survive edits elsewhere in the file. */
const AnchorSchema = z.object({
  /** Enclosing blocks' first lines, the statement's text and its occurrence. */
  anchor: z.string(),
  /** Instructions from the statement's start. */
  offset: z.number().int().min(0),
  /** The instruction found there, checked again after an edit. */
  op: z.string(),
});

const FrameSchema = z.object({
  script: z.string().min(1),
  /** Content hash of the script version this frame ran. */
  hash: z.string(),
  /** '' for the script's main part, a FUNCTION or SUB name, or '@end'. */
  unit: z.string(),
  pc: z.number().int().min(0),
  locals: z.record(z.string(), ValueSchema),
  stack: z.array(ValueSchema),
  at: AnchorSchema,
});

const WaitingSchema = z.object({
  /** The local variable that receives the answer. */
  target: z.string(),
  type: z.enum(HEAR_TYPES).nullable(),
  choices: z.array(z.string()).nullable(),
  /** Invalid answers so far. */
  tries: z.number().int().min(0),
  /** The envelope whose turn asked: that same turn's message is not the answer. */
  askedIn: z.string(),
});

/**
 * A script waiting at HEAR, as saved in `session_state.dialog`: plain JSON, so any worker
 * process picks it up after any restart. Frames run bottom (the script the session started)
 * to top (where HEAR waits).
 */
export const DialogStateSchema = z.object({
  v: z.literal(1),
  frames: z.array(FrameSchema).min(1),
  waiting: WaitingSchema,
});

export type DialogState = z.infer<typeof DialogStateSchema>;
export type FrameState = z.infer<typeof FrameSchema>;
export type WaitState = z.infer<typeof WaitingSchema>;
