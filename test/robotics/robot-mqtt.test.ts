import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { parseMockScript } from '../../src/services/models/mock/mock-script.ts';
import { DEMO_YARD } from '../../src/services/robotics/demo-yard.ts';
import { BROKER_URL, Observer, requireBroker } from './mqtt-bridge-rig.ts';
import { withRoverNode } from './rover-fixture.ts';

const IDLE = parseMockScript({ turns: [{ reply: { text: 'idle' } }] });

/** The agent MQTT commands act as: it may drive slowly and switch the lamp, nothing else. */
const OPERATOR = {
  apiVersion: 'keel.dev/v1',
  id: 'mqtt-operator',
  version: '1.0.0',
  program: { builtin: 'tool-loop' },
  trust: 'autonomous',
  capabilities: [
    { kind: 'hal.drive', resource: 'base', limits: { maxLinear: 0.5, maxAngular: 1 } },
    { kind: 'hal.relay', resource: 'lamp' },
  ],
};

describe('the node’s robot on MQTT (the local Mosquitto)', { timeout: 60_000 }, () => {
  before(requireBroker);

  it('publishes telemetry and retained state, and runs commands through the gate as the configured agent', async () => {
    const prefix = `keel/test/${randomUUID()}`;
    const mqtt = [
      '',
      '[robotics.mqtt]',
      `url = "${BROKER_URL}"`,
      `topic_prefix = "${prefix}"`,
      'agent = "mqtt-operator"',
      'telemetry_interval_ms = 100',
    ].join('\n');
    await withRoverNode(
      structuredClone(DEMO_YARD) as never,
      IDLE,
      async (node) => {
        await node.runtime.deploy(OPERATOR, 'test');
        const observer = await Observer.connect(
          `${prefix}/telemetry`,
          `${prefix}/state`,
          `${prefix}/command-results`,
        );
        try {
          const telemetry = await observer.next(
            `${prefix}/telemetry`,
            (value) => value.robotId === 'rover-1',
            'telemetry',
          );
          assert.equal(telemetry.value.estop, false);
          const state = await observer.next(
            `${prefix}/state`,
            (value) => value.robotId === 'rover-1',
            'retained state',
          );
          assert.equal(typeof state.value.battery, 'number');

          const send = async (id: string, command: unknown) => {
            await observer.publish(
              `${prefix}/commands`,
              JSON.stringify({ id, issuedAt: Date.now(), command }),
            );
            return (
              await observer.next(
                `${prefix}/command-results`,
                (value) => value.id === id,
                `the result of ${id}`,
              )
            ).value;
          };
          const slow = await send('c1', { action: 'Drive', payload: { linear: 0.3, angular: 0 } });
          assert.equal(slow.ok, true, JSON.stringify(slow));
          const fast = await send('c2', { action: 'Drive', payload: { linear: 0.7, angular: 0 } });
          assert.equal((fast.error as { code: string }).code, 'KEEL_CAPABILITY_DENIED');
          const horn = await send('c3', {
            action: 'TriggerRelay',
            payload: { relayId: 'horn', state: true },
          });
          assert.equal((horn.error as { code: string }).code, 'KEEL_CAPABILITY_DENIED');
          const bad = await send('c4', { action: 'Drive', payload: { linear: 'fast' } });
          assert.equal((bad.error as { code: string }).code, 'KEEL_INVALID_ARGUMENT');

          await observer.publish(
            `${prefix}/commands`,
            JSON.stringify({
              id: 'c5',
              issuedAt: Date.now() - 60_000,
              command: { action: 'Drive', payload: { linear: 0.1, angular: 0 } },
            }),
          );
          const stale = await observer.next(
            `${prefix}/command-results`,
            (value) => value.id === 'c5',
            'the stale command',
          );
          assert.equal((stale.value.error as { code: string }).code, 'KEEL_TIMEOUT');
          const agentId = (await node.runtime.show('mqtt-operator')).agent.id;
          const audit = await node.storage.audit.read(0, 100_000);
          const mine = audit.filter(
            (entry) =>
              entry.agentId === agentId &&
              entry.kind.startsWith('syscall.') &&
              entry.subject?.startsWith('hal.'),
          );
          assert.deepEqual(
            mine.map((entry) => `${entry.kind} ${entry.subject}`),
            [
              'syscall.allow hal.drive base',
              'syscall.deny hal.drive base',
              'syscall.deny hal.relay horn',
            ],
          );
          const bridgeRefusals = audit.filter((entry) => entry.kind === 'robot.mqtt.refuse');
          assert.deepEqual(
            bridgeRefusals.map((entry) => [entry.data.commandId, entry.data.code]),
            [
              ['c4', 'KEEL_INVALID_ARGUMENT'],
              ['c5', 'KEEL_TIMEOUT'],
            ],
            'the bridge audits what it refuses itself',
          );
        } finally {
          await observer.publish(`${prefix}/state`, '', true);
          await observer.publish(`${prefix}/status`, '', true);
          await observer.close();
        }
      },
      mqtt,
    );
  });
});
