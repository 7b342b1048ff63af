import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApprovalPolicy } from './approval-policy.ts';

const question = (kind: string, resource = 'x') => ({
  agentId: 'agt_1',
  trustLevel: 'standard' as const,
  runId: 'run_1',
  intent: { kind, resource },
});

describe('ApprovalPolicy', () => {
  it('asks a source only about the kind it was added for, after the configured rules', async () => {
    const asked: string[] = [];
    const policy = new ApprovalPolicy([]);
    assert.equal(policy.concerns('tool.call'), false);
    policy.addSource('tool.call', (q) => {
      asked.push(q.intent.resource);
      return q.intent.resource === 'write_file' ? 'writes need a human' : undefined;
    });
    assert.equal(policy.concerns('tool.call'), true);
    assert.equal(policy.concerns('llm.chat'), false);
    assert.equal(
      await policy.requirementFor(question('tool.call', 'write_file')),
      'writes need a human',
    );
    assert.equal(await policy.requirementFor(question('tool.call', 'read_file')), undefined);
    assert.equal(await policy.requirementFor(question('llm.chat', 'default')), undefined);
    assert.deepEqual(asked, ['write_file', 'read_file']);
  });

  it('lets a configured rule answer before any source, for every kind', async () => {
    const policy = new ApprovalPolicy([
      { kind: 'llm.*', resource: '*', trustLevels: ['standard'], reason: 'models need a human' },
    ]);
    policy.addSource('llm.chat', () => 'the source');
    assert.equal(policy.concerns('memory.write'), true);
    assert.equal(await policy.requirementFor(question('llm.chat')), 'models need a human');
  });
});
