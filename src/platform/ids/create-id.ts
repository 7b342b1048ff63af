import { randomUUID } from 'node:crypto';

/** The prefixes of Keel's identifiers; the prefix tells a reader what an id names. */
export type IdPrefix =
  | 'agt'
  | 'run'
  | 'apr'
  | 'grt'
  | 'rsv'
  | 'use'
  | 'node'
  | 'trc'
  | 'evt'
  | 'task';

/**
 * Creates a time-ordered identifier: the prefix and a UUIDv7 in lowercase hex without dashes,
 * so that ids sort by creation time and index well. The 74 random bits come from
 * `randomUUID()` (a v4 UUID, whose variant bits are v7's too), which draws from a cached
 * block of CSPRNG output instead of asking the kernel for 16 bytes on every id.
 *
 * @example
 * ```ts
 * createId('run'); // 'run_0193f1c2a4b07c3d8e9f0a1b2c3d4e5f'
 * ```
 */
export function createId(prefix: IdPrefix, now: number = Date.now()): string {
  const random = randomUUID();
  // xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx: keep the 3 hex digits after the version, the
  // variant group and the last 12; the first 48 bits become the time.
  const time = Math.max(0, Math.floor(now)).toString(16).padStart(12, '0').slice(-12);
  return `${prefix}_${time}7${random.slice(15, 18)}${random.slice(19, 23)}${random.slice(24)}`;
}
