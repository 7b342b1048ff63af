import { hasShellMetacharacters } from '../../capabilities/pattern-matchers.ts';
import { ALLOW, type VerifierRule } from '../verifier-rule.ts';

const MAX_COMMAND_LENGTH = 8192;

/**
 * Refuses a `command` parameter with shell metacharacters or control characters: commands run
 * without a shell, so `;`, `|`, `$(…)` and the like can only be injection attempts.
 *
 * @example
 * ```ts
 * verifier.register(commandPolicyRule);
 * ```
 */
export const commandPolicyRule: VerifierRule = {
  id: 'command-policy',
  description: 'commands are plain words: no shell metacharacters or control characters',
  appliesTo: (intent) => intent.params.command !== undefined,
  check: (intent) => {
    const command = intent.params.command;
    if (typeof command !== 'string' || command.trim().length === 0) {
      return { ok: false, reason: 'command must be a non-empty string' };
    }
    if (command.length > MAX_COMMAND_LENGTH) {
      return { ok: false, reason: `command is longer than ${MAX_COMMAND_LENGTH} characters` };
    }
    if (hasShellMetacharacters(command)) {
      return {
        ok: false,
        reason: 'command contains shell metacharacters or control characters',
        details: { command },
      };
    }
    return ALLOW;
  },
};
