import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError, KeelError } from '../../platform/errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import type {
  AgentContext,
  AgentTask,
  ChatMessage,
  ChatParameters,
  ChatResult,
  ChatToolCall,
  LogLevel,
} from '../../runtime/worker/agent-program.ts';
import { approximateTokens } from './context-trimmer.ts';
import { type ToolLoopResult, toolLoopProgram } from './tool-loop-program.ts';

// A scripted AgentContext: it plays the model's replies in order and runs tool functions,
// recording every syscall the program makes. It stands in for the worker's syscall channel to
// test the loop's logic alone.

type RecordedCall =
  | { readonly kind: 'chat'; readonly model: string; readonly parameters: ChatParameters }
  | { readonly kind: 'tool'; readonly name: string; readonly arguments: JsonObject }
  | { readonly kind: 'log'; readonly level: LogLevel; readonly message: string };

type ToolFunction = (args: JsonObject) => JsonValue | Promise<JsonValue>;

interface Script {
  readonly replies: readonly ChatResult[];
  readonly tools?: Readonly<Record<string, ToolFunction>>;
  readonly settings?: JsonObject;
  readonly model?: string | null;
  readonly task?: AgentTask;
  readonly signal?: AbortSignal;
}

function scriptedContext(script: Script): { context: AgentContext; calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  const tools = script.tools ?? {};
  let next = 0;
  const context: AgentContext = {
    runId: 'run_test',
    agent: { id: 'agt_test', name: 'tester', version: '1.0.0' },
    task: script.task ?? { prompt: 'Find the answer.' },
    tools: Object.keys(tools).map((name) => ({
      name,
      description: `the ${name} tool`,
      parameters: { type: 'object', properties: {} },
    })),
    settings: script.settings ?? {},
    model: script.model === null ? undefined : (script.model ?? 'default'),
    signal: script.signal ?? new AbortController().signal,
    async syscall() {
      throw new Error('the tool loop made a raw syscall');
    },
    async chat(model, parameters) {
      calls.push({ kind: 'chat', model, parameters });
      const reply = script.replies[next];
      next += 1;
      if (reply === undefined) throw new Error('the script has no more replies');
      return reply;
    },
    async callTool(name, args) {
      calls.push({ kind: 'tool', name, arguments: args });
      const tool = tools[name];
      if (tool === undefined) throw new Error(`the tool loop called an unknown tool ${name}`);
      return tool(args);
    },
    async now() {
      throw new Error('the tool loop read the clock');
    },
    async randomInt() {
      throw new Error('the tool loop drew a random number');
    },
    async log(level, message) {
      calls.push({ kind: 'log', level, message });
    },
  };
  return { context, calls };
}

let callSequence = 0;

function reply(
  text: string,
  toolCalls: readonly Omit<ChatToolCall, 'id'>[] = [],
  costMicros: number | null = 10,
): ChatResult {
  return {
    text,
    toolCalls: toolCalls.map((call) => {
      callSequence += 1;
      return { id: `call_${callSequence}`, ...call };
    }),
    finishReason: toolCalls.length > 0 ? 'tool-calls' : 'stop',
    model: 'test-model',
    provider: 'test',
    usage: { inputTokens: 100, outputTokens: 20, costMicros },
  };
}

function searchCall(query: string): Omit<ChatToolCall, 'id'> {
  return { name: 'search', arguments: { query } };
}

const tools: Record<string, ToolFunction> = {
  search: ({ query }) => ({ hits: [`result for ${String(query)}`] }),
  read: ({ path }) => `contents of ${String(path)}`,
};

async function run(context: AgentContext): Promise<ToolLoopResult> {
  return (await toolLoopProgram.run(context)) as ToolLoopResult;
}

function chats(calls: readonly RecordedCall[]): ChatParameters[] {
  return calls.flatMap((call) => (call.kind === 'chat' ? [call.parameters] : []));
}

function toolMessages(parameters: ChatParameters | undefined): ChatMessage[] {
  return (parameters?.messages ?? []).filter((message) => message.role === 'tool');
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => isKeelError(error) && error.code === code);
}

describe('toolLoopProgram', () => {
  it('is a defined agent program named tool-loop', () => {
    assert.equal(toolLoopProgram.name, 'tool-loop');
  });

  it('runs three tool calls, threading each result back by its call id, then completes', async () => {
    const first = reply('Let me search.', [searchCall('keel')]);
    const second = reply('', [
      { name: 'read', arguments: { path: 'README.md' } },
      searchCall('agents'),
    ]);
    const { context, calls } = scriptedContext({
      replies: [first, second, reply('Keel is an OS for agents.', [], 5)],
      tools,
      task: { prompt: 'What is Keel?', input: { repository: 'keel' } },
    });

    const result = await run(context);

    assert.deepEqual(
      calls.map((call) => (call.kind === 'tool' ? `tool ${call.name}` : call.kind)),
      ['chat', 'tool search', 'chat', 'tool read', 'tool search', 'chat'],
    );
    assert.deepEqual(result, {
      status: 'completed',
      answer: 'Keel is an OS for agents.',
      iterations: 3,
      steps: 6,
      toolCalls: 3,
      usage: { inputTokens: 300, outputTokens: 60, costMicros: 25 },
    });

    const [opening, afterFirst, afterSecond] = chats(calls);
    assert.equal(opening?.messages.length, 2);
    assert.equal(opening?.messages[0]?.role, 'system');
    assert.deepEqual(opening?.messages[1], {
      role: 'user',
      content: 'What is Keel?\n\nInput (JSON):\n{"repository":"keel"}',
    });
    assert.deepEqual(
      opening?.tools?.map((tool) => tool.name),
      ['search', 'read'],
    );
    assert.equal(opening?.toolChoice, undefined);
    assert.deepEqual(afterFirst?.messages.slice(2), [
      { role: 'assistant', content: 'Let me search.', toolCalls: first.toolCalls },
      {
        role: 'tool',
        toolCallId: first.toolCalls[0]?.id,
        name: 'search',
        content: '{"hits":["result for keel"]}',
      },
    ]);
    assert.deepEqual(afterSecond?.messages.slice(4), [
      { role: 'assistant', content: '', toolCalls: second.toolCalls },
      {
        role: 'tool',
        toolCallId: second.toolCalls[0]?.id,
        name: 'read',
        content: 'contents of README.md',
      },
      {
        role: 'tool',
        toolCallId: second.toolCalls[1]?.id,
        name: 'search',
        content: '{"hits":["result for agents"]}',
      },
    ]);
  });

  it('reports the cost as null when any model call was unpriced', async () => {
    const { context } = scriptedContext({
      replies: [reply('', [searchCall('a')], null), reply('done', [], 7)],
      tools,
    });
    assert.equal((await run(context)).usage.costMicros, null);
  });

  it('stops with a limit result after maxIterations model turns', async () => {
    const { context, calls } = scriptedContext({
      replies: [reply('', [searchCall('a')]), reply('Still looking.', [searchCall('b')])],
      tools,
      settings: { maxIterations: 2 },
    });
    const result = await run(context);
    assert.equal(result.status, 'limit');
    assert.equal(result.status === 'limit' ? result.reason : '', 'max_iterations');
    assert.equal(result.answer, 'Still looking.');
    assert.equal(result.iterations, 2);
    assert.equal(chats(calls).length, 2);
  });

  it('stops with a limit result before a tool call that would pass maxSteps', async () => {
    const { context, calls } = scriptedContext({
      replies: [reply('', [searchCall('a'), searchCall('b'), searchCall('c')])],
      tools,
      settings: { maxSteps: 3 },
    });
    const result = await run(context);
    assert.equal(result.status, 'limit');
    assert.equal(result.status === 'limit' ? result.reason : '', 'max_steps');
    assert.equal(result.steps, 3);
    assert.equal(result.toolCalls, 2);
    assert.equal(calls.filter((call) => call.kind === 'tool').length, 2);
  });

  it('stops with a limit result before a model call that would pass maxSteps', async () => {
    const { context, calls } = scriptedContext({
      replies: [reply('', [searchCall('a'), searchCall('b')])],
      tools,
      settings: { maxSteps: 3 },
    });
    const result = await run(context);
    assert.equal(result.status === 'limit' ? result.reason : '', 'max_steps');
    assert.equal(result.steps, 3);
    assert.equal(chats(calls).length, 1);
  });

  it('warns a model that repeats a call, and stops it as stuck when it goes on', async () => {
    const { context, calls } = scriptedContext({
      replies: [
        reply('', [searchCall('same')]),
        reply('', [{ name: 'search', arguments: { query: 'same' } }]),
        reply('', [searchCall('same')]),
        reply('Trying once more.', [searchCall('same')]),
      ],
      tools,
      settings: { repeatLimit: 3 },
    });
    const result = await run(context);

    assert.deepEqual(
      calls.map((call) => call.kind),
      ['chat', 'tool', 'chat', 'tool', 'chat', 'tool', 'log', 'chat'],
    );
    const warned = chats(calls)[3]?.messages.at(-1);
    assert.equal(warned?.role, 'user');
    assert.match(warned?.content ?? '', /called search with the same arguments 3 times/);
    assert.equal(result.status, 'stuck');
    if (result.status !== 'stuck') return;
    assert.equal(result.reason, 'repeated_tool_call');
    assert.deepEqual(result.repeated, { name: 'search', arguments: { query: 'same' } });
    assert.equal(result.answer, 'Trying once more.');
    assert.equal(result.toolCalls, 3);
  });

  it('lets a warned model that changes approach finish', async () => {
    const { context } = scriptedContext({
      replies: [
        reply('', [searchCall('same')]),
        reply('', [searchCall('same')]),
        reply('', [searchCall('other')]),
        reply('Found it.'),
      ],
      tools,
      settings: { repeatLimit: 2 },
    });
    const result = await run(context);
    assert.equal(result.status, 'completed');
    assert.equal(result.toolCalls, 3);
  });

  it('answers a call to a tool the agent does not have with an error, without calling it', async () => {
    const unknown = reply('', [{ name: 'delete_everything', arguments: {} }]);
    const { context, calls } = scriptedContext({
      replies: [unknown, reply('I cannot do that.')],
      tools,
    });
    const result = await run(context);

    assert.equal(calls.filter((call) => call.kind === 'tool').length, 0);
    const [message] = toolMessages(chats(calls)[1]);
    assert.equal(message?.role === 'tool' ? message.toolCallId : '', unknown.toolCalls[0]?.id);
    const content = JSON.parse(message?.content ?? '') as {
      error: { code: string; message: string };
    };
    assert.equal(content.error.code, 'KEEL_NOT_FOUND');
    assert.match(content.error.message, /no tool named delete_everything.*search, read/);
    assert.equal(result.status, 'completed');
    assert.equal(result.steps, 2);
    assert.equal(result.toolCalls, 0);
  });

  it('sends a tool error back to the model so that it can recover', async () => {
    const { context, calls } = scriptedContext({
      replies: [reply('', [{ name: 'read', arguments: { path: 'missing' } }]), reply('No file.')],
      tools: {
        read: () => {
          throw new KeelError('KEEL_CAPABILITY_DENIED', 'agent may not read missing');
        },
      },
    });
    const result = await run(context);
    assert.equal(result.status, 'completed');
    assert.deepEqual(JSON.parse(toolMessages(chats(calls)[1])[0]?.content ?? ''), {
      error: { code: 'KEEL_CAPABILITY_DENIED', message: 'agent may not read missing' },
    });
  });

  for (const code of [
    'KEEL_BUDGET_EXHAUSTED',
    'KEEL_RUN_CANCELLED',
    'KEEL_SHUTTING_DOWN',
    'KEEL_ABORTED',
    'KEEL_APPROVAL_REQUIRED',
    'KEEL_IDENTITY_UNKNOWN',
    'KEEL_STORAGE_UNAVAILABLE',
  ] as const) {
    it(`ends the run on a tool call refused with ${code}`, async () => {
      const { context, calls } = scriptedContext({
        replies: [reply('', [searchCall('a')]), reply('never asked')],
        tools: {
          search: () => {
            throw new KeelError(code);
          },
        },
      });
      await rejectsWith(run(context), code);
      assert.equal(chats(calls).length, 1);
    });
  }

  it('returns the JSON answer as data when a result schema is set', async () => {
    const { context, calls } = scriptedContext({
      replies: [reply('', [searchCall('a')]), reply('```json\n{"title":"Keel"}\n```')],
      tools,
      settings: { resultSchema: { type: 'object', required: ['title'] } },
    });
    const result = await run(context);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.status === 'completed' ? result.data : undefined, { title: 'Keel' });
    assert.match(chats(calls)[0]?.messages[0]?.content ?? '', /JSON Schema/);
    assert.equal(chats(calls)[0]?.responseFormat, undefined);
  });

  it('asks once more for JSON in the schema format when the answer is not JSON', async () => {
    const schema = { type: 'object', required: ['title'] };
    const { context, calls } = scriptedContext({
      replies: [reply('The title is Keel.'), reply('{"title":"Keel"}')],
      tools,
      settings: { resultSchema: schema },
    });
    const result = await run(context);
    assert.equal(result.status, 'completed');
    assert.equal(result.iterations, 2);
    const corrective = chats(calls)[1];
    assert.deepEqual(corrective?.responseFormat, { type: 'json-schema', name: 'result', schema });
    assert.equal(corrective?.toolChoice, 'none');
    assert.match(corrective?.messages.at(-1)?.content ?? '', /not valid: the answer is not JSON/);
  });

  it('fails the run with a reason when the corrected answer is still not the JSON asked for', async () => {
    const { context } = scriptedContext({
      replies: [reply('The title is Keel.'), reply('{"name":"Keel"}')],
      tools,
      settings: { resultSchema: { type: 'object', required: ['title'] } },
    });
    const result = await run(context);
    assert.equal(result.status, 'failed');
    if (result.status !== 'failed') return;
    assert.equal(result.reason, 'invalid_result');
    assert.equal(result.error.code, 'KEEL_INVALID_ARGUMENT');
    assert.match(result.error.message, /lacks the required property title/);
  });

  it('asks for the schema format from the first turn when the agent has no tools', async () => {
    const { context, calls } = scriptedContext({
      replies: [reply('{"title":"Keel"}')],
      settings: { resultSchema: { type: 'object' } },
    });
    await run(context);
    const [first] = chats(calls);
    assert.equal(first?.responseFormat?.type, 'json-schema');
    assert.equal(first?.tools, undefined);
  });

  it('refuses to run when the agent names no model', async () => {
    const { context, calls } = scriptedContext({ replies: [reply('hi')], model: null });
    await rejectsWith(run(context), 'KEEL_LLM_NOT_CONFIGURED');
    assert.equal(calls.length, 0);
  });

  it('uses the settings model when the manifest names no default', async () => {
    const { context, calls } = scriptedContext({
      replies: [reply('hi')],
      model: null,
      settings: { model: 'fast' },
    });
    await run(context);
    assert.equal(calls[0]?.kind === 'chat' ? calls[0].model : '', 'fast');
  });

  it('refuses invalid settings before any call', async () => {
    const { context, calls } = scriptedContext({ replies: [], settings: { maxSteps: 0 } });
    await rejectsWith(run(context), 'KEEL_INVALID_ARGUMENT');
    assert.equal(calls.length, 0);
  });

  it('forces a required tool call on the first turn only', async () => {
    const { context, calls } = scriptedContext({
      replies: [reply('', [searchCall('a')]), reply('done')],
      tools,
      settings: { toolChoice: 'required' },
    });
    await run(context);
    assert.deepEqual(
      chats(calls).map((parameters) => parameters.toolChoice),
      ['required', 'auto'],
    );
  });

  it('makes the same calls in the same order when run again against the same script', async () => {
    const script: Script = {
      replies: [
        reply('', [searchCall('a'), { name: 'read', arguments: { path: 'x' } }]),
        reply('', [{ name: 'nope', arguments: {} }, searchCall('a')]),
        reply('', [searchCall('a')]),
        reply('done'),
      ],
      tools,
      settings: { repeatLimit: 2, contextTokens: 256 },
    };
    const first = scriptedContext(script);
    const second = scriptedContext(script);
    const firstResult = await run(first.context);
    const secondResult = await run(second.context);
    assert.deepEqual(second.calls, first.calls);
    assert.deepEqual(secondResult, firstResult);
    assert.ok(first.calls.length > 6);
  });

  it('trims old messages to a small context budget and keeps the task', async () => {
    const task = { prompt: 'Read every file and report.' };
    const big = (path: string): Omit<ChatToolCall, 'id'> => ({ name: 'read', arguments: { path } });
    const { context, calls } = scriptedContext({
      replies: [
        reply('', [big('a')]),
        reply('', [big('b')]),
        reply('', [big('c')]),
        reply('', [big('d')]),
        reply('Done.'),
      ],
      tools: { read: ({ path }) => `${String(path)}: ${'text '.repeat(100)}` },
      task,
      settings: { contextTokens: 400 },
    });
    const result = await run(context);
    assert.equal(result.status, 'completed');

    const last = chats(calls).at(-1);
    const messages = last?.messages ?? [];
    assert.equal(messages[0]?.role, 'system');
    assert.deepEqual(messages[1], { role: 'user', content: task.prompt });
    assert.match(messages[2]?.content ?? '', /^\[\d+ earlier messages omitted/);
    assert.ok(messages.reduce((total, message) => total + approximateTokens(message), 0) <= 400);
    assert.notEqual(messages[3]?.role, 'tool');
    assert.deepEqual(messages.at(-1), toolMessages(last).at(-1));
    assert.match(messages.at(-1)?.content ?? '', /^d: /);
  });

  it('throws the abort reason when the run is cancelled between steps', async () => {
    const controller = new AbortController();
    const { context, calls } = scriptedContext({
      replies: [reply('', [searchCall('a'), searchCall('b')]), reply('never asked')],
      tools: {
        search: () => {
          controller.abort(new KeelError('KEEL_RUN_CANCELLED', 'cancelled by operator'));
          return 'ok';
        },
      },
      signal: controller.signal,
    });
    await rejectsWith(run(context), 'KEEL_RUN_CANCELLED');
    assert.equal(calls.filter((call) => call.kind === 'tool').length, 1);
  });

  it('caps a large tool result at 64 KiB', async () => {
    const { context, calls } = scriptedContext({
      replies: [reply('', [searchCall('a')]), reply('done')],
      tools: { search: () => 'y'.repeat(100_000) },
      settings: { contextTokens: 100_000 },
    });
    await run(context);
    const content = toolMessages(chats(calls)[1])[0]?.content ?? '';
    assert.ok(content.length <= 65_536);
    assert.match(content, /\[truncated: the result has 100000 bytes/);
  });
});
