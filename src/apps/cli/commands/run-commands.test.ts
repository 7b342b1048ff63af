import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { JsonValue } from '../../../platform/storage/ports/json-value.ts';
import type { RunRecord } from '../../../platform/storage/ports/run-store.ts';
import type { ControlClient } from '../../../runtime/control/control-client.ts';
import { Output } from '../output.ts';
import { describeResult, follow, parseInput } from './run-commands.ts';

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

  it('shows control characters from the agent instead of sending them to the terminal', () => {
    const { stdout } = described({
      result: { status: 'completed', answer: 'red\u001b[31m\rover\u009b2J\ttab\nnext' },
    });
    assert.equal(
      stdout,
      '✔ run run_1 succeeded after 1 attempt(s)\nred\\u{1b}[31m\\u{d}over\\u{9b}2J\ttab\nnext\n',
    );
    const failed = described({
      status: 'failed',
      error: { code: 'KEEL_TOOL_FAILED', message: 'boom\u001b]0;owned\u0007', hint: '\u001b[2J' },
    });
    assert.ok(!failed.stdout.includes('\u001b') && !failed.stdout.includes('\u0007'));
    assert.match(failed.stdout, /boom\\u\{1b\}\]0;owned\\u\{7\}/);
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

describe('parseInput (--input)', () => {
  const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

  it('takes a JSON object', () => {
    assert.deepEqual(parseInput('{"repository":"keel","depth":[1,{"x":2}]}'), {
      repository: 'keel',
      depth: [1, { x: 2 }],
    });
  });

  it('refuses what is not a JSON object as a usage error', () => {
    for (const value of ['[1]', '"text"', 'null', '{broken']) {
      assert.throws(() => parseInput(value), { code: 'commander.invalidArgument' });
    }
  });

  it('refuses nesting deeper than a request carries, before anything recurses over it', () => {
    assert.deepEqual(Object.keys(parseInput(nested(126))), ['a']);
    assert.throws(() => parseInput(nested(127)), /nests deeper than 126 levels/);
    // Deep enough to overflow the stack of anything recursive.
    assert.throws(() => parseInput(nested(20_000)), { code: 'commander.invalidArgument' });
  });
});

describe('follow', () => {
  it('says how to follow the run again when the node goes away, not to submit it again', async () => {
    const gone = {
      request: () =>
        Promise.reject(
          new KeelError('KEEL_NODE_NOT_RUNNING', 'the node closed the control connection'),
        ),
    } as unknown as ControlClient;
    const output = new Output({ json: true });
    await assert.rejects(follow(output, gone, 'run_7', new AbortController().signal), {
      code: 'KEEL_NODE_NOT_RUNNING',
      hint: 'the run is kept; once the node is back, follow it with `keel runs show run_7 --follow`',
    });
  });
});
