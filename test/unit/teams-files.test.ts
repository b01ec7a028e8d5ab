import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { fetchTeamsFile, isTeamsFile, needsBotToken } from '../../adapters/teams/inbound/files.ts';
import { FetchRefusedError } from '../../src/files/safe-fetch.ts';

const SERVICE_URL = 'https://smba.trafficmanager.net/amer/';

describe("Teams attachments: which downloads carry the bot's token", () => {
  it("Teams and Bot Framework hosts, and the activity's own connector, get it", () => {
    for (const url of [
      'https://smba.trafficmanager.net/amer/v3/attachments/0-cus-d1-abc/views/original',
      'https://smba.trafficmanager.net/emea/v3/attachments/x/views/original',
      'https://us-api.asm.skype.com/v1/objects/0-wus-d3-xyz/views/imgo',
      'https://smba.infra.gcc.teams.microsoft.com/gcc/v3/attachments/x/views/original',
      'https://smba.infra.gov.teams.microsoft.us/gov/v3/attachments/x/views/original',
      'https://europe.botframework.com/v3/attachments/x/views/original',
    ])
      expect(needsBotToken(new URL(url), SERVICE_URL), url).toBe(true);
    // A private cloud's (or a test's) connector: the serviceUrl the verified token named.
    expect(
      needsBotToken(
        new URL('http://127.0.0.1:4000/v3/attachments/a/views/original'),
        'http://127.0.0.1:4000/',
      ),
    ).toBe(true);
  });

  it('never any other host, nor a look-alike, nor plain http', () => {
    for (const url of [
      'https://upload.wikimedia.org/wikipedia/en/a/a6/Bender_Rodriguez.png',
      'https://evil.trafficmanager.net/amer/v3/attachments/x',
      'https://smba.trafficmanager.net.evil.example/v3/attachments/x',
      'https://botframework.com.evil.example/x',
      'https://notasm.skype.com.example/x',
      'http://smba.trafficmanager.net/amer/v3/attachments/x',
      'http://127.0.0.1:4000/v3/attachments/a',
    ])
      expect(needsBotToken(new URL(url), SERVICE_URL), url).toBe(false);
    expect(needsBotToken(new URL('http://127.0.0.1:4001/x'), 'http://127.0.0.1:4000/')).toBe(false);
  });

  it('cards and the rich-text copy are not files', () => {
    expect(isTeamsFile({ type: 'image/png', url: 'https://x.example/a.png' })).toBe(true);
    expect(isTeamsFile({ type: 'application/vnd.microsoft.card.adaptive', url: 'https://x.example/a' })).toBe(
      false,
    );
    expect(isTeamsFile({ type: 'text/html' })).toBe(false);
    expect(isTeamsFile({ type: 'image/png' })).toBe(false);
  });
});

describe('fetchTeamsFile: the token goes to the Teams host and nowhere else', () => {
  const servers: Server[] = [];
  const serve = async (
    handle: (url: string, headers: IncomingHttpHeaders) => [number, Record<string, string>, string],
  ) => {
    const seen: { url: string; authorization: string | undefined }[] = [];
    const server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
      const [status, headers, body] = handle(req.url ?? '', req.headers);
      res.writeHead(status, headers).end(body);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    return { url: `http://127.0.0.1:${port}/`, seen };
  };
  afterAll(() => {
    for (const s of servers) s.close();
  });
  const read = async (
    body: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ReadableStream<Uint8Array>,
  ) => {
    const parts: Uint8Array[] = [];
    for await (const part of body as AsyncIterable<Uint8Array>) parts.push(part);
    return Buffer.concat(parts).toString();
  };

  it("sends the bot's token to the activity's connector, and drops it on a redirect to another host", async () => {
    const elsewhere = await serve(() => [200, { 'content-type': 'image/png' }, 'not for the token']);
    const connector = await serve((url) =>
      url.endsWith('/here')
        ? [200, { 'content-type': 'image/png' }, 'the bytes']
        : url.endsWith('/moved')
          ? [302, { location: '/v3/attachments/a/here' }, '']
          : [302, { location: `${elsewhere.url}stolen` }, ''],
    );
    const token = async () => 'bot-token';
    const options = { serviceUrl: connector.url, timeoutMs: 5_000, token };
    const direct = await fetchTeamsFile(
      { type: 'image/png', url: `${connector.url}v3/attachments/a/moved` },
      options,
    );
    expect(await read(direct!.body)).toBe('the bytes');
    expect(connector.seen).toEqual([
      { url: '/v3/attachments/a/moved', authorization: 'Bearer bot-token' },
      { url: '/v3/attachments/a/here', authorization: 'Bearer bot-token' },
    ]);
    // Off the connector, the download is an ordinary safe fetch: no token, and no private address.
    await expect(
      fetchTeamsFile({ type: 'image/png', url: `${connector.url}v3/attachments/a/away` }, options),
    ).rejects.toBeInstanceOf(FetchRefusedError);
    expect(elsewhere.seen).toEqual([]);
    expect(connector.seen.at(-1)).toEqual({
      url: '/v3/attachments/a/away',
      authorization: 'Bearer bot-token',
    });
  });
});
