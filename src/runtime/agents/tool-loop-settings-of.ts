import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';
import type { AgentManifest } from '../manifests/agent-manifest.ts';

/**
 * The tool loop's settings: the program's own, within the manifest's limits — `settings` may
 * lower `maxSteps` and `maxIterations`, never raise them (a value that is not a number is left
 * for the tool loop to refuse).
 *
 * @example
 * ```ts
 * toolLoopSettingsOf({ maxSteps: 500 }, manifest).maxSteps; // manifest.limits.maxSteps, if lower
 * ```
 */
export function toolLoopSettingsOf(own: JsonObject, manifest: AgentManifest): JsonObject {
  const within = (value: JsonValue | undefined, limit: number): JsonValue =>
    value === undefined ? limit : typeof value === 'number' ? Math.min(value, limit) : value;
  return {
    ...(manifest.models?.maxOutputTokens === undefined
      ? {}
      : { maxOutputTokens: manifest.models.maxOutputTokens }),
    ...own,
    maxSteps: within(own.maxSteps, manifest.limits.maxSteps),
    maxIterations: within(own.maxIterations, manifest.limits.maxIterations),
  };
}
