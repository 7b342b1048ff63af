import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import type { ToLoopMessage } from './control-loop-messages.ts';
import { LoopRequests } from './loop-requests.ts';

describe('LoopRequests', () => {
  it('keeps the loop’s error code, makes an unknown one a HAL fault, and times out', async () => {
    const channel = new MessageChannel();
    const requests = new LoopRequests(channel.port1, 50);
    const sent: ToLoopMessage[] = [];
    channel.port2.on('message', (message: ToLoopMessage) => sent.push(message));
    try {
      const refused = requests.send({ type: 'stop-motion', id: requests.reserve() });
      const odd = requests.send({ type: 'stop-motion', id: requests.reserve() });
      const answered = requests.send({ type: 'capture', id: requests.reserve() });
      const unanswered = requests.send({ type: 'timing', id: requests.reserve() });
      requests.settle({
        type: 'reply',
        id: 1,
        ok: false,
        error: { code: 'KEEL_POLICY_VIOLATION', message: 'a human drives' },
      });
      requests.settle({
        type: 'reply',
        id: 2,
        ok: false,
        error: { code: 'NOT_A_CODE', message: 'odd' },
      });
      requests.settle({ type: 'reply', id: 3, ok: true, value: 'frame' });
      requests.settle({ type: 'reply', id: 99, ok: true, value: 'nobody asked' });
      await assert.rejects(refused, { code: 'KEEL_POLICY_VIOLATION' });
      await assert.rejects(odd, { code: 'KEEL_HAL_FAULT' });
      assert.equal(await answered, 'frame');
      await assert.rejects(unanswered, { code: 'KEEL_TIMEOUT' });
      assert.deepEqual(
        sent.map((message) => [message.id, message.type]),
        [
          [1, 'stop-motion'],
          [2, 'stop-motion'],
          [3, 'capture'],
          [4, 'timing'],
        ],
        'each request went to the loop once, under its own id',
      );
      requests.close();
      await assert.rejects(requests.send({ type: 'stop-motion', id: requests.reserve() }), {
        code: 'KEEL_HAL_FAULT',
      });
    } finally {
      channel.port1.close();
    }
  });
});
