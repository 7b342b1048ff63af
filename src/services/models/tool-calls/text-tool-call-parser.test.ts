import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  MAX_TEXT_TOOL_CALL_JSON_DEPTH,
  parseTextToolCalls,
  TEXT_TOOL_CALL_NAME_PATTERN,
  type TextToolCallIssueReason,
  type TextToolCallParse,
} from './text-tool-call-parser.ts';

const ISSUE_REASONS: ReadonlySet<TextToolCallIssueReason> = new Set<TextToolCallIssueReason>([
  'too-large',
  'unclosed-block',
  'invalid-json',
  'too-deeply-nested',
  'invalid-tool-call',
  'invalid-name',
  'unknown-tool',
  'invalid-arguments',
]);

/** The invariants every parse keeps, whatever the input. */
function assertWellFormed(input: string, parse: TextToolCallParse): void {
  assert.equal(typeof parse.text, 'string');
  if (!parse.issues.some((issue) => issue.reason === 'too-large')) {
    assert.equal(parse.text, parse.text.trim());
  }
  assert.ok(parse.text.length <= input.length);
  for (const [index, call] of parse.toolCalls.entries()) {
    assert.equal(call.id, `call_${index}`);
    assert.match(call.name, TEXT_TOOL_CALL_NAME_PATTERN);
    assert.equal(Object.getPrototypeOf(call.arguments), Object.prototype);
    assert.equal(Array.isArray(call.arguments), false);
  }
  for (const issue of parse.issues) {
    assert.ok(ISSUE_REASONS.has(issue.reason));
    assert.ok(issue.excerpt.length <= 200);
  }
  // Nothing the model wrote disappears unless it became a call.
  if (parse.toolCalls.length === 0 && parse.issues.every((issue) => issue.reason !== 'too-large')) {
    assert.equal(parse.text, input.trim());
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
}

describe('parseTextToolCalls', () => {
  describe('Hermes style', () => {
    it('reads a tool_call block and removes it from the prose', () => {
      const parse = parseTextToolCalls(
        'Let me look.\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a.ts"}}\n</tool_call>',
      );
      assert.deepEqual(parse, {
        text: 'Let me look.',
        toolCalls: [{ id: 'call_0', name: 'read_file', arguments: { path: 'a.ts' } }],
        issues: [],
      });
    });

    it('accepts parameters instead of arguments', () => {
      const parse = parseTextToolCalls(
        '<tool_call>{"name": "x", "parameters": {"a": 1}}</tool_call>',
      );
      assert.deepEqual(parse.toolCalls, [{ id: 'call_0', name: 'x', arguments: { a: 1 } }]);
    });

    it('accepts arguments given as a JSON string holding an object', () => {
      const parse = parseTextToolCalls(
        '<tool_call>{"name": "x", "arguments": "{\\"a\\": [1, 2]}"}</tool_call>',
      );
      assert.deepEqual(parse.toolCalls, [{ id: 'call_0', name: 'x', arguments: { a: [1, 2] } }]);
    });

    it('reads a call without arguments as one with an empty object', () => {
      const parse = parseTextToolCalls('<tool_call>{"name": "now"}</tool_call>');
      assert.deepEqual(parse.toolCalls, [{ id: 'call_0', name: 'now', arguments: {} }]);
    });

    it('reads the OpenAI wire shape inside the tags', () => {
      const parse = parseTextToolCalls(
        '<tool_call>{"type": "function", "function": {"name": "x", "arguments": "{}"}}</tool_call>',
      );
      assert.deepEqual(parse.toolCalls, [{ id: 'call_0', name: 'x', arguments: {} }]);
    });

    it('reads JSON wrapped in a code fence inside the tags', () => {
      const parse = parseTextToolCalls(
        '<tool_call>\n```json\n{"name": "x", "arguments": {"a": 1}}\n```\n</tool_call>',
      );
      assert.deepEqual(parse.toolCalls, [{ id: 'call_0', name: 'x', arguments: { a: 1 } }]);
    });

    it('numbers several calls in order of appearance', () => {
      const parse = parseTextToolCalls(
        'A <tool_call>{"name": "first", "arguments": {}}</tool_call> B <function=second>{"n": 2}</function> C',
      );
      assert.deepEqual(
        parse.toolCalls.map((call) => [call.id, call.name]),
        [
          ['call_0', 'first'],
          ['call_1', 'second'],
        ],
      );
      assert.equal(parse.text, 'A  B  C');
    });
  });

  describe('Llama style', () => {
    it('reads a function tag with a JSON body', () => {
      const parse = parseTextToolCalls('<function=get_weather>{"city": "Oslo"}</function>');
      assert.deepEqual(parse.toolCalls, [
        { id: 'call_0', name: 'get_weather', arguments: { city: 'Oslo' } },
      ]);
      assert.equal(parse.text, '');
    });

    it('leaves a function tag whose head never closes as prose', () => {
      const parse = parseTextToolCalls('compare <function=x and y');
      assert.deepEqual(parse, { text: 'compare <function=x and y', toolCalls: [], issues: [] });
    });
  });

  describe('Qwen3-coder XML style', () => {
    it('reads parameters, parsing JSON values and keeping other text as written', () => {
      const parse = parseTextToolCalls(
        [
          '<tool_call>',
          '<function=write_file>',
          '<parameter=path>',
          'src/a.ts',
          '</parameter>',
          '<parameter=content>',
          '  indented\n',
          '</parameter>',
          '<parameter=count>',
          '3',
          '</parameter>',
          '<parameter=options>{"force": true}</parameter>',
          '</function>',
          '</tool_call>',
        ].join('\n'),
      );
      assert.deepEqual(parse.toolCalls, [
        {
          id: 'call_0',
          name: 'write_file',
          arguments: {
            path: 'src/a.ts',
            content: '  indented\n',
            count: 3,
            options: { force: true },
          },
        },
      ]);
      assert.deepEqual(parse.issues, []);
    });

    it('reads a function without the opening tool_call and drops the stray closing tag', () => {
      const parse = parseTextToolCalls(
        'Sure.\n<function=ls>\n<parameter=path>\n.\n</parameter>\n</function>\n</tool_call>',
      );
      assert.deepEqual(parse.toolCalls, [{ id: 'call_0', name: 'ls', arguments: { path: '.' } }]);
      assert.equal(parse.text, 'Sure.');
    });

    it('reports a parameter without its closing tag and keeps the block as prose', () => {
      const input = '<tool_call><function=ls><parameter=path>.</function></tool_call>';
      const parse = parseTextToolCalls(input);
      assert.deepEqual(parse.toolCalls, []);
      assert.deepEqual(
        parse.issues.map((issue) => issue.reason),
        ['unclosed-block'],
      );
      assert.equal(parse.text, input);
    });

    it('reports text between parameters as an issue', () => {
      const parse = parseTextToolCalls(
        '<tool_call><function=ls><parameter=a>1</parameter> oops </function></tool_call>',
      );
      assert.deepEqual(
        parse.issues.map((issue) => issue.reason),
        ['invalid-tool-call'],
      );
    });
  });

  describe('fenced JSON', () => {
    it('reads a json fence holding a call', () => {
      const parse = parseTextToolCalls(
        'Calling:\n```json\n{"name": "search", "arguments": {"q": "keel"}}\n```\nDone.',
      );
      assert.deepEqual(parse.toolCalls, [
        { id: 'call_0', name: 'search', arguments: { q: 'keel' } },
      ]);
      assert.equal(parse.text, 'Calling:\n\nDone.');
    });

    it('reads a tool_call fence holding an array of calls', () => {
      const parse = parseTextToolCalls(
        '```tool_call\n[{"name": "a", "arguments": {}}, {"name": "b", "parameters": {"x": null}}]\n```',
      );
      assert.deepEqual(parse.toolCalls, [
        { id: 'call_0', name: 'a', arguments: {} },
        { id: 'call_1', name: 'b', arguments: { x: null } },
      ]);
    });

    it('leaves a json fence that is not shaped like a call as prose without an issue', () => {
      for (const body of [
        '{"name": "Ada", "age": 36}',
        '{"title": "x", "arguments": {}}',
        '[{"name": "a", "arguments": {}}, {"other": 1}]',
        '[]',
        'not json at all',
      ]) {
        const input = `Here:\n\`\`\`json\n${body}\n\`\`\``;
        assert.deepEqual(parseTextToolCalls(input), { text: input, toolCalls: [], issues: [] });
      }
    });

    it('leaves a json fence naming a tool outside toolNames as prose', () => {
      const input = '```json\n{"name": "other", "arguments": {}}\n```';
      const parse = parseTextToolCalls(input, { toolNames: new Set(['search']) });
      assert.deepEqual(parse, { text: input, toolCalls: [], issues: [] });
    });

    it('reports a tool_call fence with bad JSON', () => {
      const parse = parseTextToolCalls('```tool_call\n{"name": "a", \n```');
      assert.deepEqual(
        parse.issues.map((issue) => issue.reason),
        ['invalid-json'],
      );
    });

    it('leaves other code fences as prose but still reads tags inside them', () => {
      const parse = parseTextToolCalls(
        '```python\nprint("```json")\n```\n```xml\n<function=ls>{}</function>\n```',
      );
      assert.deepEqual(parse.toolCalls, [{ id: 'call_0', name: 'ls', arguments: {} }]);
      assert.equal(parse.text, '```python\nprint("```json")\n```\n```xml\n\n```');
    });
  });

  describe('malformed blocks', () => {
    it('returns the prose and no call for an unclosed tool_call tag', () => {
      const input = 'Checking.\n<tool_call>{"name": "x", "arguments": {"a": 1}}';
      const parse = parseTextToolCalls(input);
      assert.equal(parse.text, input);
      assert.deepEqual(parse.toolCalls, []);
      assert.deepEqual(parse.issues, [
        { reason: 'unclosed-block', excerpt: '<tool_call>{"name": "x", "arguments": {"a": 1}}' },
      ]);
    });

    it('reads a complete call that follows an unclosed one', () => {
      const parse = parseTextToolCalls(
        '<tool_call>{"name": "a"\n<tool_call>{"name": "b", "arguments": {}}</tool_call>',
      );
      assert.deepEqual(
        parse.toolCalls.map((call) => call.name),
        ['b'],
      );
      assert.deepEqual(
        parse.issues.map((issue) => issue.reason),
        ['unclosed-block'],
      );
      assert.equal(parse.text, '<tool_call>{"name": "a"');
    });

    it('reports bad JSON inside tags and keeps the block in the prose', () => {
      const input = '<tool_call>{"name": "x", "arguments": {a: 1}}</tool_call>';
      const parse = parseTextToolCalls(input);
      assert.deepEqual(parse, {
        text: input,
        toolCalls: [],
        issues: [{ reason: 'invalid-json', excerpt: input }],
      });
    });

    it('never returns part of a block: one bad call among good ones yields none of them', () => {
      const parse = parseTextToolCalls(
        '<tool_call>[{"name": "a", "arguments": {}}, {"name": "b", "arguments": 3}]</tool_call>',
      );
      assert.deepEqual(parse.toolCalls, []);
      assert.deepEqual(
        parse.issues.map((issue) => issue.reason),
        ['invalid-arguments'],
      );
    });

    it('reports names outside the pattern and calls to tools not on offer', () => {
      const toolNames = new Set(['search']);
      const cases: [string, TextToolCallIssueReason][] = [
        ['<tool_call>{"name": "rm -rf", "arguments": {}}</tool_call>', 'invalid-name'],
        ['<function=9lives>{}</function>', 'invalid-name'],
        [`<tool_call>{"name": "${'a'.repeat(65)}"}</tool_call>`, 'invalid-name'],
        ['<tool_call>{"name": "shell", "arguments": {}}</tool_call>', 'unknown-tool'],
        ['```tool_call\n{"name": "shell", "arguments": {}}\n```', 'unknown-tool'],
        ['<tool_call>{"arguments": {}}</tool_call>', 'invalid-tool-call'],
        ['<tool_call>"search"</tool_call>', 'invalid-tool-call'],
        ['<function=search>[1]</function>', 'invalid-arguments'],
      ];
      for (const [input, reason] of cases) {
        const parse = parseTextToolCalls(input, { toolNames });
        assert.deepEqual(parse.toolCalls, [], input);
        assert.deepEqual(
          parse.issues.map((issue) => issue.reason),
          [reason],
          input,
        );
      }
    });

    it('refuses arguments nested deeper than the limit', () => {
      const depth = MAX_TEXT_TOOL_CALL_JSON_DEPTH + 1;
      const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      for (const input of [
        `<tool_call>{"name": "x", "arguments": {"a": ${deep}}}</tool_call>`,
        `<function=x>{"a": ${deep}}</function>`,
        `<function=x><parameter=a>${deep}</parameter></function>`,
      ]) {
        const parse = parseTextToolCalls(input);
        assert.deepEqual(parse.toolCalls, [], input);
        assert.deepEqual(
          parse.issues.map((issue) => issue.reason),
          ['too-deeply-nested'],
        );
      }
    });

    it('cuts excerpts to 200 code units without splitting a surrogate pair', () => {
      const input = `<tool_call>${'x'.repeat(188)}😀 and more`;
      const [issue] = parseTextToolCalls(input).issues;
      assert.equal(issue?.excerpt, `<tool_call>${'x'.repeat(188)}`);
    });
  });

  describe('hostile input', () => {
    it('keeps __proto__ keys as data without polluting any prototype', () => {
      const parse = parseTextToolCalls(
        [
          '<tool_call>{"name": "x", "arguments": {"__proto__": {"polluted": 1}}}</tool_call>',
          '<function=y><parameter=__proto__>{"polluted": 2}</parameter></function>',
          '<tool_call>{"name": "z", "arguments": "{\\"__proto__\\": {\\"polluted\\": 3}}"}</tool_call>',
        ].join('\n'),
      );
      assert.equal(parse.toolCalls.length, 3);
      for (const call of parse.toolCalls) {
        assert.equal(Object.getPrototypeOf(call.arguments), Object.prototype);
        assert.deepEqual(Object.keys(call.arguments), ['__proto__']);
        assert.equal((call.arguments as Record<string, unknown>).polluted, undefined);
      }
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it('does not throw on lone surrogates and keeps them in the prose', () => {
      const input =
        '\ud800 <tool_call>{"name": "x", "arguments": {"s": "\udc00"}}</tool_call> \udbff';
      const parse = parseTextToolCalls(input);
      assert.deepEqual(parse.toolCalls, [{ id: 'call_0', name: 'x', arguments: { s: '\udc00' } }]);
      assert.equal(parse.text, '\ud800  \udbff');
    });

    it('returns input over maxBytes verbatim with one too-large issue and no calls', () => {
      const input = ` <function=x>{}</function>${'é'.repeat(10)}`;
      // 26 ASCII bytes and 10 two-byte characters: 46 bytes in 36 code units.
      const parse = parseTextToolCalls(input, { maxBytes: 45 });
      assert.equal(parse.text, input);
      assert.deepEqual(parse.toolCalls, []);
      assert.deepEqual(
        parse.issues.map((issue) => issue.reason),
        ['too-large'],
      );
      assert.equal(parseTextToolCalls(input, { maxBytes: 46 }).toolCalls.length, 1);
    });

    it('refuses input over the default limit of 256 KiB', () => {
      const parse = parseTextToolCalls(`<function=x>{}</function>${' '.repeat(262_144)}`);
      assert.deepEqual(
        parse.issues.map((issue) => issue.reason),
        ['too-large'],
      );
    });

    it('stays fast on hostile inputs near the size limit (no quadratic scanning)', {
      timeout: 10_000,
    }, () => {
      const size = 250_000;
      const hostile = [
        '<tool_call>'.repeat(size / 11),
        '<function=a>'.repeat(size / 12),
        '<function=aaaaaa'.repeat(size / 16),
        '\n```json\n{"name":"a","arguments":'.repeat(size / 34),
        '\n```x\n'.repeat(size / 6),
        '<tool_call>{"</tool_call>'.repeat(size / 25),
        `<tool_call><function=a>${'<parameter=a>x'.repeat(size / 14)}`,
        `<tool_call>{"name":"x","arguments":${'['.repeat(size - 40)}`,
        '`'.repeat(size),
      ];
      for (const input of hostile) assertWellFormed(input, parseTextToolCalls(input));
    });
  });

  describe('properties', () => {
    const anyCodeUnit = fc
      .integer({ min: 0, max: 0xffff })
      .map((code) => String.fromCharCode(code));
    const fragment = fc.constantFrom(
      '<tool_call>',
      '</tool_call>',
      '<function=',
      '<function=x>',
      '</function>',
      '<parameter=',
      '<parameter=a>',
      '</parameter>',
      '```',
      '```json\n',
      '```tool_call\n',
      '\n',
      ' ',
      '{',
      '}',
      '[',
      ']',
      ',',
      ':',
      '"',
      '\\',
      '"name"',
      '"x"',
      '"arguments"',
      '"parameters"',
      '"__proto__"',
      '{"polluted": 1}',
      '1',
      'x>',
      '\ud800',
      '😀',
      '<tool_call>{"name": "x", "arguments": {"__proto__": {"polluted": 1}}}</tool_call>',
      '<function=x>{"a": [1]}</function>',
      '<function=x><parameter=__proto__>{"polluted": 1}</parameter></function>',
      '```json\n{"name": "x", "arguments": {}}\n```',
    );
    const fragmentText = fc.array(fragment, { maxLength: 60 }).map((parts) => parts.join(''));

    it('never throws and always returns a well-formed parse', () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.string({ unit: 'binary' }),
            fc.string({ unit: anyCodeUnit }),
            fragmentText,
            fc.tuple(fragmentText, fc.string({ unit: anyCodeUnit })).map(([a, b]) => a + b),
          ),
          fc.option(fc.constantFrom(new Set(['x']), new Set<string>()), { nil: undefined }),
          (input, toolNames) => {
            const parse = parseTextToolCalls(input, toolNames === undefined ? {} : { toolNames });
            assertWellFormed(input, parse);
          },
        ),
        { numRuns: 2_000 },
      );
    });

    it('only ever returns calls whose names are on offer', () => {
      fc.assert(
        fc.property(fragmentText, (input) => {
          const parse = parseTextToolCalls(input, { toolNames: new Set(['x']) });
          assert.ok(parse.toolCalls.every((call) => call.name === 'x'));
        }),
      );
    });
  });
});
