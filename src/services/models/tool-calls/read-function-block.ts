/**
 * Llama 3.1's `<function=NAME>{json}</function>` blocks, and Qwen3-coder's
 * `<function=NAME><parameter=KEY>…</function>` with or without its `<tool_call>` wrapper.
 */
import { findTagEnd, isWhitespace } from './forward-finder.ts';
import { type JsonArgumentsOutcome, readJsonArguments } from './read-json-arguments.ts';
import { PARAMETER_OPEN, readXmlParameters } from './read-xml-parameters.ts';
import {
  type BlockFinders,
  FUNCTION_CLOSE,
  FUNCTION_OPEN,
  settleReading,
  type TextToolCallBlock,
  TOOL_CALL_CLOSE,
} from './text-tool-call-block.ts';
import {
  checkToolCallName,
  type TextToolCallContext,
  type TextToolCallReading,
} from './text-tool-call-reading.ts';

/**
 * Reads the `<function=NAME>…</function>` block that opens at `start`. A head that is not a tag
 * is prose; a block without its end, or with another `<function=` before it, is `unclosed-block`.
 *
 * @example
 * ```ts
 * const text = '<function=read_file>{"path": "a.ts"}</function>';
 * readFunctionBlock(text, 0, createBlockFinders(text), { toolNames: undefined });
 * // { kind: 'calls', end: 47, calls: [{ name: 'read_file', arguments: { path: 'a.ts' } }] }
 * ```
 */
export function readFunctionBlock(
  text: string,
  start: number,
  finders: BlockFinders,
  context: TextToolCallContext,
): TextToolCallBlock {
  const headEnd = findTagEnd(text, start + FUNCTION_OPEN.length);
  if (headEnd === -1) return { kind: 'prose', end: start + FUNCTION_OPEN.length };
  const name = text.slice(start + FUNCTION_OPEN.length, headEnd).trim();
  const bodyStart = headEnd + 1;
  const close = finders.functionClose.next(bodyStart);
  const nextOpen = finders.functionOpen.next(bodyStart);
  if (nextOpen !== -1 && (close === -1 || nextOpen < close)) {
    return { kind: 'issue', end: nextOpen, reason: 'unclosed-block' };
  }
  if (close === -1) return { kind: 'issue', end: text.length, reason: 'unclosed-block' };
  let end = close + FUNCTION_CLOSE.length;
  // Qwen3-coder sometimes drops the opening <tool_call> but still writes the closing one.
  let after = end;
  while (isWhitespace(text[after])) after += 1;
  if (text.startsWith(TOOL_CALL_CLOSE, after)) end = after + TOOL_CALL_CLOSE.length;
  return settleReading(readFunctionCall(name, text.slice(bodyStart, close), context), end);
}

/**
 * Reads one function call from its name and the body between its tags: empty (no arguments), a
 * JSON object, or Qwen3-coder `<parameter=…>` elements.
 *
 * @example
 * ```ts
 * readFunctionCall('read_file', '<parameter=path>a.ts</parameter>', { toolNames: undefined });
 * // { kind: 'calls', calls: [{ name: 'read_file', arguments: { path: 'a.ts' } }] }
 * readFunctionCall('read_file', 'a.ts', { toolNames: undefined });
 * // { kind: 'issue', reason: 'invalid-arguments' }
 * ```
 */
export function readFunctionCall(
  name: string,
  body: string,
  context: TextToolCallContext,
): TextToolCallReading {
  const nameProblem = checkToolCallName(name, context);
  if (nameProblem !== undefined) return { kind: 'issue', reason: nameProblem };
  const trimmed = body.trim();
  let outcome: JsonArgumentsOutcome;
  if (trimmed === '') outcome = { arguments: {} };
  else if (trimmed.startsWith('{')) outcome = readJsonArguments(trimmed, true);
  else if (trimmed.startsWith(PARAMETER_OPEN)) outcome = readXmlParameters(trimmed);
  else outcome = { reason: 'invalid-arguments' };
  if ('reason' in outcome) return { kind: 'issue', reason: outcome.reason };
  return { kind: 'calls', calls: [{ name, arguments: outcome.arguments }] };
}
