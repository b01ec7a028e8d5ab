import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adminClient, eventually } from '../helpers/admin.ts';
import { apiClient } from '../helpers/hub.ts';
import { ServerProcess } from '../helpers/server-process.ts';

const ADMIN_TOKEN = 'outbound-e2e-admin-token-0123456789abcdef';

describe('a scheduled send survives a SIGKILL of the only worker', () => {
  let dataDir: string | undefined;
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.stop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('fires once, 2 s after it was asked for, after the process was killed and started again', async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sbt-outbound-'));
    const env = { PORT: '0', DATA_DIR: dataDir, ADMIN_TOKEN, SCHEDULER_POLL_MS: '200' };
    server = new ServerProcess(env);
    await server.start();
    const session = await apiClient(server.url).createSession('default');
    const sendAt = new Date(Date.now() + 2_000);
    const res = await adminClient(server.url, ADMIN_TOKEN)('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'api',
      to: session.session_id,
      text: 'Your reminder',
      send_at: sendAt.toISOString(),
    });
    expect(res.status).toBe(202);
    expect(res.json.status).toBe('scheduled');
    await server.stop('SIGKILL');
    server = new ServerProcess(env);
    await server.start();
    const admin = adminClient(server.url, ADMIN_TOKEN);
    await eventually(
      async () => {
        const s = (await admin('GET', `/api/admin/messages/${res.json.message_id}`)).json;
        return s.status !== 'scheduled' && s.status !== 'queued' ? s : undefined;
      },
      'the scheduled message sent',
      30_000,
    );
    const history = await fetch(`${server.url}/api/session/messages`, {
      headers: { authorization: `Bearer ${session.token}` },
    }).then((r) => r.json());
    const rows = (
      history.messages as { role: string; text?: string; content?: string; created_at?: string }[]
    ).filter((m) => (m.text ?? m.content) === 'Your reminder');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.role).toBe('assistant');
  });
});
