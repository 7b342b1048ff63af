import { randomBytes } from 'node:crypto';

/** The prefixes of Keel's identifiers; the prefix tells a reader what an id names. */
export type IdPrefix = 'agt' | 'run' | 'apr' | 'grt' | 'rsv' | 'use' | 'node' | 'trc' | 'evt';

/**
 * Creates a time-ordered identifier: the prefix and a UUIDv7 in lowercase hex without dashes,
 * so that ids sort by creation time and index well.
 *
 * @example
 * ```ts
 * createId('run'); // 'run_0193f1c2a4b07c3d8e9f0a1b2c3d4e5f'
 * ```
 */
export function createId(prefix: IdPrefix, now: number = Date.now()): string {
  const bytes = randomBytes(16);
  const milliseconds = BigInt(now);
  for (let index = 0; index < 6; index += 1) {
    bytes[index] = Number((milliseconds >> BigInt(8 * (5 - index))) & 0xffn);
  }
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  return `${prefix}_${bytes.toString('hex')}`;
}
