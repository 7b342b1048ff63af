/**
 * Writes tool calls as text, in the styles {@link parseTextToolCalls} reads, and the system
 * prompt that teaches a model without native tool calling to write them.
 */

import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../../platform/storage/ports/json-value.ts';
import type { ToolCall, ToolDefinition } from '../provider/model-provider.ts';
import { TEXT_TOOL_CALL_NAME_PATTERN } from './text-tool-call-parser.ts';

/**
 * How tool calls are written in text: Hermes/Qwen `<tool_call>{json}</tool_call>`, Llama 3.1
 * `<function=NAME>{json}</function>`, Qwen3-coder XML parameters, or fenced JSON.
 *
 * @example
 * ```ts
 * const style: TextToolCallStyle = 'hermes';
 * ```
 */
export type TextToolCallStyle = 'hermes' | 'llama' | 'qwen-xml' | 'fenced-json';

/**
 * Every {@link TextToolCallStyle}, for configuration validation and tests.
 *
 * @example
 * ```ts
 * TEXT_TOOL_CALL_STYLES.includes('llama'); // true
 * ```
 */
export const TEXT_TOOL_CALL_STYLES: readonly TextToolCallStyle[] = Object.freeze([
  'hermes',
  'llama',
  'qwen-xml',
  'fenced-json',
]);

/**
 * Writes tool calls as text in one style, one block per call, separated by newlines. The
 * parser reads every output back to the same names and arguments.
 *
 * JSON is written compactly with every `<` escaped as `\u003c`, so no closing tag can appear
 * inside it. In `qwen-xml`, a parameter value that is not a string is written as JSON; a string
 * is written as is when reading it back as is gives the same string (its trimmed form does not
 * parse as JSON, and it holds no `</`, `<tool_call>` or `<function=`), and as a JSON string
 * literal otherwise. A call with a key that cannot be a tag (empty, with `<` or `>`, or with
 * whitespace at its ends) is written with a JSON body: `<function=NAME>{json}</function>`.
 *
 * Throws `KEEL_INVALID_ARGUMENT` for a name that does not match the tool-name pattern or
 * arguments that cannot be serialised.
 *
 * @example
 * ```ts
 * formatTextToolCalls([{ id: 'call_0', name: 'read_file', arguments: { path: 'a.ts' } }], 'hermes');
 * // '<tool_call>\n{"name":"read_file","arguments":{"path":"a.ts"}}\n</tool_call>'
 * ```
 */
export function formatTextToolCalls(calls: readonly ToolCall[], style: TextToolCallStyle): string {
  return calls.map((call) => formatCall(call, style)).join('\n');
}

/**
 * The system-prompt text that tells a model without native tool calling which tools it has
 * (name, description and JSON schema of the arguments) and how to call them in one style.
 *
 * Throws `KEEL_INVALID_ARGUMENT` for a tool name that does not match the tool-name pattern.
 *
 * @example
 * ```ts
 * const system = textToolCallInstructions(
 *   [{ name: 'read_file', description: 'Reads a file', parameters: { type: 'object' } }],
 *   'qwen-xml',
 * );
 * ```
 */
export function textToolCallInstructions(
  tools: readonly ToolDefinition[],
  style: TextToolCallStyle,
): string {
  const listing = tools.map((tool) => {
    assertToolName(tool.name);
    return toJsonText({
      name: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      parameters: tool.parameters,
    });
  });
  const example = formatTextToolCalls(
    [{ id: 'call_0', name: 'TOOL_NAME', arguments: { ARGUMENT_NAME: 'VALUE' } }],
    style,
  );
  return [
    '# Tools',
    '',
    'You can call the tools listed below, one JSON description per line:',
    '',
    '<tools>',
    ...listing,
    '</tools>',
    '',
    'To call a tool, write exactly this form, one block per call (several blocks for several calls):',
    '',
    example,
    '',
    STYLE_RULES[style],
    'After your calls, stop and wait: each result comes back as <tool_response name="TOOL_NAME" id="call_0">…</tool_response>.',
    'When you need no tool, answer in plain text without any of these blocks.',
  ].join('\n');
}

const STYLE_RULES: Readonly<Record<TextToolCallStyle, string>> = {
  hermes: 'The arguments are a JSON object that matches the parameters schema of the tool.',
  llama: 'The arguments are a JSON object that matches the parameters schema of the tool.',
  'qwen-xml':
    'Write one parameter block per argument. Write numbers, booleans, null, arrays and objects as JSON; write text as it is, or as a JSON string when it contains "</".',
  'fenced-json':
    'The block is a ```json fence holding one object with "name" and "arguments"; the arguments are a JSON object that matches the parameters schema of the tool.',
};

function formatCall(call: ToolCall, style: TextToolCallStyle): string {
  assertToolName(call.name);
  switch (style) {
    case 'hermes':
      return `<tool_call>\n${toJsonText({ name: call.name, arguments: call.arguments })}\n</tool_call>`;
    case 'llama':
      return `<function=${call.name}>${toJsonText(call.arguments)}</function>`;
    case 'qwen-xml':
      return `<tool_call>\n<function=${call.name}>\n${formatParameters(call.arguments)}</function>\n</tool_call>`;
    case 'fenced-json':
      return `\`\`\`json\n${toJsonText({ name: call.name, arguments: call.arguments })}\n\`\`\``;
  }
}

function formatParameters(parameters: JsonObject): string {
  const entries = Object.entries(parameters);
  if (!entries.every(([key]) => isTagKey(key))) return `${toJsonText(parameters)}\n`;
  return entries
    .map(([key, value]) => `<parameter=${key}>\n${formatParameterValue(value)}\n</parameter>\n`)
    .join('');
}

function isTagKey(key: string): boolean {
  return key !== '' && key === key.trim() && !key.includes('<') && !key.includes('>');
}

function formatParameterValue(value: JsonValue): string {
  if (typeof value === 'string' && readsBackRaw(value)) return value;
  return toJsonText(value);
}

/** Mirrors the parser: a value whose trimmed form is JSON is read as JSON, not as text. */
function readsBackRaw(value: string): boolean {
  if (value.includes('</') || value.includes('<tool_call>') || value.includes('<function=')) {
    return false;
  }
  const trimmed = value.trim();
  if (trimmed === '') return true;
  try {
    JSON.parse(trimmed);
    return false;
  } catch {
    // Not JSON: the parser keeps it as the string it is.
    return true;
  }
}

function assertToolName(name: string): void {
  if (!TEXT_TOOL_CALL_NAME_PATTERN.test(name)) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `tool name ${JSON.stringify(name)} is not valid`, {
      details: { name, pattern: TEXT_TOOL_CALL_NAME_PATTERN.source },
    });
  }
}

/** Compact JSON with `<` escaped, so no tag can appear inside it. */
function toJsonText(value: JsonValue): string {
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'tool call arguments cannot be written as JSON', {
      cause: error,
    });
  }
  return json.replaceAll('<', '\\u003c');
}
