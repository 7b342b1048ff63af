import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../test/support/assertions.ts';
import { silentLogger } from '../../test/support/silent-logger.ts';
import { temporaryDirectory } from '../../test/support/temporary-directory.ts';
import { loadConfiguration } from '../kernel/config/load-configuration.ts';
import { startNode } from './node.ts';

const logger = silentLogger();

describe('startNode', () => {
  it('starts ready, runs built-in syscalls through the gate, and stops completely', async () => {
    await using directory = await temporaryDirectory();
    const loaded = await loadConfiguration({
      dataDirectory: join(directory.path, 'keel'),
      environment: {},
    });
    const node = await startNode({ loaded, logger });
    assert.equal(node.health().ready, true);
    const { kernel } = node;
    const agent = await kernel.agents.register(
      { name: 'clock-reader', trustLevel: 'standard' },
      'operator:test',
    );
    await kernel.agents.setState(agent.id, 'running');
    await kernel.capabilities.grant(agent.id, { kind: 'clock.now' }, 'operator:test');
    await kernel.capabilities.grant(agent.id, { kind: 'random' }, 'operator:test');
    assert.equal(
      typeof (await kernel.gate.call({ agentId: agent.id }, { kind: 'clock.now' })),
      'number',
    );
    assert.match(
      String(
        await kernel.gate.call({ agentId: agent.id }, { kind: 'random', params: { bytes: 8 } }),
      ),
      /^[0-9a-f]{16}$/,
    );
    await rejectsWithCode(
      kernel.gate.call(
        { agentId: agent.id },
        { kind: 'log', params: { level: 'info', message: 'hi' } },
      ),
      'KEEL_CAPABILITY_DENIED',
    );
    await node.close('test');
    assert.equal(node.health().ready, false);
    await rejectsWithCode(node.storage.audit.count(), 'KEEL_SHUTTING_DOWN');
    await rejectsWithCode(
      kernel.gate.call({ agentId: agent.id }, { kind: 'clock.now' }),
      'KEEL_SHUTTING_DOWN',
    );
    assert.ok(
      !(await readdir(join(directory.path, 'keel'))).includes('keel.lock'),
      'the lock is released',
    );
    await node.close('again');
    const reloaded = await loadConfiguration({
      dataDirectory: join(directory.path, 'keel'),
      environment: {},
    });
    const reopened = await startNode({ loaded: reloaded, logger });
    try {
      const entries = await reopened.kernel.audit.tail(100);
      const kinds = entries.map((entry) => entry.kind);
      assert.equal(kinds.filter((kind) => kind === 'node.start').length, 2);
      assert.equal(kinds.filter((kind) => kind === 'node.stop').length, 1);
      assert.equal(
        kinds.filter((kind) => kind === 'config.change').length,
        1,
        'unchanged configuration is not a change',
      );
      assert.equal((await reopened.kernel.audit.verify()).intact, true);
    } finally {
      await reopened.close();
    }
  });

  it('audits a configuration change between starts', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    const first = await startNode({
      loaded: await loadConfiguration({ dataDirectory, environment: {} }),
      logger,
    });
    await first.close();
    const changed = await loadConfiguration({
      dataDirectory,
      environment: { KEEL_LOG_LEVEL: 'debug' },
    });
    const second = await startNode({ loaded: changed, logger });
    try {
      const changes = (await second.kernel.audit.tail(100)).filter(
        (entry) => entry.kind === 'config.change',
      );
      assert.deepEqual(
        changes.map((entry) => entry.outcome),
        ['initial', 'changed'],
      );
      assert.equal(changes[1]?.data.to, changed.digest);
    } finally {
      await second.close();
    }
  });

  it('undoes a start that fails after storage opened: lock released, nothing audited', async () => {
    await using directory = await temporaryDirectory();
    const dataDirectory = join(directory.path, 'keel');
    const broken = {
      specificationVersion: 'v1' as const,
      kind: 'Not A Kind',
      doExecute: async () => ({ value: null }),
    };
    await rejectsWithCode(
      startNode({
        loaded: await loadConfiguration({ dataDirectory, environment: {} }),
        logger,
        executors: [broken],
      }),
      'KEEL_INVALID_ARGUMENT',
    );
    assert.ok(!(await readdir(dataDirectory)).includes('keel.lock'), 'the lock is released');
    const node = await startNode({
      loaded: await loadConfiguration({ dataDirectory, environment: {} }),
      logger,
    });
    try {
      const kinds = (await node.kernel.audit.tail(10)).map((entry) => entry.kind);
      assert.deepEqual(kinds, ['config.change', 'node.start'], 'the failed start audited nothing');
    } finally {
      await node.close();
    }
  });

  it('leaves a running node intact when a second one is refused', async () => {
    await using directory = await temporaryDirectory();
    const loaded = await loadConfiguration({
      dataDirectory: join(directory.path, 'keel'),
      environment: {},
    });
    const node = await startNode({ loaded, logger });
    try {
      await rejectsWithCode(startNode({ loaded, logger }), 'KEEL_DATA_DIR_LOCKED');
      assert.equal(node.health().ready, true);
    } finally {
      await node.close();
    }
  });
});
