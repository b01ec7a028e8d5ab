import { describe, expect, it } from 'vitest';
import { isTeamsFile, needsBotToken } from '../../adapters/teams/inbound/files.ts';

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
