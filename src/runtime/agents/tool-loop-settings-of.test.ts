import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAgentManifest } from '../manifests/agent-manifest.ts';
import { toolLoopSettingsOf } from './tool-loop-settings-of.ts';

const manifest = parseAgentManifest({
  apiVersion: 'keel.dev/v1',
  id: 'limits',
  version: '1.0.0',
  program: { builtin: 'tool-loop' },
  trust: 'supervised',
  capabilities: [],
  models: { default: 'default', maxOutputTokens: 512 },
  limits: { maxSteps: 20, maxIterations: 8 },
});

describe('toolLoopSettingsOf', () => {
  it('takes the limits from the manifest when settings name none', () => {
    assert.deepEqual(toolLoopSettingsOf({ system: 'hi' }, manifest), {
      maxOutputTokens: 512,
      system: 'hi',
      maxSteps: 20,
      maxIterations: 8,
    });
  });

  it('lets settings lower the limits but never raise them', () => {
    const raised = toolLoopSettingsOf({ maxSteps: 500, maxIterations: 100 }, manifest);
    assert.equal(raised.maxSteps, 20);
    assert.equal(raised.maxIterations, 8);
    const lowered = toolLoopSettingsOf(
      { maxSteps: 5, maxIterations: 2, maxOutputTokens: 64 },
      manifest,
    );
    assert.deepEqual(
      [lowered.maxSteps, lowered.maxIterations, lowered.maxOutputTokens],
      [5, 2, 64],
    );
  });

  it('leaves a value that is not a number for the tool loop to refuse', () => {
    assert.equal(toolLoopSettingsOf({ maxSteps: 'many' }, manifest).maxSteps, 'many');
  });
});
