import type { Attachment } from '../envelope.ts';
import type { FileStore } from './store.ts';

/** A file id a client named that is not one of its session's uploads. */
export class UnknownFileError extends Error {
  override name = 'UnknownFileError';
  constructor(readonly fileId: string) {
    super(`there is no file ${fileId} in this session; upload it with POST /api/session/files first`);
  }
}

/**
 * The attachments of a message whose client names files it uploaded (`files: [file_id]`): each
 * must be an upload of the token's session (`owner`), or of the session the message goes to. A
 * message that lands in the token's next session (after an idle-out) takes its files along.
 */
export async function uploadedAttachments(
  files: FileStore,
  ids: readonly string[] | undefined,
  owner: string,
  target: string,
): Promise<Attachment[]> {
  if (!ids?.length) return [];
  const unique = [...new Set(ids)];
  const found = await files.getMany(unique);
  const byId = new Map(found.map((f) => [f.id, f]));
  const attachments: Attachment[] = [];
  for (const id of unique) {
    const f = byId.get(id);
    if (!f || (f.sessionId !== owner && f.sessionId !== target)) throw new UnknownFileError(id);
    attachments.push({ type: f.type, name: f.name, size: f.size, fileId: f.id });
  }
  if (owner !== target) await files.move(unique, owner, target);
  return attachments;
}
