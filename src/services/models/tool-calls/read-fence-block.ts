/**
 * Fenced blocks: ```` ```tool_call ```` always holds calls, ```` ```json ```` holds calls only
 * when shaped like them, and any other fence is prose that the scanner steps over.
 */
import { TAG_WINDOW } from './forward-finder.ts';
import { readJsonToolCalls } from './read-json-tool-calls.ts';
import {
  type BlockFinders,
  FENCE,
  settleReading,
  type TextToolCallBlock,
} from './text-tool-call-block.ts';
import type { TextToolCallContext } from './text-tool-call-reading.ts';

/**
 * Reads the fenced block whose opening ```` ``` ```` is at `start`. A fence that is not
 * `json` or `tool_call` is prose, and its closing fence is reported as `skipFence` so the scanner
 * does not take it for an opening one; tags inside it are still read.
 *
 * @example
 * ```ts
 * const text = '```tool_call\n{"name": "read_file", "arguments": {}}\n```';
 * readFenceBlock(text, 0, createBlockFinders(text), { toolNames: undefined });
 * // { kind: 'calls', end: 55, calls: [{ name: 'read_file', arguments: {} }] }
 * ```
 */
export function readFenceBlock(
  text: string,
  start: number,
  finders: BlockFinders,
  context: TextToolCallContext,
): TextToolCallBlock {
  const infoStart = start + FENCE.length;
  const lineEnd = text.indexOf('\n', infoStart);
  if (lineEnd === -1 || lineEnd - infoStart > TAG_WINDOW) return { kind: 'prose', end: infoStart };
  const info = text.slice(infoStart, lineEnd).trim().toLowerCase();
  if (info.includes('`')) return { kind: 'prose', end: infoStart };
  const bodyStart = lineEnd + 1;
  const close = finders.fence.next(bodyStart);
  if (info !== 'json' && info !== 'tool_call') {
    return close === -1
      ? { kind: 'prose', end: bodyStart }
      : { kind: 'prose', end: bodyStart, skipFence: close };
  }
  if (close === -1) {
    return info === 'tool_call'
      ? { kind: 'issue', end: text.length, reason: 'unclosed-block' }
      : { kind: 'prose', end: bodyStart };
  }
  const reading = readJsonToolCalls(text.slice(bodyStart, close), context, info === 'json');
  return settleReading(reading, close + FENCE.length);
}
