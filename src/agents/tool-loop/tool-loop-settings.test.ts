import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import { DEFAULT_SYSTEM_PROMPT, parseToolLoopSettings } from './tool-loop-settings.ts';

function invalidField(settings: JsonObject): unknown {
  try {
    parseToolLoopSettings(settings);
  } catch (error) {
    assert.ok(isKeelError(error));
    assert.equal(error.code, 'KEEL_INVALID_ARGUMENT');
    assert.match(error.message, /tool-loop settings/);
    return error.details.field;
  }
  assert.fail('the settings were accepted');
}

describe('parseToolLoopSettings', () => {
  it('applies the defaults to empty settings', () => {
    const settings = parseToolLoopSettings({});
    assert.equal(settings.system, DEFAULT_SYSTEM_PROMPT);
    assert.equal(settings.maxSteps, 50);
    assert.equal(settings.maxIterations, 20);
    assert.equal(settings.contextTokens, 32_000);
    assert.equal(settings.repeatLimit, 3);
    assert.equal(settings.maxOutputTokens, undefined);
    assert.equal(settings.resultSchema, undefined);
    assert.equal(settings.toolChoice, undefined);
  });

  it('keeps the values it is given', () => {
    const settings = parseToolLoopSettings({
      system: 'Be brief.',
      maxSteps: 5,
      maxIterations: 2,
      contextTokens: 256,
      maxOutputTokens: 1_000,
      repeatLimit: 2,
      resultSchema: { type: 'object', required: ['title'] },
      toolChoice: { name: 'search' },
    });
    assert.equal(settings.system, 'Be brief.');
    assert.deepEqual(settings.resultSchema, { type: 'object', required: ['title'] });
    assert.deepEqual(settings.toolChoice, { name: 'search' });
  });

  it('refuses each invalid field by name', () => {
    assert.equal(invalidField({ maxSteps: 0 }), 'maxSteps');
    assert.equal(invalidField({ maxSteps: 1.5 }), 'maxSteps');
    assert.equal(invalidField({ maxIterations: 0 }), 'maxIterations');
    assert.equal(invalidField({ contextTokens: 255 }), 'contextTokens');
    assert.equal(invalidField({ repeatLimit: 1 }), 'repeatLimit');
    assert.equal(invalidField({ maxOutputTokens: 0 }), 'maxOutputTokens');
    assert.equal(invalidField({ system: 7 }), 'system');
    assert.equal(invalidField({ resultSchema: 'object' }), 'resultSchema');
    assert.equal(invalidField({ resultSchema: { type: 'array' } }), 'resultSchema');
    assert.equal(invalidField({ toolChoice: 'always' }), 'toolChoice');
    assert.equal(invalidField({ maxStep: 3 }), 'maxStep');
  });

  it('refuses a system prompt over 64 KiB, counted in UTF-8 bytes', () => {
    assert.equal(parseToolLoopSettings({ system: 'x'.repeat(65_536) }).system.length, 65_536);
    assert.equal(invalidField({ system: 'x'.repeat(65_537) }), 'system');
    // 22,000 three-byte characters are 66,000 bytes, though only 22,000 UTF-16 units.
    assert.equal(invalidField({ system: '€'.repeat(22_000) }), 'system');
  });
});
