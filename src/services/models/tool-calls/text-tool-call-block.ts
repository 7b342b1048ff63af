/**
 * The blocks the scanner of the text tool-call parser finds: the markers that open and close
 * them, the finders that locate those markers, and what a block yields.
 */
import { ForwardFinder, isAtLineStart } from './forward-finder.ts';
import type {
  ParsedToolCall,
  TextToolCallIssueReason,
  TextToolCallReading,
} from './text-tool-call-reading.ts';

/**
 * The markers of the block formats.
 *
 * @example
 * ```ts
 * text.startsWith(TOOL_CALL_CLOSE, after);
 * ```
 */
export const TOOL_CALL_OPEN = '<tool_call>';
/** @example `const end = close + TOOL_CALL_CLOSE.length;` */
export const TOOL_CALL_CLOSE = '</tool_call>';
/** @example `const nameStart = start + FUNCTION_OPEN.length;` */
export const FUNCTION_OPEN = '<function=';
/** @example `const end = close + FUNCTION_CLOSE.length;` */
export const FUNCTION_CLOSE = '</function>';
/** @example `const infoStart = start + FENCE.length;` */
export const FENCE = '```';

/**
 * What the scanner found at a candidate position, and where scanning resumes.
 *
 * @example
 * ```ts
 * const block: TextToolCallBlock = { kind: 'issue', end: text.length, reason: 'unclosed-block' };
 * ```
 */
export type TextToolCallBlock =
  | { readonly kind: 'calls'; readonly end: number; readonly calls: readonly ParsedToolCall[] }
  | { readonly kind: 'issue'; readonly end: number; readonly reason: TextToolCallIssueReason }
  | { readonly kind: 'prose'; readonly end: number; readonly skipFence?: number };

/**
 * One finder per marker, shared by the scanner and the block readers of one parse so that every
 * search moves forward only.
 *
 * @example
 * ```ts
 * const close = finders.toolCallClose.next(bodyStart);
 * ```
 */
export interface BlockFinders {
  readonly toolCallOpen: ForwardFinder;
  readonly toolCallClose: ForwardFinder;
  readonly functionOpen: ForwardFinder;
  readonly functionClose: ForwardFinder;
  readonly fence: ForwardFinder;
}

/**
 * The finders for one text; fences count only at the start of a line.
 *
 * @example
 * ```ts
 * const finders = createBlockFinders(text);
 * finders.toolCallOpen.next(0); // index of the first `<tool_call>`, or -1
 * ```
 */
export function createBlockFinders(text: string): BlockFinders {
  return {
    toolCallOpen: new ForwardFinder(text, TOOL_CALL_OPEN),
    toolCallClose: new ForwardFinder(text, TOOL_CALL_CLOSE),
    functionOpen: new ForwardFinder(text, FUNCTION_OPEN),
    functionClose: new ForwardFinder(text, FUNCTION_CLOSE),
    fence: new ForwardFinder(text, FENCE, isAtLineStart),
  };
}

/**
 * A reading of a block's content, placed: the block ends at `end`.
 *
 * @example
 * ```ts
 * settleReading({ kind: 'prose' }, 42); // { kind: 'prose', end: 42 }
 * ```
 */
export function settleReading(reading: TextToolCallReading, end: number): TextToolCallBlock {
  if (reading.kind === 'calls') return { kind: 'calls', end, calls: reading.calls };
  if (reading.kind === 'issue') return { kind: 'issue', end, reason: reading.reason };
  return { kind: 'prose', end };
}
