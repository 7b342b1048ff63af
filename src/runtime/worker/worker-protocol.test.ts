import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import { parseWorkerMessage } from './worker-protocol.ts';

const protocolError = (error: unknown): boolean =>
  isKeelError(error) && error.code === 'KEEL_WORKER_PROTOCOL';

describe('parseWorkerMessage', () => {
  it('accepts each message type in its own shape', () => {
    const messages = [
      { type: 'hello', protocol: 1, pid: 42 },
      { type: 'heartbeat', heapUsed: 1, rss: 2 },
      {
        type: 'syscall',
        runId: 'run_1',
        call: 3,
        intent: { kind: 'tool.call', resource: 'x', params: { a: [1] } },
      },
      { type: 'done', runId: 'run_1', ok: true, result: { answer: 'yes' } },
      { type: 'done', runId: 'run_1', ok: false, error: { code: 'KEEL_X', message: 'no' } },
    ];
    for (const message of messages) assert.deepEqual(parseWorkerMessage(message), message);
  });

  it('refuses anything else with KEEL_WORKER_PROTOCOL', () => {
    for (const message of [
      null,
      [],
      'syscall',
      {},
      { type: 'shutdown' },
      { type: 'toString', protocol: 1, pid: 1 },
      { type: 'hello', protocol: 1, pid: 1, extra: true },
      { type: 'hello', runId: 'run_1', call: 1, intent: { kind: 'a', resource: '', params: {} } },
      {
        type: 'syscall',
        runId: 'run_1',
        call: -1,
        intent: { kind: 'a', resource: '', params: {} },
      },
      { type: 'syscall', runId: '', call: 1, intent: { kind: 'a', resource: '', params: {} } },
      { type: 'syscall', runId: 'run_1', call: 1, intent: { kind: 'a', params: {} } },
      { type: 'syscall', runId: 'run_1', call: 1, intent: { kind: 'a', resource: '', params: [] } },
      {
        type: 'syscall',
        runId: 'run_1',
        call: 1,
        intent: { kind: 'a', resource: '', params: null },
      },
      { type: 'heartbeat', heapUsed: -1, rss: 1 },
      { type: 'done', runId: 'run_1', ok: true },
      { type: 'done', runId: 'run_1', ok: false, error: { code: 'X' } },
    ]) {
      assert.throws(() => parseWorkerMessage(message), protocolError, JSON.stringify(message));
    }
  });

  it('names the field that is wrong', () => {
    assert.throws(
      () =>
        parseWorkerMessage({
          type: 'syscall',
          runId: 'run_1',
          call: 1,
          intent: { kind: 'a', resource: 7, params: {} },
        }),
      (error: unknown) => protocolError(error) && /intent\.resource/.test((error as Error).message),
    );
  });
});
