import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import type { JsonValue } from '../../../platform/storage/ports/json-value.ts';
import type { RunRecord } from '../../../platform/storage/ports/run-store.ts';
import { Output } from '../output.ts';
import { describeResult } from './run-commands.ts';

/** What describeResult printed for `run`, standard output then standard error. */
function described(run: Partial<RunRecord>): { stdout: string; stderr: string } {
  const written = { stdout: '', stderr: '' };
  const stream = (name: 'stdout' | 'stderr') =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        written[name] += chunk.toString('utf8');
        callback();
      },
    }) as unknown as NodeJS.WriteStream;
  const output = new Output({ json: false, stdout: stream('stdout'), stderr: stream('stderr') });
  describeResult(output, {
    id: 'run_1',
    agentId: 'agent_1',
    status: 'succeeded',
    task: { prompt: 'x' },
    result: null,
    error: null,
    priority: 5,
    attempts: 1,
    origin: 'cli',
    createdAt: 0,
    updatedAt: 0,
    ...run,
  });
  return written;
}

describe('describeResult', () => {
  it('prints the answer of a run that did its task', () => {
    const { stdout } = described({ result: { status: 'completed', answer: 'All done.' } });
    assert.equal(stdout, '✔ run run_1 succeeded after 1 attempt(s)\nAll done.\n');
  });

  it('warns when the program stopped short although the run succeeded', () => {
    const { stdout } = described({
      attempts: 2,
      result: { status: 'limit', reason: 'maxSteps 10 reached', answer: 'Partial.' },
    });
    assert.match(
      stdout,
      /^\S+ run run_1 succeeded after 2 attempt\(s\), but its program stopped short: limit \(maxSteps 10 reached\)\nPartial\.\n$/,
    );
    assert.doesNotMatch(stdout, /^✔/);
  });

  it('prints a result without an answer as JSON', () => {
    const result: JsonValue = { rows: [1, 2] };
    const { stdout } = described({ result });
    assert.ok(stdout.endsWith(`${JSON.stringify(result, null, 2)}\n`));
  });

  it('says why a run failed and what to do', () => {
    const { stdout } = described({
      status: 'dead-lettered',
      error: {
        code: 'KEEL_BUDGET_EXHAUSTED',
        message: 'the budget of agent:a has no tokens left',
        hint: 'raise it with keel budget set',
      },
    });
    assert.equal(
      stdout,
      '✖ run run_1 dead-lettered: KEEL_BUDGET_EXHAUSTED the budget of agent:a has no tokens left\n  raise it with keel budget set\n',
    );
  });
});
