import type { z } from 'zod';
import { KeelError } from '../../../platform/errors/keel-error.ts';

/**
 * Validates a provider's answer against its wire schema; a mismatch is
 * `KEEL_PROVIDER_PROTOCOL` naming the first bad field.
 *
 * @example
 * ```ts
 * const completion = parseProtocol('openai', CompletionSchema, body, 'chat completion');
 * ```
 */
export function parseProtocol<Schema extends z.ZodType>(
  providerId: string,
  schema: Schema,
  value: unknown,
  what: string,
): z.output<Schema> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') || 'body';
  throw new KeelError(
    'KEEL_PROVIDER_PROTOCOL',
    `provider ${providerId} sent a ${what} that does not match its protocol at ${field}: ${issue?.message ?? 'invalid'}`,
    { details: { provider: providerId, field } },
  );
}

/**
 * Parses JSON text from a provider, or throws `KEEL_PROVIDER_PROTOCOL` with an excerpt.
 *
 * @example
 * ```ts
 * const chunk = parseProviderJson('openai', event.data, 'stream event');
 * ```
 */
export function parseProviderJson(providerId: string, text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new KeelError(
      'KEEL_PROVIDER_PROTOCOL',
      `provider ${providerId} sent a ${what} that is not JSON`,
      {
        cause: error,
        details: { provider: providerId, excerpt: text.slice(0, 120) },
      },
    );
  }
}
