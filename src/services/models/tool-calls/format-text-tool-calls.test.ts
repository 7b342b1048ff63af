import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import type { JsonObject } from '../../../platform/storage/ports/json-value.ts';
import type { ToolCall } from '../provider/model-provider.ts';
import {
  formatTextToolCalls,
  TEXT_TOOL_CALL_STYLES,
  type TextToolCallStyle,
  textToolCallInstructions,
} from './format-text-tool-calls.ts';
import { parseTextToolCalls } from './text-tool-call-parser.ts';

const READ_FILE: ToolCall = { id: 'call_0', name: 'read_file', arguments: { path: 'a.ts' } };

describe('formatTextToolCalls', () => {
  it('writes each style in the form its models were trained on', () => {
    const expected: Record<TextToolCallStyle, string> = {
      hermes: '<tool_call>\n{"name":"read_file","arguments":{"path":"a.ts"}}\n</tool_call>',
      llama: '<function=read_file>{"path":"a.ts"}</function>',
      'qwen-xml':
        '<tool_call>\n<function=read_file>\n<parameter=path>\na.ts\n</parameter>\n</function>\n</tool_call>',
      'fenced-json': '```json\n{"name":"read_file","arguments":{"path":"a.ts"}}\n```',
    };
    for (const style of TEXT_TOOL_CALL_STYLES) {
      assert.equal(formatTextToolCalls([READ_FILE], style), expected[style], style);
    }
  });

  it('separates several calls with a newline and writes nothing for none', () => {
    const second: ToolCall = { id: 'call_1', name: 'now', arguments: {} };
    assert.equal(
      formatTextToolCalls([READ_FILE, second], 'llama'),
      '<function=read_file>{"path":"a.ts"}</function>\n<function=now>{}</function>',
    );
    assert.equal(formatTextToolCalls([], 'hermes'), '');
  });

  it('escapes < in JSON so a value cannot close the block early', () => {
    const call: ToolCall = {
      id: 'call_0',
      name: 'x',
      arguments: { html: '</tool_call></function>' },
    };
    const text = formatTextToolCalls([call], 'hermes');
    assert.equal(text.includes('</tool_call></function>'), false);
    assert.deepEqual(parseTextToolCalls(text).toolCalls[0]?.arguments, call.arguments);
  });

  it('writes qwen-xml strings as they are unless they would read back differently', () => {
    const call: ToolCall = {
      id: 'call_0',
      name: 'x',
      arguments: {
        plain: 'hello world',
        code: 'if (a < b) {\n  return;\n}\n',
        numeric: '42',
        closing: 'a</b',
        count: 42,
        flags: [true, null],
      },
    };
    const text = formatTextToolCalls([call], 'qwen-xml');
    assert.ok(text.includes('<parameter=plain>\nhello world\n</parameter>'));
    assert.ok(text.includes('<parameter=code>\nif (a < b) {\n  return;\n}\n\n</parameter>'));
    assert.ok(text.includes('<parameter=numeric>\n"42"\n</parameter>'));
    assert.ok(text.includes('<parameter=closing>\n"a\\u003c/b"\n</parameter>'));
    assert.ok(text.includes('<parameter=count>\n42\n</parameter>'));
    assert.ok(text.includes('<parameter=flags>\n[true,null]\n</parameter>'));
    assert.deepEqual(parseTextToolCalls(text).toolCalls[0]?.arguments, call.arguments);
  });

  it('writes a qwen-xml call with a JSON body when a key cannot be a tag', () => {
    const call: ToolCall = { id: 'call_0', name: 'x', arguments: { 'a>b': 1, ' c': 2 } };
    const text = formatTextToolCalls([call], 'qwen-xml');
    assert.equal(text, '<tool_call>\n<function=x>\n{"a>b":1," c":2}\n</function>\n</tool_call>');
    assert.deepEqual(parseTextToolCalls(text).toolCalls[0]?.arguments, call.arguments);
  });

  it('refuses a tool name outside the pattern with KEEL_INVALID_ARGUMENT', () => {
    const call: ToolCall = { id: 'call_0', name: 'x><script', arguments: {} };
    assert.throws(
      () => formatTextToolCalls([call], 'llama'),
      (error) => isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT',
    );
  });

  describe('round trip', () => {
    const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/);
    const tricky = fc.constantFrom(
      '',
      ' ',
      '\n',
      '\n\n',
      ' 1 ',
      'true',
      'null',
      '"quoted"',
      '{"a":1}',
      '[',
      '</parameter>',
      '</function>',
      '</tool_call>',
      '<tool_call>',
      '<function=x>',
      '<parameter=a>',
      '```',
      '\n```\n',
      '__proto__',
      '\ud800',
      '😀',
      'a < b',
    );
    const text = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.string({
        unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)),
      }),
      fc.array(tricky, { maxLength: 6 }).map((parts) => parts.join('')),
    );
    const value = fc.oneof(text, fc.jsonValue({ maxDepth: 3 }));
    const argumentsObject: fc.Arbitrary<JsonObject> = fc
      .oneof(
        fc.dictionary(fc.oneof(text, tricky, fc.constant('__proto__')), value, { maxKeys: 6 }),
        fc
          .jsonValue()
          .filter((json) => typeof json === 'object' && json !== null && !Array.isArray(json)),
      )
      // The arguments a model can send are what JSON.parse builds (plain objects, no -0).
      .map((object) => JSON.parse(JSON.stringify(object)) as JsonObject);
    const calls = fc.array(
      fc.record({ id: fc.constant('unused'), name, arguments: argumentsObject }),
      { minLength: 1, maxLength: 4 },
    );

    it('reads every style back to the same names and arguments', () => {
      fc.assert(
        fc.property(calls, fc.constantFrom(...TEXT_TOOL_CALL_STYLES), (written, style) => {
          const parse = parseTextToolCalls(formatTextToolCalls(written, style), {
            toolNames: new Set(written.map((call) => call.name)),
          });
          assert.deepEqual(parse.issues, []);
          assert.equal(parse.text, '');
          assert.deepEqual(
            parse.toolCalls.map((call) => ({ name: call.name, arguments: call.arguments })),
            written.map((call) => ({ name: call.name, arguments: call.arguments })),
          );
        }),
        { numRuns: 1_000 },
      );
    });

    it('keeps the prose around the calls', () => {
      const prose = fc.string({
        unit: fc.constantFrom('a', 'Z', ' ', '\n', '.', '{', '}', '"', ':', 'é', '😀', '>'),
      });
      fc.assert(
        fc.property(
          prose,
          calls,
          prose,
          fc.constantFrom(...TEXT_TOOL_CALL_STYLES),
          (before, written, after, style) => {
            const input = `${before}\n${formatTextToolCalls(written, style)}\n${after}`;
            const parse = parseTextToolCalls(input);
            assert.equal(parse.toolCalls.length, written.length);
            const between = '\n'.repeat(written.length - 1);
            assert.equal(parse.text, `${before}\n${between}\n${after}`.trim());
          },
        ),
      );
    });
  });
});

describe('textToolCallInstructions', () => {
  const tools = [
    {
      name: 'read_file',
      description: 'Reads a file from the workspace',
      parameters: { type: 'object', properties: { path: { type: 'string' } } },
    },
    { name: 'now', parameters: { type: 'object' } },
  ];

  it('lists every tool with its name, description and JSON schema', () => {
    const instructions = textToolCallInstructions(tools, 'hermes');
    assert.ok(
      instructions.includes(
        '{"name":"read_file","description":"Reads a file from the workspace","parameters":{"type":"object","properties":{"path":{"type":"string"}}}}',
      ),
    );
    assert.ok(instructions.includes('{"name":"now","parameters":{"type":"object"}}'));
  });

  it('shows an example in the chosen style that the parser reads', () => {
    for (const style of TEXT_TOOL_CALL_STYLES) {
      const parse = parseTextToolCalls(textToolCallInstructions(tools, style));
      assert.deepEqual(
        parse.toolCalls.map((call) => [call.name, call.arguments]),
        [['TOOL_NAME', { ARGUMENT_NAME: 'VALUE' }]],
        style,
      );
    }
  });

  it('refuses a tool whose name the parser would never accept', () => {
    assert.throws(
      () => textToolCallInstructions([{ name: 'two words', parameters: {} }], 'llama'),
      (error) => isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT',
    );
  });
});
