import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { KeelError } from '../../src/platform/errors/keel-error.ts';
import { MqttRobotBridge } from '../../src/services/robotics/bridges/mqtt/mqtt-robot-bridge.ts';
import { throwsWithCode } from '../support/assertions.ts';
import { silentLogger } from '../support/silent-logger.ts';
import {
  BROKER_URL,
  CommandSchema,
  command,
  createRig,
  LoopbackProxy,
  Observer,
  type Rig,
  requireBroker,
  stateReached,
  WAIT_MS,
} from './mqtt-bridge-rig.ts';

describe('MQTT robot bridge settings', () => {
  const base = {
    url: BROKER_URL,
    clientId: 'keel-arm-1',
    topicPrefix: 'keel/robots/arm-1',
    commandSchema: CommandSchema,
    onCommand: async () => ({ ok: true as const, value: null }),
    logger: silentLogger(),
  };

  it('refuses topic prefixes with wildcards, a leading $ or empty levels', () => {
    for (const topicPrefix of ['keel/+/arm', 'keel/#', '$SYS/arm', 'keel//arm', 'keel/arm/']) {
      throwsWithCode(() => new MqttRobotBridge({ ...base, topicPrefix }), 'KEEL_INVALID_ARGUMENT');
    }
  });

  it('accepts only mqtt:// and mqtts:// urls, without credentials in them', () => {
    for (const url of ['ws://127.0.0.1:1883', 'http://127.0.0.1', 'mqtt://user:hunter2@host']) {
      const error = throwsWithCode(
        () => new MqttRobotBridge({ ...base, url }),
        'KEEL_INVALID_ARGUMENT',
      );
      assert.doesNotMatch(JSON.stringify(error), /hunter2/);
    }
    assert.equal(
      new MqttRobotBridge({ ...base, url: 'mqtts://broker.example:8883' }).state,
      'idle',
    );
  });
});

describe('MQTT robot bridge on the real Mosquitto broker', () => {
  before(requireBroker);

  it('hands a published command to the handler and publishes its result', async (t) => {
    const rig = await createRig(t);
    await rig.send(command('c-1'));
    const result = await rig.result('c-1');
    assert.deepEqual(result, { id: 'c-1', ok: true, value: { done: 'move' } });
    assert.deepEqual(rig.calls, [{ id: 'c-1', command: command('c-1').command }]);
    assert.ok(
      rig.observer.messages(rig.topics.status).some(({ value }) => value.status === 'online'),
    );
  });

  it('turns handler failures into error results: Keel codes kept, other errors KEEL_INTERNAL without detail', async (t) => {
    const rig = await createRig(t, {
      onCommand: async (intent) => {
        if (intent.action === 'stop') throw new KeelError('KEEL_ESTOP_ENGAGED', 'estop is engaged');
        throw new TypeError('internal detail at /srv/secret/path');
      },
    });
    await rig.send(command('c-stop', 'stop'));
    await rig.send(command('c-move', 'move'));
    const refused = await rig.result('c-stop');
    assert.deepEqual(refused, {
      id: 'c-stop',
      ok: false,
      error: { code: 'KEEL_ESTOP_ENGAGED', message: 'estop is engaged' },
    });
    const failed = await rig.result('c-move');
    assert.equal((failed.error as { code: string }).code, 'KEEL_INTERNAL');
    assert.doesNotMatch(JSON.stringify(failed), /secret|TypeError|\bat\b/);
  });

  const refusals: [string, (rig: Rig) => Promise<void>, string | null, string][] = [
    ['invalid JSON', (rig) => rig.send('{"id": "bad-json", '), null, 'KEEL_INVALID_ARGUMENT'],
    [
      'a command that does not match the schema',
      (rig) => rig.send({ id: 'c-fly', issuedAt: Date.now(), command: { action: 'fly' } }),
      'c-fly',
      'KEEL_INVALID_ARGUMENT',
    ],
    [
      'an envelope with unknown fields',
      (rig) => rig.send({ ...command('c-extra'), replyTo: 'elsewhere' }),
      'c-extra',
      'KEEL_INVALID_ARGUMENT',
    ],
    [
      'an oversized payload',
      (rig) =>
        rig.send({ ...command('c-big'), command: { action: 'move', pad: 'x'.repeat(2048) } }),
      null,
      'KEEL_PAYLOAD_TOO_LARGE',
    ],
    [
      'a stale command',
      (rig) => rig.send(command('c-old', 'move', Date.now() - 60_000)),
      'c-old',
      'KEEL_TIMEOUT',
    ],
    [
      'a command dated in the future',
      (rig) => rig.send(command('c-future', 'move', Date.now() + 60_000)),
      'c-future',
      'KEEL_INVALID_ARGUMENT',
    ],
  ];
  for (const [what, send, id, code] of refusals) {
    it(`answers ${what} with ${code} and does not call the handler`, async (t) => {
      const rig = await createRig(t, { maxPayloadBytes: 1024 });
      await send(rig);
      const result = await rig.result(id, code);
      assert.equal(result.ok, false);
      assert.equal(rig.calls.length, 0);
      assert.equal(rig.bridge.statistics().commandsRefused, 1);
    });
  }

  it('refuses a retained command instead of acting on it at every subscription', async (t) => {
    const rig = await createRig(t, { connectNow: false });
    await rig.send(command('c-retained'), true);
    await rig.bridge.connect({ signal: AbortSignal.timeout(WAIT_MS) });
    await rig.result('c-retained', 'KEEL_INVALID_ARGUMENT');
    assert.equal(rig.calls.length, 0);
  });

  it('runs the handler once when the same command id is delivered twice', async (t) => {
    const rig = await createRig(t);
    await rig.send(command('c-twice'));
    await rig.send(command('c-twice'));
    await rig.send(command('c-after'));
    await rig.result('c-after');
    assert.deepEqual(
      rig.calls.map((call) => call.id),
      ['c-twice', 'c-after'],
    );
    assert.equal(rig.bridge.statistics().duplicateCommands, 1);
    const answers = rig.observer
      .messages(rig.topics.results)
      .filter(({ value }) => value.id === 'c-twice');
    assert.ok(answers.every(({ value }) => value.ok === true));
  });

  it('handles commands one at a time, in the order they arrived', async (t) => {
    let active = 0;
    let most = 0;
    const order: string[] = [];
    const rig = await createRig(t, {
      onCommand: async (_intent, meta) => {
        active += 1;
        most = Math.max(most, active);
        order.push(meta.id);
        await new Promise((resolve) => setImmediate(resolve));
        active -= 1;
        return { ok: true, value: null };
      },
    });
    const ids = ['c-1', 'c-2', 'c-3', 'c-4', 'c-5'];
    await Promise.all(ids.map((id) => rig.send(command(id))));
    await rig.result('c-5');
    assert.deepEqual(order, ids);
    assert.equal(most, 1);
  });

  it('keeps the last state retained for a late subscriber; telemetry is not retained', async (t) => {
    const rig = await createRig(t);
    await rig.bridge.publishState({ mode: 'idle' });
    await rig.bridge.publishState({ mode: 'moving', speed: 0.4 });
    const late = await Observer.connect(rig.topics.state, rig.topics.telemetry);
    t.after(() => late.close());
    const state = await late.next(rig.topics.state, () => true, 'the retained state');
    assert.deepEqual(state, { value: { mode: 'moving', speed: 0.4 }, retain: true });
    assert.equal(rig.bridge.publishTelemetry({ battery: 0.8 }), true);
    const sample = await late.next(rig.topics.telemetry, () => true, 'a telemetry sample');
    assert.deepEqual(sample, { value: { battery: 0.8 }, retain: false });
  });

  it('publishes a retained offline status when it closes', async (t) => {
    const rig = await createRig(t);
    await rig.bridge.close();
    assert.equal(rig.bridge.state, 'closed');
    const late = await Observer.connect(rig.topics.status);
    t.after(() => late.close());
    const status = await late.next(rig.topics.status, () => true, 'the retained status');
    assert.deepEqual(status, { value: { status: 'offline', reason: 'closed' }, retain: true });
  });

  it('aborts the signal of the command in progress when it closes, and answers it first', async (t) => {
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const rig = await createRig(t, {
      onCommand: (_intent, meta) =>
        new Promise((resolve) => {
          started();
          meta.signal.addEventListener('abort', () =>
            resolve({ ok: false, error: new KeelError('KEEL_ABORTED', 'stopped for shutdown') }),
          );
        }),
    });
    await rig.send(command('c-long'));
    await running;
    await rig.bridge.close();
    const result = await rig.result('c-long', 'KEEL_ABORTED');
    assert.equal(result.ok, false);
    const status = await rig.observer.next(
      rig.topics.status,
      (value) => value.reason === 'closed',
      'offline',
    );
    assert.equal(status.value.status, 'offline');
  });

  it('leaves its Last Will, a retained offline status, when its connection dies abruptly', async (t) => {
    const proxy = new LoopbackProxy();
    const rig = await createRig(t, { url: await proxy.listen() });
    t.after(() => proxy.close()); // after the bridge has closed: hooks run in order
    proxy.block();
    assert.equal(proxy.cut(), 2);
    await rig.observer.next(
      rig.topics.status,
      (value) => value.status === 'offline' && value.reason === 'connection-lost',
      'the Last Will',
    );
    const late = await Observer.connect(rig.topics.status);
    t.after(() => late.close());
    const status = await late.next(rig.topics.status, () => true, 'the retained status');
    assert.deepEqual(status.value, { status: 'offline', reason: 'connection-lost' });
  });

  it('reconnects through a cut connection, resubscribes, sends only the newest state and handles new commands', async (t) => {
    const proxy = new LoopbackProxy();
    const rig = await createRig(t, { url: await proxy.listen() });
    t.after(() => proxy.close()); // after the bridge has closed: hooks run in order
    await rig.bridge.publishState({ mode: 'before' });
    const stateWatcher = await Observer.connect(rig.topics.state);
    t.after(() => stateWatcher.close());
    await stateWatcher.next(
      rig.topics.state,
      (value) => value.mode === 'before',
      'the first state',
    );

    proxy.block();
    proxy.cut();
    await stateReached(rig.bridge, 'offline');
    assert.equal(rig.bridge.publishTelemetry({ battery: 0.5 }), false);
    assert.equal(rig.bridge.statistics().telemetryDropped, 1);
    const superseded = rig.bridge.publishState({ mode: 'superseded' });
    const newest = rig.bridge.publishState({ mode: 'newest' });

    proxy.unblock();
    await rig.bridge.connect({ signal: AbortSignal.timeout(WAIT_MS) });
    await Promise.all([superseded, newest]);
    await stateWatcher.next(
      rig.topics.state,
      (value) => value.mode === 'newest',
      'the newest state',
    );
    assert.deepEqual(
      stateWatcher.messages(rig.topics.state).map(({ value }) => value.mode),
      ['before', 'newest'],
    );

    await rig.send(command('c-after-reconnect'));
    assert.deepEqual(await rig.result('c-after-reconnect'), {
      id: 'c-after-reconnect',
      ok: true,
      value: { done: 'move' },
    });
    assert.equal(rig.bridge.statistics().connections, 2);
  });
});
