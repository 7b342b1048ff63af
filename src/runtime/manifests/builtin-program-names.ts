/**
 * The names a manifest's `program.builtin` may use: the programs every node ships (the agents
 * layer holds them; its tests keep this list and them the same). A manifest naming another is
 * refused at deploy, not when its first run starts.
 *
 * @example
 * ```ts
 * BUILTIN_PROGRAM_NAMES.includes('tool-loop'); // true
 * ```
 */
export const BUILTIN_PROGRAM_NAMES: readonly string[] = Object.freeze([
  'tool-loop',
  'coder',
  'rover',
]);
