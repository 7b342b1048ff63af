/**
 * What every reader of a text tool-call block shares: the name and nesting limits, the reasons a
 * block is refused, and the shape of a reading before the scanner knows the block's extent.
 */
import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';

/**
 * The tool names a text tool call may use: what every provider's native tool calling accepts.
 *
 * @example
 * ```ts
 * TEXT_TOOL_CALL_NAME_PATTERN.test('read_file'); // true
 * TEXT_TOOL_CALL_NAME_PATTERN.test('1st tool'); // false
 * ```
 */
export const TEXT_TOOL_CALL_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/**
 * The deepest nesting of arrays and objects a JSON text in a tool call may have. Deeper values
 * would overflow the stack of whoever serialises the arguments next.
 *
 * @example
 * ```ts
 * MAX_TEXT_TOOL_CALL_JSON_DEPTH; // 64
 * ```
 */
export const MAX_TEXT_TOOL_CALL_JSON_DEPTH = 64;

/**
 * Why a block that was meant as a tool call did not become one.
 *
 * @example
 * ```ts
 * const reason: TextToolCallIssueReason = 'unknown-tool';
 * ```
 */
export type TextToolCallIssueReason =
  /** The input is over `maxBytes`; nothing was inspected. */
  | 'too-large'
  /** An opening tag or ```` ```tool_call ```` fence without its end. */
  | 'unclosed-block'
  | 'invalid-json'
  | 'too-deeply-nested'
  /** The block is not shaped like a call (no string `name`, junk between tags, …). */
  | 'invalid-tool-call'
  | 'invalid-name'
  /** The name is well-formed but not among the offered `toolNames`. */
  | 'unknown-tool'
  /** The arguments are not a JSON object (nor a JSON string holding one). */
  | 'invalid-arguments';

/**
 * What the readers need to know about the parse they serve.
 *
 * @example
 * ```ts
 * const context: TextToolCallContext = { toolNames: new Set(['read_file']) };
 * ```
 */
export interface TextToolCallContext {
  /** The tools on offer, or `undefined` when any well-formed name is accepted. */
  readonly toolNames: ReadonlySet<string> | undefined;
}

/**
 * One accepted call, before the parser numbers it.
 *
 * @example
 * ```ts
 * const call: ParsedToolCall = { name: 'read_file', arguments: { path: 'a.ts' } };
 * ```
 */
export interface ParsedToolCall {
  readonly name: string;
  readonly arguments: JsonObject;
}

/**
 * The reading of a block's content, before its extent is known to the scanner.
 *
 * @example
 * ```ts
 * const reading: TextToolCallReading = { kind: 'issue', reason: 'invalid-json' };
 * ```
 */
export type TextToolCallReading =
  | { readonly kind: 'calls'; readonly calls: readonly ParsedToolCall[] }
  | { readonly kind: 'issue'; readonly reason: TextToolCallIssueReason }
  | { readonly kind: 'prose' };

/**
 * Why a tool name is refused: malformed, or not among the offered tools. `undefined` when it is
 * accepted.
 *
 * @example
 * ```ts
 * checkToolCallName('read_file', { toolNames: undefined }); // undefined
 * checkToolCallName('1st tool', { toolNames: undefined }); // 'invalid-name'
 * checkToolCallName('rm', { toolNames: new Set(['read_file']) }); // 'unknown-tool'
 * ```
 */
export function checkToolCallName(
  name: string,
  context: TextToolCallContext,
): TextToolCallIssueReason | undefined {
  if (!TEXT_TOOL_CALL_NAME_PATTERN.test(name)) return 'invalid-name';
  if (context.toolNames !== undefined && !context.toolNames.has(name)) return 'unknown-tool';
  return undefined;
}
