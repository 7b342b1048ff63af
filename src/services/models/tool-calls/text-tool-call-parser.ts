/**
 * Reads tool calls out of the plain text of a model that has no native tool calling. Accepts
 * the formats open models are trained on: Hermes/Qwen `<tool_call>{json}</tool_call>`, Llama 3.1
 * `<function=NAME>{json}</function>`, Qwen3-coder `<function=NAME><parameter=KEY>…` inside
 * `<tool_call>`, and fenced ```` ```json ```` / ```` ```tool_call ```` blocks.
 *
 * This module composes the block readers (`read-tool-call-block.ts`, `read-function-block.ts`,
 * `read-fence-block.ts`) over a scanner whose searches only move forward (`forward-finder.ts`),
 * so hostile input costs time linear in its length: there is no regular expression that could
 * backtrack. It never throws.
 */
import { Buffer } from 'node:buffer';
import type { ToolCall } from '../provider/model-provider.ts';
import { earliest } from './forward-finder.ts';
import { readFenceBlock } from './read-fence-block.ts';
import { readFunctionBlock } from './read-function-block.ts';
import { readToolCallBlock } from './read-tool-call-block.ts';
import { createBlockFinders, type TextToolCallBlock } from './text-tool-call-block.ts';
import type {
  ParsedToolCall,
  TextToolCallContext,
  TextToolCallIssueReason,
} from './text-tool-call-reading.ts';

export {
  MAX_TEXT_TOOL_CALL_JSON_DEPTH,
  TEXT_TOOL_CALL_NAME_PATTERN,
  type TextToolCallIssueReason,
} from './text-tool-call-reading.ts';

/**
 * The largest input, in UTF-8 bytes, that {@link parseTextToolCalls} inspects by default.
 *
 * @example
 * ```ts
 * parseTextToolCalls(text, { maxBytes: DEFAULT_TEXT_TOOL_CALL_MAX_BYTES * 2 });
 * ```
 */
export const DEFAULT_TEXT_TOOL_CALL_MAX_BYTES = 262_144;

/**
 * A block the parser recognised as an attempted tool call but could not accept.
 *
 * @example
 * ```ts
 * const issue: TextToolCallIssue = { reason: 'invalid-json', excerpt: '<tool_call>{"name":' };
 * ```
 */
export interface TextToolCallIssue {
  readonly reason: TextToolCallIssueReason;
  /** The start of the offending block, at most 200 UTF-16 code units. */
  readonly excerpt: string;
}

/**
 * The result of {@link parseTextToolCalls}.
 *
 * @example
 * ```ts
 * const { text, toolCalls, issues }: TextToolCallParse = parseTextToolCalls(answer);
 * ```
 */
export interface TextToolCallParse {
  /** The prose with the accepted tool-call blocks removed, trimmed. */
  readonly text: string;
  /** In order of appearance, with ids `call_0`, `call_1`, … */
  readonly toolCalls: ToolCall[];
  readonly issues: TextToolCallIssue[];
}

/**
 * Options of {@link parseTextToolCalls}.
 *
 * @example
 * ```ts
 * const options: TextToolCallParseOptions = { toolNames: new Set(['read_file']) };
 * ```
 */
export interface TextToolCallParseOptions {
  /** Inputs longer than this many UTF-8 bytes are not inspected. Default 262144. */
  readonly maxBytes?: number;
  /** The tools on offer; a call to any other name becomes an `unknown-tool` issue. */
  readonly toolNames?: ReadonlySet<string>;
}

/**
 * Parses the tool calls out of a model's text answer.
 *
 * - A block is atomic: either every call in it is accepted and the block leaves the prose, or
 *   it stays in the prose verbatim and yields one issue. There are never partial calls, and
 *   nothing the model wrote disappears unless it became a call.
 * - A fenced ```` ```json ```` block that is not shaped like a tool call (an object, or array
 *   of objects, with a valid string `name`, an `arguments` or `parameters` member and nothing
 *   else but `id` and `type`; with `toolNames`, a name among them) is prose, not an issue.
 *   Other fences are prose too, but tags inside them are still read.
 * - Qwen3-coder parameter values: one leading and one trailing newline are dropped; if the
 *   trimmed rest parses as JSON, that value is used, otherwise the string as written.
 * - Input over `maxBytes` is returned verbatim (not trimmed) with no calls and one `too-large`
 *   issue: the caller decides, nothing is silently cut.
 * - A closing tag inside a value ends the block early (the formatter never writes one).
 *
 * @example
 * ```ts
 * const parsed = parseTextToolCalls(
 *   'Let me look.\n<tool_call>{"name": "read_file", "arguments": {"path": "a.ts"}}</tool_call>',
 * );
 * parsed.text; // 'Let me look.'
 * parsed.toolCalls; // [{ id: 'call_0', name: 'read_file', arguments: { path: 'a.ts' } }]
 * ```
 */
export function parseTextToolCalls(
  text: string,
  options: TextToolCallParseOptions = {},
): TextToolCallParse {
  const maxBytes = options.maxBytes ?? DEFAULT_TEXT_TOOL_CALL_MAX_BYTES;
  if (exceedsBytes(text, maxBytes)) {
    return {
      text,
      toolCalls: [],
      issues: [{ reason: 'too-large', excerpt: excerptOf(text, 0, text.length) }],
    };
  }
  const context: TextToolCallContext = { toolNames: options.toolNames };
  const finders = createBlockFinders(text);
  const prose: string[] = [];
  const calls: ParsedToolCall[] = [];
  const issues: TextToolCallIssue[] = [];
  let proseStart = 0;
  let cursor = 0;
  let skippedFence = -1;
  while (cursor < text.length) {
    const toolCall = finders.toolCallOpen.next(cursor);
    const functionTag = finders.functionOpen.next(cursor);
    let fence = finders.fence.next(cursor);
    if (fence !== -1 && fence === skippedFence) fence = finders.fence.next(fence + 1);
    const start = earliest(toolCall, functionTag, fence);
    if (start === -1) break;
    let block: TextToolCallBlock;
    if (start === toolCall) block = readToolCallBlock(text, start, finders, context);
    else if (start === functionTag) block = readFunctionBlock(text, start, finders, context);
    else block = readFenceBlock(text, start, finders, context);
    if (block.kind === 'calls') {
      prose.push(text.slice(proseStart, start));
      proseStart = block.end;
      for (const call of block.calls) calls.push(call);
    } else if (block.kind === 'issue') {
      issues.push({ reason: block.reason, excerpt: excerptOf(text, start, block.end) });
    } else if (block.skipFence !== undefined) {
      skippedFence = block.skipFence;
    }
    cursor = block.end;
  }
  prose.push(text.slice(proseStart));
  return {
    text: prose.join('').trim(),
    toolCalls: calls.map((call, index) => ({
      id: `call_${index}`,
      name: call.name,
      arguments: call.arguments,
    })),
    issues,
  };
}

const EXCERPT_LENGTH = 200;

function exceedsBytes(text: string, maxBytes: number): boolean {
  // Every UTF-16 unit is one to three UTF-8 bytes: most inputs are decided without counting.
  if (text.length > maxBytes) return true;
  if (text.length * 3 <= maxBytes) return false;
  return Buffer.byteLength(text, 'utf8') > maxBytes;
}

function excerptOf(text: string, start: number, end: number): string {
  const limit = Math.min(end, start + EXCERPT_LENGTH);
  const code = text.charCodeAt(limit - 1);
  // Do not cut a surrogate pair in half.
  const cut = limit < end && code >= 0xd800 && code <= 0xdbff ? limit - 1 : limit;
  return text.slice(start, cut);
}
