import { describe, expect, it } from 'vitest';
import { cardChoices, cardsAsText } from '../../src/cards/card.ts';
import { chooseNumbered, numberedAnswer, numberedLines } from '../../src/cards/numbered.ts';

describe('numbered choices (shared by the channels that show choices as text)', () => {
  it('reads a message that is only a number, in the ways people type one', () => {
    for (const typed of ['2', ' 2 ', '2.', '2)', '#2', '2 .'])
      expect(numberedAnswer(typed), JSON.stringify(typed)).toBe(2);
    for (const typed of ['2 please', 'two', '', '123', '1.5', undefined])
      expect(numberedAnswer(typed), JSON.stringify(typed)).toBeUndefined();
  });

  it("a number picks the card's value button of that number; a number beyond them picks nothing", () => {
    const cards = [
      {
        title: 'K-200',
        buttons: [
          { title: 'Buy K-200', value: 'buy k200' },
          { title: 'Manual', url: 'https://example.com/k200' },
        ],
      },
      { title: 'K-300', buttons: [{ title: 'Buy K-300', value: 'buy k300' }] },
    ];
    // The text the card shows: value buttons numbered across the reply, links written out.
    expect(cardsAsText(cards)).toBe(
      'K-200\n1. Buy K-200\nManual: https://example.com/k200\n\nK-300\n2. Buy K-300',
    );
    const choices = cardChoices(cards);
    expect(chooseNumbered('2', choices)).toEqual({
      index: 1,
      choice: { text: 'Buy K-300', value: 'buy k300' },
    });
    expect(chooseNumbered('1.', choices)?.choice.value).toBe('buy k200');
    expect(chooseNumbered('3', choices)).toBeUndefined();
    expect(chooseNumbered('0', choices)).toBeUndefined();
    expect(chooseNumbered('buy', choices)).toBeUndefined();
  });

  it('writes choices one per line, numbered from where the reply is', () => {
    expect(numberedLines([{ title: 'Yes' }, { title: 'No' }])).toBe('1. Yes\n2. No');
    expect(numberedLines([{ title: 'Later' }], 3)).toBe('3. Later');
  });
});
