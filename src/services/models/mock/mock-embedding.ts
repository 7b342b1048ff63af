import { createHash } from 'node:crypto';

/**
 * A deterministic unit vector for a text, so embedding tests can compare results.
 *
 * @example
 * ```ts
 * mockEmbedding('hello', 8).length; // 8
 * ```
 */
export function mockEmbedding(text: string, dimensions: number): number[] {
  const values: number[] = [];
  let block = createHash('sha256').update(text).digest();
  for (let index = 0; values.length < dimensions; index += 1) {
    if (index > 0 && index % 16 === 0) block = createHash('sha256').update(block).digest();
    values.push(block.readInt16BE((index % 16) * 2) / 32_768);
  }
  const norm = Math.hypot(...values) || 1;
  return values.map((value) => value / norm);
}
