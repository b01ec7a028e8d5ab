import { readFile } from 'node:fs/promises';

/** The `code` of an access token file that could not be read: a failure of the channel's login. */
export const ACCESS_TOKEN_FILE_ERROR = 'ETOKENFILE';

/**
 * Reads an OAuth2 access token from `file` (EMAIL_IMAP_ACCESS_TOKEN_FILE,
 * EMAIL_SMTP_ACCESS_TOKEN_FILE), again at every connection: access tokens live about an hour,
 * and a process beside the hub (a sidecar, a cron job) writes the fresh one there, so the hub
 * picks it up without a restart. Surrounding whitespace (a trailing newline) is not the token's.
 * Throws an error with `code` ACCESS_TOKEN_FILE_ERROR naming the file, never its content.
 */
export async function readAccessToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw tokenFileError(
      `cannot read the access token file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  const token = text.trim();
  if (!token) throw tokenFileError(`the access token file ${file} is empty`);
  return token;
}

function tokenFileError(message: string): Error {
  return Object.assign(new Error(message), { code: ACCESS_TOKEN_FILE_ERROR });
}
