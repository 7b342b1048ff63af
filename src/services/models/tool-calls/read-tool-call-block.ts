/**
 * Hermes/Qwen `<tool_call>…</tool_call>` blocks: JSON inside (bare or fenced), or Qwen3-coder
 * `<function=…>` elements.
 */
import { findTagEnd, isWhitespace } from './forward-finder.ts';
import { readFunctionCall } from './read-function-block.ts';
import { readJsonToolCalls } from './read-json-tool-calls.ts';
import {
  type BlockFinders,
  FENCE,
  FUNCTION_CLOSE,
  FUNCTION_OPEN,
  settleReading,
  type TextToolCallBlock,
  TOOL_CALL_CLOSE,
  TOOL_CALL_OPEN,
} from './text-tool-call-block.ts';
import type {
  ParsedToolCall,
  TextToolCallContext,
  TextToolCallReading,
} from './text-tool-call-reading.ts';

/**
 * Reads the `<tool_call>…</tool_call>` block that opens at `start`. A block without its end, or
 * with another `<tool_call>` before it, is `unclosed-block`.
 *
 * @example
 * ```ts
 * const text = '<tool_call>{"name": "read_file", "arguments": {}}</tool_call>';
 * readToolCallBlock(text, 0, createBlockFinders(text), { toolNames: undefined });
 * // { kind: 'calls', end: 61, calls: [{ name: 'read_file', arguments: {} }] }
 * ```
 */
export function readToolCallBlock(
  text: string,
  start: number,
  finders: BlockFinders,
  context: TextToolCallContext,
): TextToolCallBlock {
  const bodyStart = start + TOOL_CALL_OPEN.length;
  const close = finders.toolCallClose.next(bodyStart);
  const nextOpen = finders.toolCallOpen.next(bodyStart);
  if (nextOpen !== -1 && (close === -1 || nextOpen < close)) {
    return { kind: 'issue', end: nextOpen, reason: 'unclosed-block' };
  }
  if (close === -1) return { kind: 'issue', end: text.length, reason: 'unclosed-block' };
  const end = close + TOOL_CALL_CLOSE.length;
  return settleReading(readToolCallBody(text.slice(bodyStart, close), context), end);
}

function readToolCallBody(body: string, context: TextToolCallContext): TextToolCallReading {
  const trimmed = body.trim();
  if (trimmed.startsWith(FUNCTION_OPEN)) return readFunctionSequence(trimmed, context);
  return readJsonToolCalls(stripFence(trimmed), context, false);
}

/** Some models wrap the JSON inside the tags in a code fence as well. */
function stripFence(source: string): string {
  if (!source.startsWith(FENCE)) return source;
  const lineEnd = source.indexOf('\n');
  if (lineEnd === -1) return source;
  const inner = source.slice(lineEnd + 1).trimEnd();
  return inner.endsWith(FENCE) ? inner.slice(0, -FENCE.length) : inner;
}

/** One or more `<function=NAME>…</function>` elements, with only whitespace between them. */
function readFunctionSequence(source: string, context: TextToolCallContext): TextToolCallReading {
  const calls: ParsedToolCall[] = [];
  let position = 0;
  for (;;) {
    while (isWhitespace(source[position])) position += 1;
    if (position >= source.length) break;
    if (!source.startsWith(FUNCTION_OPEN, position)) {
      return { kind: 'issue', reason: 'invalid-tool-call' };
    }
    const headEnd = findTagEnd(source, position + FUNCTION_OPEN.length);
    if (headEnd === -1) return { kind: 'issue', reason: 'invalid-tool-call' };
    const close = source.indexOf(FUNCTION_CLOSE, headEnd + 1);
    const nextOpen = source.indexOf(FUNCTION_OPEN, headEnd + 1);
    if (close === -1 || (nextOpen !== -1 && nextOpen < close)) {
      return { kind: 'issue', reason: 'unclosed-block' };
    }
    const name = source.slice(position + FUNCTION_OPEN.length, headEnd).trim();
    const reading = readFunctionCall(name, source.slice(headEnd + 1, close), context);
    if (reading.kind !== 'calls') return reading;
    for (const call of reading.calls) calls.push(call);
    position = close + FUNCTION_CLOSE.length;
  }
  return calls.length === 0
    ? { kind: 'issue', reason: 'invalid-tool-call' }
    : { kind: 'calls', calls };
}
