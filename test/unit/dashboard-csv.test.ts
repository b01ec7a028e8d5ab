import { describe, expect, it } from 'vitest';
import { toCsv } from '../../src/http/dashboard-api.ts';

describe('the analytics CSV', () => {
  it('keeps a cell a spreadsheet would read as a formula as text, a leading tab or carriage return too', () => {
    const names = ['=1+1', '+cmd', '-2', '@SUM(A1)', '\t=HYPERLINK("https://evil.example")', '\r=1', 'plain'];
    const csv = toCsv({
      metric: 'tools',
      bucket: 'day',
      bot: null,
      from: '2026-12-01T00:00:00.000Z',
      to: '2026-12-02T00:00:00.000Z',
      series: names.map((name) => ({
        name,
        unit: 'count',
        total: 1,
        points: [{ t: '2026-12-01T00:00:00.000Z', v: 1 }],
      })),
    });
    const header = csv.split('\r\n', 1)[0]!;
    expect(header).toBe(
      [
        't',
        "'=1+1",
        "'+cmd",
        "'-2",
        "'@SUM(A1)",
        `"'\t=HYPERLINK(""https://evil.example"")"`,
        `"'\r=1"`,
        'plain',
      ].join(','),
    );
    // Numbers stay numbers, a negative one too.
    expect(csv.split('\r\n')[1]).toBe('2026-12-01T00:00:00.000Z,1,1,1,1,1,1,1');
  });
});
