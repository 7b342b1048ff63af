import { normaliseIntentPath } from '../../capabilities/pattern-matchers.ts';
import type { SyscallIntent } from '../../gate/syscall.ts';
import { ALLOW, type VerifierRule } from '../verifier-rule.ts';

function pathsOf(intent: SyscallIntent): unknown[] {
  const values: unknown[] = [];
  if (intent.params.path !== undefined) values.push(intent.params.path);
  if (Array.isArray(intent.params.paths)) values.push(...intent.params.paths);
  return values;
}

/**
 * Refuses any `path`/`paths` parameter that escapes with `..`, is absolute, contains NUL or is
 * not a string: tools resolve paths inside the agent's workspace, never outside it.
 *
 * @example
 * ```ts
 * verifier.register(pathPolicyRule);
 * ```
 */
export const pathPolicyRule: VerifierRule = {
  id: 'path-policy',
  description: 'paths stay inside the workspace: relative, no .., no NUL',
  appliesTo: (intent) => intent.params.path !== undefined || intent.params.paths !== undefined,
  check: (intent) => {
    if (intent.params.paths !== undefined && !Array.isArray(intent.params.paths)) {
      return { ok: false, reason: 'paths must be a list of strings' };
    }
    for (const value of pathsOf(intent)) {
      if (typeof value !== 'string') return { ok: false, reason: 'a path must be a string' };
      if (value.startsWith('/')) {
        return {
          ok: false,
          reason: `absolute path ${value} is not allowed; use a workspace-relative path`,
          details: { path: value },
        };
      }
      if (normaliseIntentPath(value) === undefined) {
        return {
          ok: false,
          reason: `path ${JSON.stringify(value)} escapes the workspace or is malformed`,
          details: { path: value },
        };
      }
    }
    return ALLOW;
  },
};
