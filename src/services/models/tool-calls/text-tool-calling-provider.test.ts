import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError, KeelError } from '../../../platform/errors/keel-error.ts';
import type {
  ChatDelta,
  ChatRequest,
  ChatResponse,
  EmbedRequest,
  EmbedResponse,
  ModelProviderV1,
  ProviderCallOptions,
  ToolDefinition,
} from '../provider/model-provider.ts';
import { TEXT_TOOL_CALL_STYLES } from './format-text-tool-calls.ts';
import { withTextToolCalls } from './text-tool-calling-provider.ts';

const OPTIONS: ProviderCallOptions = { signal: new AbortController().signal };

const SEARCH: ToolDefinition = {
  name: 'search',
  description: 'Searches the web',
  parameters: { type: 'object', properties: { query: { type: 'string' } } },
};

/** A model without native tools: records what it was asked and answers with canned text. */
class CannedTextModel implements ModelProviderV1 {
  readonly specificationVersion = 'v1';
  readonly id = 'local-ollama';
  readonly kind = 'ollama';
  readonly capabilities = { nativeTools: false, jsonSchema: false, embeddings: true };
  readonly requests: ChatRequest[] = [];
  readonly embedRequests: EmbedRequest[] = [];
  healthChecks = 0;
  answer: string;
  /** Overrides the deltas of doStream; by default the answer in two pieces, then finish. */
  deltas: ChatDelta[] | undefined;
  streamError: Error | undefined;

  constructor(answer: string) {
    this.answer = answer;
  }

  async doChat(request: ChatRequest): Promise<ChatResponse> {
    this.requests.push(request);
    return {
      text: this.answer,
      toolCalls: [],
      finishReason: 'stop',
      usage: { inputTokens: 10, outputTokens: 5 },
      model: 'qwen3',
    };
  }

  async *doStream(request: ChatRequest): AsyncGenerator<ChatDelta> {
    this.requests.push(request);
    const middle = Math.floor(this.answer.length / 2);
    const deltas: ChatDelta[] = this.deltas ?? [
      { type: 'text', text: this.answer.slice(0, middle) },
      { type: 'text', text: this.answer.slice(middle) },
      { type: 'finish', finishReason: 'stop', usage: undefined, model: 'qwen3' },
    ];
    for (const delta of deltas) {
      if (this.streamError !== undefined && delta.type === 'finish') throw this.streamError;
      yield delta;
    }
  }

  async doEmbed(request: EmbedRequest): Promise<EmbedResponse> {
    this.embedRequests.push(request);
    return { embeddings: [[1, 0]], usage: undefined, model: 'embed' };
  }

  async doHealthCheck(): Promise<void> {
    this.healthChecks += 1;
  }
}

async function collect(stream: AsyncIterable<ChatDelta>): Promise<ChatDelta[]> {
  const deltas: ChatDelta[] = [];
  for await (const delta of stream) deltas.push(delta);
  return deltas;
}

const CALL_ANSWER =
  'Let me search.\n<tool_call>\n{"name": "search", "arguments": {"query": "keel"}}\n</tool_call>';

describe('withTextToolCalls', () => {
  it('keeps the identity of the inner provider and now offers tools', async () => {
    const inner = new CannedTextModel('');
    const provider = withTextToolCalls(inner, 'hermes');
    assert.equal(provider.specificationVersion, 'v1');
    assert.equal(provider.id, 'local-ollama');
    assert.equal(provider.kind, 'ollama');
    assert.deepEqual(provider.capabilities, {
      nativeTools: true,
      jsonSchema: false,
      embeddings: true,
    });
    const embedding = await provider.doEmbed({ model: 'embed', inputs: ['a'] }, OPTIONS);
    assert.deepEqual(embedding.embeddings, [[1, 0]]);
    assert.deepEqual(inner.embedRequests, [{ model: 'embed', inputs: ['a'] }]);
    await provider.doHealthCheck(OPTIONS);
    assert.equal(inner.healthChecks, 1);
  });

  it('passes a request without tools through untouched', async () => {
    const inner = new CannedTextModel('<tool_call>{"name": "search"}</tool_call>');
    const provider = withTextToolCalls(inner, 'hermes');
    const request: ChatRequest = { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }] };
    const response = await provider.doChat(request, OPTIONS);
    assert.equal(inner.requests[0], request);
    assert.equal(response.text, '<tool_call>{"name": "search"}</tool_call>');
    assert.deepEqual(response.toolCalls, []);
    const deltas = await collect(provider.doStream(request, OPTIONS));
    assert.equal(inner.requests[1], request);
    assert.deepEqual(deltas, [
      { type: 'text', text: '<tool_call>{"name": ' },
      { type: 'text', text: '"search"}</tool_call>' },
      { type: 'finish', finishReason: 'stop', usage: undefined, model: 'qwen3' },
    ]);
  });

  it('moves the tools into a new system message and out of the request', async () => {
    const inner = new CannedTextModel('Hello.');
    const provider = withTextToolCalls(inner, 'qwen-xml');
    await provider.doChat(
      {
        model: 'qwen3',
        messages: [{ role: 'user', content: 'hi' }],
        tools: [SEARCH],
        toolChoice: 'auto',
        temperature: 0.2,
      },
      OPTIONS,
    );
    const [sent] = inner.requests;
    assert.ok(sent !== undefined);
    assert.equal('tools' in sent, false);
    assert.equal('toolChoice' in sent, false);
    assert.equal(sent.temperature, 0.2);
    const [system, user] = sent.messages;
    assert.equal(system?.role, 'system');
    assert.ok(system.content.includes('"name":"search","description":"Searches the web"'));
    assert.ok(system.content.includes('<function=TOOL_NAME>'));
    assert.deepEqual(user, { role: 'user', content: 'hi' });
  });

  it('appends the instructions to a leading system message', async () => {
    const inner = new CannedTextModel('Hello.');
    const provider = withTextToolCalls(inner, 'hermes');
    await provider.doChat(
      {
        model: 'qwen3',
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'hi' },
        ],
        tools: [SEARCH],
        toolChoice: 'required',
      },
      OPTIONS,
    );
    const messages = inner.requests[0]?.messages ?? [];
    assert.equal(messages.length, 2);
    assert.equal(messages[0]?.role, 'system');
    assert.ok(messages[0]?.content.startsWith('You are terse.\n\n# Tools'));
    assert.ok(messages[0]?.content.endsWith('You must call at least one tool in your answer.'));
  });

  it('rewrites earlier tool calls as text and tool results as tool_response user messages', async () => {
    const inner = new CannedTextModel('Done.');
    const provider = withTextToolCalls(inner, 'llama');
    await provider.doChat(
      {
        model: 'qwen3',
        messages: [
          { role: 'user', content: 'look up keel and now' },
          {
            role: 'assistant',
            content: 'Searching.',
            toolCalls: [
              { id: 'call_0', name: 'search', arguments: { query: 'keel' } },
              { id: 'call_1', name: 'now', arguments: {} },
            ],
          },
          { role: 'tool', toolCallId: 'call_0', content: 'Keel is an OS' },
          { role: 'tool', toolCallId: 'call_1', name: 'now', content: '12:00' },
          { role: 'user', content: 'thanks' },
        ],
        tools: [SEARCH, { name: 'now', parameters: { type: 'object' } }],
      },
      OPTIONS,
    );
    const [, ...history] = inner.requests[0]?.messages ?? [];
    assert.deepEqual(history, [
      { role: 'user', content: 'look up keel and now' },
      {
        role: 'assistant',
        content:
          'Searching.\n<function=search>{"query":"keel"}</function>\n<function=now>{}</function>',
      },
      {
        role: 'user',
        content:
          '<tool_response name="search" id="call_0">\nKeel is an OS\n</tool_response>\n<tool_response name="now" id="call_1">\n12:00\n</tool_response>',
      },
      { role: 'user', content: 'thanks' },
    ]);
  });

  it('rewrites tool history even when the request offers no tools, and then parses nothing', async () => {
    const inner = new CannedTextModel('<function=search>{}</function>');
    const provider = withTextToolCalls(inner, 'llama');
    const response = await provider.doChat(
      {
        model: 'qwen3',
        messages: [
          {
            role: 'assistant',
            content: '',
            toolCalls: [{ id: 'a"1', name: 'now', arguments: {} }],
          },
          { role: 'tool', toolCallId: 'a"1', content: '12:00' },
        ],
      },
      OPTIONS,
    );
    assert.deepEqual(inner.requests[0]?.messages, [
      { role: 'assistant', content: '<function=now>{}</function>' },
      {
        role: 'user',
        content: '<tool_response name="now" id="a&quot;1">\n12:00\n</tool_response>',
      },
    ]);
    assert.deepEqual(response.toolCalls, []);
    assert.equal(response.text, '<function=search>{}</function>');
  });

  it('offers no tools and parses nothing when toolChoice is none', async () => {
    const inner = new CannedTextModel(CALL_ANSWER);
    const provider = withTextToolCalls(inner, 'hermes');
    const response = await provider.doChat(
      {
        model: 'qwen3',
        messages: [{ role: 'user', content: 'hi' }],
        tools: [SEARCH],
        toolChoice: 'none',
      },
      OPTIONS,
    );
    assert.deepEqual(inner.requests[0], {
      model: 'qwen3',
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(response.text, CALL_ANSWER);
    assert.deepEqual(response.toolCalls, []);
  });

  it('returns the parsed calls, the prose and finish reason tool-calls from doChat', async () => {
    const inner = new CannedTextModel(CALL_ANSWER);
    const provider = withTextToolCalls(inner, 'hermes');
    const response = await provider.doChat(
      { model: 'qwen3', messages: [{ role: 'user', content: 'search keel' }], tools: [SEARCH] },
      OPTIONS,
    );
    assert.deepEqual(response, {
      text: 'Let me search.',
      toolCalls: [{ id: 'call_0', name: 'search', arguments: { query: 'keel' } }],
      finishReason: 'tool-calls',
      usage: { inputTokens: 10, outputTokens: 5 },
      model: 'qwen3',
    });
  });

  it('leaves the answer untouched when it holds no call, also a call to a tool not on offer', async () => {
    const answer = ' <tool_call>{"name": "shell", "arguments": {}}</tool_call> ';
    const inner = new CannedTextModel(answer);
    const provider = withTextToolCalls(inner, 'hermes');
    const response = await provider.doChat(
      { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], tools: [SEARCH] },
      OPTIONS,
    );
    assert.equal(response.text, answer);
    assert.deepEqual(response.toolCalls, []);
    assert.equal(response.finishReason, 'stop');
  });

  it('streams the prose, then each call, then the finish once the inner stream ends', async () => {
    const inner = new CannedTextModel(CALL_ANSWER);
    const provider = withTextToolCalls(inner, 'hermes');
    const deltas = await collect(
      provider.doStream(
        { model: 'qwen3', messages: [{ role: 'user', content: 'search keel' }], tools: [SEARCH] },
        OPTIONS,
      ),
    );
    const call = { id: 'call_0', name: 'search', arguments: { query: 'keel' } };
    assert.deepEqual(deltas, [
      { type: 'text', text: 'Let me search.' },
      { type: 'tool-call-start', index: 0, id: 'call_0', name: 'search' },
      { type: 'tool-call-arguments', index: 0, text: '{"query":"keel"}' },
      { type: 'tool-call', index: 0, call },
      { type: 'finish', finishReason: 'tool-calls', usage: undefined, model: 'qwen3' },
    ]);
  });

  it('streams an answer without calls as one text delta and the inner finish', async () => {
    const inner = new CannedTextModel('Just prose, no tools needed.');
    const provider = withTextToolCalls(inner, 'fenced-json');
    const deltas = await collect(
      provider.doStream(
        { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], tools: [SEARCH] },
        OPTIONS,
      ),
    );
    assert.deepEqual(deltas, [
      { type: 'text', text: 'Just prose, no tools needed.' },
      { type: 'finish', finishReason: 'stop', usage: undefined, model: 'qwen3' },
    ]);
  });

  it('propagates an error of the inner stream unchanged', async () => {
    const inner = new CannedTextModel(CALL_ANSWER);
    const failure = new KeelError('KEEL_PROVIDER_STREAM_INTERRUPTED');
    inner.streamError = failure;
    const provider = withTextToolCalls(inner, 'hermes');
    await assert.rejects(
      collect(
        provider.doStream(
          { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], tools: [SEARCH] },
          OPTIONS,
        ),
      ),
      (error) => error === failure,
    );
  });

  it('fails with KEEL_PROVIDER_STREAM_INTERRUPTED when the inner stream ends without finish', async () => {
    const inner = new CannedTextModel('');
    inner.deltas = [{ type: 'text', text: CALL_ANSWER }];
    const provider = withTextToolCalls(inner, 'hermes');
    await assert.rejects(
      collect(
        provider.doStream(
          { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], tools: [SEARCH] },
          OPTIONS,
        ),
      ),
      (error) => isKeelError(error) && error.code === 'KEEL_PROVIDER_STREAM_INTERRUPTED',
    );
  });

  it('reads back in every style the calls it wrote into the history', async () => {
    for (const style of TEXT_TOOL_CALL_STYLES) {
      const inner = new CannedTextModel('');
      const provider = withTextToolCalls(inner, style);
      const toolCalls = [{ id: 'call_0', name: 'search', arguments: { query: 'a </b> "c"' } }];
      await provider.doChat(
        {
          model: 'qwen3',
          messages: [{ role: 'assistant', content: '', toolCalls }],
          tools: [SEARCH],
        },
        OPTIONS,
      );
      // The model repeats its earlier turn: the decorator must understand its own writing.
      inner.answer = inner.requests[0]?.messages[1]?.content ?? '';
      const response = await provider.doChat(
        { model: 'qwen3', messages: [{ role: 'user', content: 'again' }], tools: [SEARCH] },
        OPTIONS,
      );
      assert.deepEqual(response.toolCalls, toolCalls, style);
    }
  });
});
