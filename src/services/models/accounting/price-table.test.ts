import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { rejectsWithCode, throwsWithCode } from '../../../../test/support/assertions.ts';
import { temporaryDirectory } from '../../../../test/support/temporary-directory.ts';
import { loadPriceTable, PriceTable } from './price-table.ts';

function table(prices: unknown[], overrides: Record<string, unknown> = {}): unknown {
  return {
    schemaVersion: 1,
    version: 'test',
    currency: 'USD',
    unit: 'per million tokens',
    prices,
    ...overrides,
  };
}

describe('price table', () => {
  let bundled: PriceTable;

  before(async () => {
    bundled = await loadPriceTable();
  });

  it('loads the bundled table and prices gpt-4o-mini at its USD per million tokens', () => {
    assert.equal(bundled.version, '2026-11-01');
    const price = bundled.lookup(['openai', 'openai-compatible'], 'gpt-4o-mini');
    assert.deepEqual(price, { input: 0.15, output: 0.6 });
    assert.ok(price !== undefined);
    // Micro-dollars are tokens × USD per million tokens.
    assert.equal(bundled.costMicros(price, { inputTokens: 1_000_000, outputTokens: 0 }), 150_000);
    assert.equal(bundled.costMicros(price, { inputTokens: 1_000, outputTokens: 200 }), 270);
  });

  it('rounds a cost up to the next micro-dollar, and never past an exact one', () => {
    const price = bundled.lookup(['openai'], 'o4-mini');
    assert.deepEqual(price, { input: 1.1, output: 4.4 });
    assert.ok(price !== undefined);
    assert.equal(bundled.costMicros(price, { inputTokens: 1, outputTokens: 0 }), 2);
    // 100 × 1.1 is 110.00000000000001 in floating point; the cost is still 110.
    assert.equal(bundled.costMicros(price, { inputTokens: 100, outputTokens: 0 }), 110);
    assert.equal(bundled.costMicros(price, { inputTokens: 7, outputTokens: 7 }), 39);
  });

  it('prefers an entry for the provider over one for the model alone', () => {
    const prices = new PriceTable(
      table([
        { model: 'llama-3.3-70b', input: 0.6, output: 0.6 },
        { provider: 'groq', model: 'llama-3.3-70b', input: 0.59, output: 0.79 },
      ]),
      'test',
    );
    assert.deepEqual(prices.lookup(['groq', 'openai-compatible'], 'llama-3.3-70b'), {
      input: 0.59,
      output: 0.79,
    });
    assert.deepEqual(prices.lookup(['together', 'openai-compatible'], 'llama-3.3-70b'), {
      input: 0.6,
      output: 0.6,
    });
    // By configured name first, then by kind.
    const byKind = new PriceTable(
      table([
        { provider: 'openai-compatible', model: 'm', input: 1, output: 1 },
        { provider: 'mine', model: 'm', input: 2, output: 2 },
      ]),
      'test',
    );
    assert.deepEqual(byKind.lookup(['mine', 'openai-compatible'], 'm'), { input: 2, output: 2 });
    assert.deepEqual(byKind.lookup(['other', 'openai-compatible'], 'm'), { input: 1, output: 1 });
  });

  it('prices any model of an ollama provider at zero through its explicit * entry', () => {
    const price = bundled.lookup(['local', 'ollama'], 'qwen3:8b');
    assert.deepEqual(price, { input: 0, output: 0 });
    assert.ok(price !== undefined);
    assert.equal(bundled.costMicros(price, { inputTokens: 50_000, outputTokens: 9_000 }), 0);
    // A named model keeps its price even at a provider with a * entry.
    assert.deepEqual(bundled.lookup(['ollama'], 'gpt-4o-mini'), { input: 0.15, output: 0.6 });
  });

  it('answers undefined, not zero, for a model it does not know', () => {
    assert.equal(bundled.lookup(['openai', 'openai-compatible'], 'qwen3:8b'), undefined);
    assert.equal(bundled.lookup(['anthropic'], 'claude-unreleased'), undefined);
    assert.equal(bundled.lookup([], 'gpt-9'), undefined);
  });

  it('refuses invalid tables with KEEL_CONFIG_INVALID', async () => {
    const valid = { model: 'm', input: 1, output: 1 };
    for (const value of [
      table([{ model: 'm', input: -1, output: 1 }]),
      table([{ ...valid, colour: 'red' }]),
      table([valid], { extra: true }),
      table([{ model: '*', input: 0, output: 0 }]),
      table([valid], { currency: 'EUR' }),
      table([valid], { schemaVersion: 2 }),
      table([{ model: 'm', input: Number.NaN, output: 1 }]),
      [],
    ]) {
      throwsWithCode(() => new PriceTable(value, 'test'), 'KEEL_CONFIG_INVALID');
    }

    await using directory = await temporaryDirectory('keel-prices-');
    const broken = join(directory.path, 'prices.json');
    await writeFile(broken, '{"schemaVersion": 1, "prices": [');
    await rejectsWithCode(loadPriceTable(broken), 'KEEL_CONFIG_INVALID');
    await rejectsWithCode(
      loadPriceTable(join(directory.path, 'absent.json')),
      'KEEL_CONFIG_INVALID',
    );
    const good = join(directory.path, 'good.json');
    await writeFile(good, JSON.stringify(table([valid])));
    assert.deepEqual((await loadPriceTable(good)).lookup(['any'], 'm'), { input: 1, output: 1 });
  });
});
