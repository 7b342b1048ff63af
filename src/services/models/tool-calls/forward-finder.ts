/**
 * The forward-only scanning the text tool-call parser is built on. Searches use `indexOf` from a
 * cursor that only moves forward, and every search remembers its last answer, so hostile input
 * costs time linear in its length: there is no regular expression that could backtrack.
 */

/**
 * Tag names and fence info strings are short; a longer run is not a tag.
 *
 * @example
 * ```ts
 * if (lineEnd - infoStart > TAG_WINDOW) return { kind: 'prose', end: infoStart };
 * ```
 */
export const TAG_WINDOW = 128;

/**
 * `indexOf` that remembers its last answer: asked again from a position at or before that
 * answer (and not before the last start), it answers without searching. With a cursor that
 * moves forward, every character is searched a bounded number of times.
 *
 * @example
 * ```ts
 * const fences = new ForwardFinder(text, '```', isAtLineStart);
 * const first = fences.next(0);
 * fences.next(first); // same answer, no search
 * ```
 */
export class ForwardFinder {
  readonly #text: string;
  readonly #needle: string;
  readonly #accept: (text: string, index: number) => boolean;
  #from = -1;
  #found = -1;

  constructor(
    text: string,
    needle: string,
    accept: (text: string, index: number) => boolean = () => true,
  ) {
    this.#text = text;
    this.#needle = needle;
    this.#accept = accept;
  }

  /**
   * The first accepted occurrence of the needle at or after `from`, or -1.
   *
   * @example
   * ```ts
   * new ForwardFinder('a<b<c', '<').next(2); // 3
   * ```
   */
  next(from: number): number {
    if (this.#from !== -1 && from >= this.#from && (this.#found === -1 || from <= this.#found)) {
      return this.#found;
    }
    this.#from = from;
    let index = this.#text.indexOf(this.#needle, from);
    while (index !== -1 && !this.#accept(this.#text, index)) {
      index = this.#text.indexOf(this.#needle, index + 1);
    }
    this.#found = index;
    return index;
  }
}

/**
 * The smallest of the indexes that are not -1, or -1 when all are.
 *
 * @example
 * ```ts
 * earliest(7, -1, 3); // 3
 * earliest(-1, -1); // -1
 * ```
 */
export function earliest(...indexes: number[]): number {
  let best = -1;
  for (const index of indexes) {
    if (index !== -1 && (best === -1 || index < best)) best = index;
  }
  return best;
}

/**
 * Whether a fence counts: only at the start of a line, after at most three spaces (as in
 * Markdown).
 *
 * @example
 * ```ts
 * isAtLineStart('text\n   ```json', 8); // true
 * isAtLineStart('text ```json', 5); // false
 * ```
 */
export function isAtLineStart(text: string, index: number): boolean {
  let position = index;
  while (position > 0 && index - position < 4 && text[position - 1] === ' ') position -= 1;
  return position === 0 || text[position - 1] === '\n';
}

/**
 * The end of a tag's head (`>`), or -1 when it is not a tag: too long, or across a line.
 *
 * @example
 * ```ts
 * findTagEnd('<function=read_file>{}', 10); // 19
 * findTagEnd('<function=read\n_file>', 10); // -1
 * ```
 */
export function findTagEnd(text: string, from: number): number {
  const limit = Math.min(text.length, from + TAG_WINDOW);
  for (let index = from; index < limit; index += 1) {
    const character = text[index];
    if (character === '>') return index;
    if (character === '<' || character === '\n') return -1;
  }
  return -1;
}

/**
 * Whether a character is whitespace; `undefined` (past the end) is not.
 *
 * @example
 * ```ts
 * isWhitespace('\n'); // true
 * isWhitespace(text[text.length]); // false
 * ```
 */
export function isWhitespace(character: string | undefined): boolean {
  return character !== undefined && character.trim() === '';
}
