import { describe, expect, it } from 'vitest';
import { compileScript } from '../../src/dialog/compiler.ts';

const compiled = (source: string) => {
  const { script, errors } = compileScript('t.bas', source);
  expect(errors.map((e) => e.message)).toEqual([]);
  return script!.units.get('')!.code.map((i) => i.op);
};
const errorsOf = (source: string) => compileScript('t.bas', source).errors.map((e) => e.message);

describe('dialog: files and cards', () => {
  it("accepts the seeds' SHOW IMAGE", () => {
    const seed = `channel = GET SESSION "channel"
IF channel = "whatsapp" THEN
    ' WhatsApp-specific features
    ADD SUGGESTION "Call Support" AS "phone"
ELSE IF channel = "web" THEN
    ' Web-specific features
    SHOW IMAGE "dashboard.png"
END IF
`;
    expect(compiled(seed)).toContain('sendFile');
  });

  it('parses SEND FILE with and without a caption, and TALK CARD and TALK CAROUSEL', () => {
    expect(compiled('SEND FILE "invoice.pdf"\nSEND FILE "invoice.pdf", "Your invoice"')).toEqual([
      'push',
      'sendFile',
      'push',
      'push',
      'sendFile',
      'push',
      'return',
    ]);
    expect(
      compiled('TALK CARD "Kettle", "1.7 l", "kettle.png", "Buy|buy", "Manual|https://example.com"'),
    ).toEqual(['push', 'push', 'push', 'push', 'push', 'talkCard', 'push', 'return']);
    expect(compiled('cards = []\nTALK CAROUSEL cards')).toContain('talkCarousel');
  });

  it('still reads SHOW, SEND, CARD and CAROUSEL as variable names', () => {
    const ops = compiled(
      'card = "x"\nTALK card\nTALK card + "y"\nshow = 1\nsend = 2\ncarousel = 3\nTALK carousel',
    );
    expect(ops.filter((o) => o === 'talk')).toHaveLength(3);
    expect(ops).not.toContain('talkCard');
  });

  it('says what is wrong with a malformed statement', () => {
    expect(errorsOf('SEND FILE')).toEqual(['t.bas:1:10: expected a value, found the end of the line']);
  });
});
