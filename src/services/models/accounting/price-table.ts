import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { KeelError } from '../../../platform/errors/keel-error.ts';

/** Prices in US dollars per million tokens, which is also micro-dollars per token. */
export interface ModelPrice {
  readonly input: number;
  readonly output: number;
}

const PriceEntrySchema = z.strictObject({
  provider: z.string().min(1).max(64).optional(),
  model: z.string().min(1).max(256),
  input: z.number().finite().nonnegative().max(100_000),
  output: z.number().finite().nonnegative().max(100_000),
  note: z.string().max(500).optional(),
});

const PriceTableSchema = z.strictObject({
  schemaVersion: z.literal(1),
  version: z.string().min(1).max(64),
  currency: z.literal('USD'),
  unit: z.literal('per million tokens'),
  source: z.string().max(500).optional(),
  prices: z.array(PriceEntrySchema).max(10_000),
});

/**
 * A versioned table of model prices. A model is priced by an entry for its provider (by the
 * provider's configured name or its kind) and model, then by an entry for the model alone,
 * then by a provider's `*` entry. A model with no entry has no price: `lookup` answers
 * `undefined` and the caller flags it; it is never priced at zero by default.
 *
 * @example
 * ```ts
 * const table = await loadPriceTable();
 * const price = table.lookup(['openai', 'openai-compatible'], 'gpt-4o-mini');
 * if (price !== undefined) table.costMicros(price, { inputTokens: 1000, outputTokens: 200 });
 * ```
 */
export class PriceTable {
  readonly version: string;
  readonly #byProviderModel = new Map<string, ModelPrice>();
  readonly #byModel = new Map<string, ModelPrice>();

  constructor(value: unknown, origin: string) {
    const result = PriceTableSchema.safeParse(value);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new KeelError(
        'KEEL_CONFIG_INVALID',
        `the price table ${origin} is not valid at ${issue?.path.join('.') || 'the top'}: ${issue?.message ?? 'invalid'}`,
        { details: { origin } },
      );
    }
    this.version = result.data.version;
    for (const entry of result.data.prices) {
      const price = Object.freeze({ input: entry.input, output: entry.output });
      if (entry.provider === undefined) {
        if (entry.model === '*') {
          throw new KeelError(
            'KEEL_CONFIG_INVALID',
            `the price table ${origin} prices every model of every provider with "*"; name a provider`,
          );
        }
        this.#byModel.set(entry.model, price);
      } else {
        this.#byProviderModel.set(`${entry.provider}\n${entry.model}`, price);
      }
    }
  }

  /** The price of `model` at the first of `providers` (names, then kinds) that prices it. */
  lookup(providers: readonly string[], model: string): ModelPrice | undefined {
    for (const provider of providers) {
      const exact = this.#byProviderModel.get(`${provider}\n${model}`);
      if (exact !== undefined) return exact;
    }
    const generic = this.#byModel.get(model);
    if (generic !== undefined) return generic;
    for (const provider of providers) {
      const wildcard = this.#byProviderModel.get(`${provider}\n*`);
      if (wildcard !== undefined) return wildcard;
    }
    return undefined;
  }

  /** Cost in micro-dollars, rounded up. */
  costMicros(
    price: ModelPrice,
    usage: { readonly inputTokens: number; readonly outputTokens: number },
  ): number {
    const exact = usage.inputTokens * price.input + usage.outputTokens * price.output;
    // Floating point makes 100 × 1.1 come out as 110.00000000000001: a result within a few
    // units in the last place of a whole number is that number, not one micro-dollar more.
    const whole = Math.round(exact);
    const noise = 8 * Number.EPSILON * Math.max(1, Math.abs(exact));
    return Math.abs(exact - whole) <= noise ? whole : Math.ceil(exact);
  }
}

/** The price table shipped with Keel. */
export const BUNDLED_PRICE_TABLE_PATH = new URL('./model-prices.json', import.meta.url);

/**
 * Reads and validates a price table file (the bundled one when no path is given).
 *
 * @example
 * ```ts
 * const table = await loadPriceTable('/etc/keel/prices.json');
 * ```
 */
export async function loadPriceTable(
  path: string | URL = BUNDLED_PRICE_TABLE_PATH,
): Promise<PriceTable> {
  const origin = String(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new KeelError('KEEL_CONFIG_INVALID', `the price table ${origin} cannot be read`, {
      cause: error,
      details: { origin },
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new KeelError('KEEL_CONFIG_INVALID', `the price table ${origin} is not JSON`, {
      cause: error,
      details: { origin },
    });
  }
  return new PriceTable(value, origin);
}
