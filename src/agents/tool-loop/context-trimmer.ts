import { Buffer } from 'node:buffer';
import type { ChatMessage } from '../../runtime/worker/agent-program.ts';

/** Counts the tokens a message takes in the model's context. */
export type TokenCounter = (message: ChatMessage) => number;

/** What every message costs besides its text: the role and the framing around it. */
const MESSAGE_OVERHEAD_TOKENS = 4;

/**
 * Estimates the tokens of a message: a quarter of its UTF-8 bytes (text, plus the JSON of its
 * tool calls), rounded up, plus 4 for the role and framing. English prose runs at about four
 * bytes a token, so this errs on the generous side for most text. It decides only what to
 * leave out of the context; the kernel counts and bills with the model's real tokenizer.
 *
 * @example
 * ```ts
 * approximateTokens({ role: 'user', content: 'hello world!' }); // 3 + 4 = 7
 * ```
 */
export function approximateTokens(message: ChatMessage): number {
  let bytes = Buffer.byteLength(message.content, 'utf8');
  if (message.role === 'assistant' && message.toolCalls !== undefined) {
    bytes += Buffer.byteLength(JSON.stringify(message.toolCalls), 'utf8');
  }
  return Math.ceil(bytes / 4) + MESSAGE_OVERHEAD_TOKENS;
}

/**
 * The note that stands in for the messages left out.
 *
 * @example
 * ```ts
 * omissionNote(3).content; // '[3 earlier messages omitted to fit the context budget]'
 * ```
 */
export function omissionNote(omitted: number): ChatMessage {
  const noun = omitted === 1 ? 'message' : 'messages';
  return {
    role: 'user',
    content: `[${omitted} earlier ${noun} omitted to fit the context budget]`,
  };
}

/**
 * Fits a conversation into a token budget. The system messages and the first user message
 * (the task) always stay; of the rest, the most recent messages that fit stay and the oldest
 * go first. An assistant message with tool calls and the tool results that follow it stay or
 * go together, so no tool result is left without the call it answers. When anything is left
 * out, one note saying how much follows the task.
 *
 * With `maxMessages`, no more messages than that are returned, note included (a provider's
 * limit on the number of messages, as the token budget is a limit on their size).
 *
 * Runs in time linear in the number of messages: `countTokens` is called at most once per
 * message, plus once for the note. When the system messages and the task alone exceed the
 * budget, they are returned alone (with the note if it fits), which is as close as trimming
 * can get; the model's provider reports the overflow.
 *
 * @example
 * ```ts
 * const sent = trimMessages(conversation, 32_000);
 * ```
 */
export function trimMessages(
  messages: readonly ChatMessage[],
  budgetTokens: number,
  countTokens: TokenCounter = approximateTokens,
  maxMessages: number = Number.POSITIVE_INFINITY,
): ChatMessage[] {
  const taskIndex = messages.findIndex((message) => message.role === 'user');
  const isPinned = (index: number): boolean =>
    index === taskIndex || messages[index]?.role === 'system';

  // The messages that may go, in order, and where each unit of them starts: a unit is one
  // message plus the tool results that follow it.
  const candidates: number[] = [];
  const unitStarts: number[] = [];
  let pinnedTokens = 0;
  let pinnedCount = 0;
  for (let index = 0; index < messages.length; index += 1) {
    const message = messages[index] as ChatMessage;
    if (isPinned(index)) {
      pinnedTokens += countTokens(message);
      pinnedCount += 1;
      continue;
    }
    if (message.role !== 'tool' || unitStarts.length === 0) unitStarts.push(candidates.length);
    candidates.push(index);
  }

  // Walk the units from the newest, once, recording how many tokens each suffix takes.
  const available = budgetTokens - pinnedTokens;
  const availableCount = maxMessages - pinnedCount;
  const suffixTokens: number[] = [];
  let total = 0;
  let fitsEntirely = true;
  for (let unit = unitStarts.length - 1; unit >= 0; unit -= 1) {
    const start = unitStarts[unit] as number;
    const end = unit + 1 < unitStarts.length ? (unitStarts[unit + 1] as number) : candidates.length;
    if (candidates.length - start > availableCount) {
      fitsEntirely = false;
      break;
    }
    let unitTokens = 0;
    for (let position = start; position < end; position += 1) {
      unitTokens += countTokens(messages[candidates[position] as number] as ChatMessage);
    }
    if (total + unitTokens > available) {
      fitsEntirely = false;
      break;
    }
    total += unitTokens;
    suffixTokens.push(total);
  }
  if (fitsEntirely) return [...messages];

  // Something goes, so the note needs room: priced at its longest (every candidate omitted).
  const noteTokens = countTokens(omissionNote(candidates.length));
  const withNote = noteTokens <= available && availableCount >= 1;
  const room = withNote ? available - noteTokens : available;
  const roomCount = withNote ? availableCount - 1 : availableCount;
  let keptUnits = suffixTokens.length;
  const keptCount = (units: number): number =>
    candidates.length - (unitStarts[unitStarts.length - units] as number);
  while (
    keptUnits > 0 &&
    ((suffixTokens[keptUnits - 1] as number) > room || keptCount(keptUnits) > roomCount)
  ) {
    keptUnits -= 1;
  }
  const firstKept =
    keptUnits === 0 ? candidates.length : (unitStarts[unitStarts.length - keptUnits] as number);
  const firstKeptIndex = firstKept < candidates.length ? (candidates[firstKept] as number) : -1;

  const trimmed: ChatMessage[] = [];
  let notePlaced = !withNote;
  const placeNote = (): void => {
    if (notePlaced) return;
    trimmed.push(omissionNote(firstKept));
    notePlaced = true;
  };
  for (let index = 0; index < messages.length; index += 1) {
    // Without a task, the note goes where the omitted messages were.
    if (index === firstKeptIndex && taskIndex === -1) placeNote();
    if (isPinned(index) || (firstKeptIndex !== -1 && index >= firstKeptIndex)) {
      trimmed.push(messages[index] as ChatMessage);
    }
    if (index === taskIndex) placeNote();
  }
  placeNote();
  return trimmed;
}
