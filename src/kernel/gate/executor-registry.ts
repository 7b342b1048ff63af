import { KeelError } from '../../platform/errors/keel-error.ts';
import { SYSCALL_KIND_PATTERN } from '../capabilities/capability-grant.ts';
import type { SyscallExecutor } from './syscall.ts';

/**
 * The executors of this node, one per syscall kind, registered at boot by the composition
 * root. The kernel knows that an executor exists for a kind, not how it works.
 *
 * @example
 * ```ts
 * registry.register(clockExecutor);
 * registry.get('clock.now');
 * ```
 */
export class ExecutorRegistry {
  readonly #executors = new Map<string, SyscallExecutor>();

  register(executor: SyscallExecutor): void {
    if (executor.specificationVersion !== 'v1') {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `executor for ${executor.kind} implements an unknown specification`,
      );
    }
    if (!SYSCALL_KIND_PATTERN.test(executor.kind)) {
      throw new KeelError('KEEL_INVALID_ARGUMENT', `${executor.kind} is not a valid syscall kind`);
    }
    if (this.#executors.has(executor.kind)) {
      throw new KeelError(
        'KEEL_CONFLICT',
        `an executor for ${executor.kind} is already registered`,
      );
    }
    this.#executors.set(executor.kind, executor);
  }

  get(kind: string): SyscallExecutor | undefined {
    return this.#executors.get(kind);
  }

  kinds(): string[] {
    return [...this.#executors.keys()].sort();
  }
}
