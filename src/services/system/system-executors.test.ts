import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { createExecutionContext } from '../../kernel/gate/execution-context.ts';
import type { ExecutionContext, SyscallIntent } from '../../kernel/gate/syscall.ts';
import { ManualClock } from '../../platform/clock/clock.ts';
import { createLogger } from '../../platform/observability/logger.ts';
import { SecretRedactor } from '../../platform/observability/secret-redactor.ts';
import { createClockExecutor, logExecutor, randomExecutor } from './system-executors.ts';

function context(lines: string[] = []): ExecutionContext {
  return createExecutionContext(
    { agentId: 'agt_1' },
    'agt_1',
    new AbortController().signal,
    createLogger({
      level: 'debug',
      format: 'json',
      redactor: new SecretRedactor([]),
      destination: new Writable({
        write(chunk: Buffer, _encoding, callback) {
          lines.push(chunk.toString('utf8'));
          callback();
        },
      }),
    }),
  );
}

const intent = (kind: string, params: Record<string, unknown> = {}): SyscallIntent => ({
  kind,
  resource: '',
  params,
});

describe('system executors', () => {
  it('clock.now answers the injected clock', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    assert.deepEqual(await createClockExecutor(clock).doExecute(intent('clock.now'), context()), {
      value: 1_700_000_000_000,
    });
  });

  it('random answers bytes or an integer in range, and refuses bad ranges', async () => {
    const bytes = await randomExecutor.doExecute(intent('random', { bytes: 16 }), context());
    assert.match(String(bytes.value), /^[0-9a-f]{32}$/);
    for (let index = 0; index < 50; index += 1) {
      const { value } = await randomExecutor.doExecute(
        intent('random', { min: 3, max: 5 }),
        context(),
      );
      assert.ok(value === 3 || value === 4, String(value));
    }
    await rejectsWithCode(
      randomExecutor.doExecute(intent('random', { bytes: 4096 }), context()),
      'KEEL_INVALID_ARGUMENT',
    );
    await rejectsWithCode(
      randomExecutor.doExecute(intent('random', { min: 5, max: 5 }), context()),
      'KEEL_INVALID_ARGUMENT',
    );
    await rejectsWithCode(
      randomExecutor.doExecute(intent('random'), context()),
      'KEEL_INVALID_ARGUMENT',
    );
  });

  it('log writes one line per call, with control characters escaped', async () => {
    const lines: string[] = [];
    await logExecutor.doExecute(
      intent('log', {
        level: 'warn',
        message: 'first\n{"level":50,"msg":"forged"}\u001b[31m',
        fields: { step: 2 },
      }),
      context(lines),
    );
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0] ?? '') as {
      level: number;
      msg: string;
      source: string;
      fields: unknown;
    };
    assert.equal(line.level, 40);
    assert.equal(line.source, 'agent');
    assert.deepEqual(line.fields, { step: 2 });
    assert.equal(line.msg, 'first\\u000a{"level":50,"msg":"forged"}\\u001b[31m');
    await rejectsWithCode(
      logExecutor.doExecute(intent('log', { level: 'fatal', message: 'x' }), context()),
      'KEEL_INVALID_ARGUMENT',
    );
  });
});
