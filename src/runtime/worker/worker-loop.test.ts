import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { KeelError } from '../../platform/errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import { type AgentProgram, type ChatMessage, defineAgent } from './agent-program.ts';
import { encodeFrame, FrameDecoder } from './frame-codec.ts';
import { runWorkerLoop } from './worker-loop.ts';

interface Syscall {
  readonly runId: string;
  readonly call: number;
  readonly intent: {
    readonly kind: string;
    readonly resource: string;
    readonly params: JsonObject;
  };
}

/**
 * Runs one program in a worker loop over in-memory streams, answering each syscall with
 * `answer` (a value, or a KeelError to send as the failure) as a host would; resolves with the
 * syscalls the worker sent and the run's `done` message.
 */
async function runProgram(
  program: AgentProgram,
  answer: (
    syscall: Syscall,
    index: number,
  ) => JsonValue | KeelError | Promise<JsonValue | KeelError>,
  maxFrameBytes = 1024 * 1024,
): Promise<{ readonly syscalls: readonly Syscall[]; readonly done: JsonObject }> {
  const toWorker = new PassThrough();
  const fromWorker = new PassThrough();
  const loop = runWorkerLoop({
    input: toWorker,
    output: fromWorker,
    programs: new Map([[program.name, program]]),
    loadModule: () => Promise.reject(new Error('no modules here')),
    heartbeatIntervalMs: 60_000,
    maxFrameBytes,
    pid: 1,
    memoryUsage: () => ({ heapUsed: 0, rss: 0 }),
  });
  const send = (message: JsonObject): void => {
    toWorker.write(encodeFrame(message, 1024 * 1024));
  };
  const decoder = new FrameDecoder(1024 * 1024);
  const syscalls: Syscall[] = [];
  const done = await new Promise<JsonObject>((resolve) => {
    fromWorker.on('data', (chunk: Buffer) => {
      for (const message of decoder.push(chunk) as JsonObject[]) {
        if (message.type === 'hello') {
          send({
            type: 'start',
            runId: 'run_1',
            agent: { id: 'agt_1', name: 'test', version: '1.0.0' },
            program: { builtin: program.name },
            task: { prompt: 'go' },
            tools: [],
            settings: {},
            model: null,
          });
        } else if (message.type === 'syscall') {
          const syscall = message as unknown as Syscall;
          syscalls.push(syscall);
          void Promise.resolve(answer(syscall, syscalls.length - 1)).then((answered) =>
            send(
              answered instanceof KeelError
                ? {
                    type: 'result',
                    runId: syscall.runId,
                    call: syscall.call,
                    ok: false,
                    error: answered.toJSON() as unknown as JsonObject,
                  }
                : {
                    type: 'result',
                    runId: syscall.runId,
                    call: syscall.call,
                    ok: true,
                    value: answered,
                  },
            ),
          );
        } else if (message.type === 'done') {
          resolve(message);
        }
      }
    });
  });
  send({ type: 'shutdown' });
  await loop;
  return { syscalls, done };
}

const chatAnswer = (seq: number): JsonValue => ({
  seq,
  text: 'ok',
  toolCalls: [],
  finishReason: 'stop',
  model: 'm',
  provider: 'p',
  usage: { inputTokens: 1, outputTokens: 1, costMicros: 0 },
});

const system: ChatMessage = { role: 'system', content: 'be brief' };
const task: ChatMessage = { role: 'user', content: 'go' };

/** A program that chats with `[system, task]`, then with `added` after them too. */
function twoChats(name: string, ...added: ChatMessage[]): AgentProgram {
  return defineAgent({
    name,
    async run(context) {
      const messages: ChatMessage[] = [system, task];
      await context.chat('default', { messages });
      messages.push(...added);
      return (await context.chat('default', { messages })).text;
    },
  });
}

describe('an agent program’s chat', () => {
  it('sends only the messages that extend the previous chat’s, with continues', async () => {
    const program = defineAgent({
      name: 'chatty',
      async run(context) {
        const messages: ChatMessage[] = [system, task];
        const first = await context.chat('default', { messages });
        messages.push({ role: 'assistant', content: first.text });
        messages.push({ role: 'user', content: 'and then?' });
        await context.chat('default', { messages, temperature: 0.5 });
        // A conversation that does not begin with the previous one's goes whole.
        await context.chat('default', { messages: [system, { role: 'user', content: 'new' }] });
        return null;
      },
    });
    const { syscalls, done } = await runProgram(program, (_, index) => chatAnswer(index + 1));
    assert.equal(done.ok, true);
    assert.deepEqual(
      syscalls.map((syscall) => syscall.intent.params),
      [
        { messages: [system, task] },
        {
          messages: [
            { role: 'assistant', content: 'ok' },
            { role: 'user', content: 'and then?' },
          ],
          temperature: 0.5,
          continues: 1,
        },
        { messages: [system, { role: 'user', content: 'new' }] },
      ],
    );
  });

  it('sends the whole conversation when an earlier message was changed in place', async () => {
    const program = defineAgent({
      name: 'editor',
      async run(context) {
        const prompt = { role: 'system' as const, content: 'draft' };
        const messages: ChatMessage[] = [prompt, task];
        await context.chat('default', { messages });
        (prompt as { content: string }).content = 'final';
        messages.push({ role: 'user', content: 'more' });
        await context.chat('default', { messages });
        return null;
      },
    });
    const { syscalls } = await runProgram(program, (_, index) => chatAnswer(index + 1));
    assert.deepEqual(syscalls[1]?.intent.params, {
      messages: [{ role: 'system', content: 'final' }, task, { role: 'user', content: 'more' }],
    });
  });

  it('sends the whole conversation again when the node no longer holds it, naming the refused call', async () => {
    const program = twoChats(
      'resumed',
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: 'next' },
    );
    const { syscalls, done } = await runProgram(program, (syscall, index) =>
      syscall.intent.params.continues === undefined
        ? chatAnswer(index + 1)
        : new KeelError('KEEL_CONVERSATION_UNKNOWN', 'not held', {
            // The node counts a run's syscalls in the order they arrive.
            details: { field: 'continues', seq: index + 1 },
          }),
    );
    assert.deepEqual(done, { type: 'done', runId: 'run_1', ok: true, result: 'ok' });
    assert.equal(syscalls.length, 3);
    assert.equal(syscalls[1]?.intent.params.continues, 1);
    assert.deepEqual(syscalls[2]?.intent.params, {
      fallbackOf: 2,
      messages: [
        system,
        task,
        { role: 'assistant', content: 'ok' },
        { role: 'user', content: 'next' },
      ],
    });
  });

  it('sends a refused continuation whole without fallbackOf when the refusal names no call', async () => {
    const program = twoChats('unnamed', { role: 'user', content: 'next' });
    const { syscalls } = await runProgram(program, (syscall, index) =>
      syscall.intent.params.continues === undefined
        ? chatAnswer(index + 1)
        : new KeelError('KEEL_CONVERSATION_UNKNOWN', 'not held', { details: { seq: 'two' } }),
    );
    assert.deepEqual(syscalls[2]?.intent.params, {
      messages: [system, task, { role: 'user', content: 'next' }],
    });
  });

  it('passes any other failure of a continued chat to the program', async () => {
    const program = twoChats('refused', { role: 'user', content: 'next' });
    const { syscalls, done } = await runProgram(program, (syscall, index) =>
      syscall.intent.params.continues === undefined
        ? chatAnswer(index + 1)
        : new KeelError('KEEL_BUDGET_EXHAUSTED', 'no budget left'),
    );
    assert.equal(syscalls.length, 2);
    assert.equal(done.ok, false);
    assert.equal((done.error as JsonObject).code, 'KEEL_BUDGET_EXHAUSTED');
  });

  it('sends the same whatever order concurrent chats are answered in', async () => {
    const a: ChatMessage[] = [system, task];
    const b: ChatMessage[] = [system, task, { role: 'user', content: 'b' }];
    const program = defineAgent({
      name: 'concurrent',
      async run(context) {
        await Promise.all([
          context.chat('default', { messages: a }),
          context.chat('default', { messages: b }),
        ]);
        // Extends the first chat but not the last one made: goes whole, however answered.
        const c: ChatMessage[] = [...a, { role: 'user', content: 'c' }];
        await context.chat('default', { messages: c });
        await context.chat('default', { messages: [...c, { role: 'user', content: 'd' }] });
        return null;
      },
    });
    const intents: unknown[][] = [];
    for (const slowFirst of [true, false]) {
      const { syscalls } = await runProgram(program, async (_, index) => {
        // The first two are in flight together: answer them in one order, then the other.
        if (index === 0 && slowFirst) await setTimeout(30);
        if (index === 1 && !slowFirst) await setTimeout(30);
        return chatAnswer(index + 1);
      });
      intents.push(syscalls.map((syscall) => syscall.intent.params));
    }
    assert.deepEqual(intents[0], intents[1]);
    assert.equal((intents[0]?.[2] as JsonObject | undefined)?.continues, undefined);
    assert.ok(intents[0]?.[2], 'the third chat was sent');
    assert.deepEqual(intents[0]?.[3], {
      continues: 3,
      messages: [{ role: 'user', content: 'd' }],
    });
  });

  it('waits for the answer of the chat it extends before sending', async () => {
    const order: string[] = [];
    const program = defineAgent({
      name: 'eager',
      async run(context) {
        const first = context.chat('default', { messages: [system, task] });
        const second = context.chat('default', {
          messages: [system, task, { role: 'user', content: 'also' }],
        });
        await Promise.all([first, second]);
        return null;
      },
    });
    const { syscalls } = await runProgram(program, async (_, index) => {
      order.push(`sent ${index + 1}`);
      if (index === 0) await setTimeout(30);
      order.push(`answered ${index + 1}`);
      return chatAnswer(index + 1);
    });
    assert.deepEqual(order, ['sent 1', 'answered 1', 'sent 2', 'answered 2']);
    assert.deepEqual(syscalls[1]?.intent.params, {
      continues: 1,
      messages: [{ role: 'user', content: 'also' }],
    });
  });

  it('continues nothing when the answer carries no seq (a call outside a durable run)', async () => {
    const program = twoChats('seqless', { role: 'user', content: 'next' });
    const { syscalls } = await runProgram(program, () => {
      const { seq: _seq, ...answer } = chatAnswer(1) as JsonObject;
      return answer;
    });
    assert.equal(syscalls[1]?.intent.params.continues, undefined);
    assert.equal((syscalls[1]?.intent.params.messages as unknown[] | undefined)?.length, 3);
  });
});

describe('a worker’s frames', () => {
  it('refuses its program a call larger than the host takes, and goes on', async () => {
    const program = defineAgent({
      name: 'large-call',
      async run(context) {
        const refused = await context.callTool('echo', { text: 'x'.repeat(4096) }).then(
          () => 'sent',
          (error: KeelError) => error.code,
        );
        return { refused, now: await context.now() };
      },
    });
    const { syscalls, done } = await runProgram(program, () => 7, 2048);
    assert.deepEqual(
      syscalls.map((syscall) => syscall.intent.kind),
      ['clock.now'],
    );
    assert.deepEqual(done.result, { refused: 'KEEL_PAYLOAD_TOO_LARGE', now: 7 });
  });

  it('ends a run failed when its result is larger than the host takes', async () => {
    const program = defineAgent({
      name: 'large-result',
      run: async () => 'x'.repeat(4096),
    });
    const { done } = await runProgram(program, () => null, 2048);
    assert.equal(done.ok, false);
    assert.equal((done.error as JsonObject).code, 'KEEL_PAYLOAD_TOO_LARGE');
  });
});
