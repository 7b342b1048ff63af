import { createHash, randomUUID } from 'node:crypto';
import type { Clock } from '../../platform/clock/clock.ts';
import type { ErrorCode } from '../../platform/errors/error-catalogue.ts';
import { isKeelError, KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import { canonicalJson } from '../../platform/integrity/canonical-json.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { SecretRedactor } from '../../platform/observability/secret-redactor.ts';
import type { AgentRecord } from '../../platform/storage/ports/agent-store.ts';
import type { BudgetAmounts } from '../../platform/storage/ports/budget-store.ts';
import type { JsonValue } from '../../platform/storage/ports/json-value.ts';
import type { ApprovalPolicy } from '../approvals/approval-policy.ts';
import type { ApprovalService } from '../approvals/approval-service.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { summariseParameters } from '../audit/summarise-parameters.ts';
import {
  type BudgetLedger,
  type BudgetReservation,
  scopesFor,
  toAmounts,
} from '../budgets/budget-ledger.ts';
import type { CapabilityService } from '../capabilities/capability-service.ts';
import type { AgentDirectory } from '../identity/agent-directory.ts';
import type { Verifier } from '../verifier/verifier-rule.ts';
import { describeIntent } from './describe-intent.ts';
import type { ExecutorRegistry } from './executor-registry.ts';
import type { RunJournal } from './run-journal.ts';
import {
  type CallerIdentity,
  type ExecutionContext,
  idempotencyKeyFor,
  type ParsedIntent,
  parseIntent,
  type SyscallExecutor,
  type SyscallIntent,
} from './syscall.ts';

export interface GateDependencies {
  readonly agents: AgentDirectory;
  readonly capabilities: CapabilityService;
  readonly verifier: Verifier;
  readonly budgets: BudgetLedger;
  readonly approvals: ApprovalService;
  readonly approvalPolicy: ApprovalPolicy;
  readonly journal: RunJournal;
  readonly executors: ExecutorRegistry;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Removes known secret values from errors before they leave the gate. */
  readonly redactor: SecretRedactor;
  readonly limits: { readonly maxIntentBytes: number; readonly defaultTimeoutMs: number };
}

export interface SyscallOptions {
  readonly signal?: AbortSignal;
}

/** The step of the gate that refused a call, recorded in the audit entry. */
type GateStep =
  | 'validate'
  | 'identify'
  | 'replay'
  | 'capability'
  | 'verifier'
  | 'executor'
  | 'budget'
  | 'approval'
  | 'execute';

/** A refusal on its way out of the gate: the error plus what to audit about it. */
class Refusal extends Error {
  readonly error: KeelError;
  readonly step: GateStep;

  constructor(error: KeelError, step: GateStep) {
    super(error.message);
    this.error = error;
    this.step = step;
  }
}

/**
 * The syscall gate: every effect an agent wants passes here, in this order —
 * identify → capability → verifier rules → budget reservation → approval → execute → record —
 * exactly as DESIGN.md draws it. A refusal is a typed error, audited; nothing reaches an
 * executor without passing steps 1–5. Results of calls in a durable run are journaled under
 * `(runId, seq)` before the caller sees them, and a replayed `(runId, seq)` returns the
 * recorded result instead of running again.
 *
 * @example
 * ```ts
 * const now = await kernel.gate.call({ agentId, runId, seq: 1 }, { kind: 'clock.now' });
 * ```
 */
export class Gate {
  readonly #dependencies: GateDependencies;
  /** Calls in progress per `(runId, seq)`. */
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #shutdown = new AbortController();
  #active = 0;
  #closing = false;
  #idle: (() => void) | undefined;

  constructor(dependencies: GateDependencies) {
    this.#dependencies = dependencies;
  }

  /** Runs one syscall for `identity`; resolves with the result value or rejects with a KeelError. */
  async call(
    identity: CallerIdentity,
    rawIntent: unknown,
    options: SyscallOptions = {},
  ): Promise<JsonValue> {
    if (this.#closing) {
      throw new KeelError('KEEL_SHUTTING_DOWN', 'the node is stopping and takes no new syscalls');
    }
    this.#active += 1;
    try {
      return await this.#call(identity, rawIntent, options);
    } finally {
      this.#active -= 1;
      if (this.#active === 0) this.#idle?.();
    }
  }

  /**
   * Stops taking syscalls and lets those in progress finish for up to `graceMs`; then aborts
   * them (they fail with `KEEL_SHUTTING_DOWN`, are audited, and are not journaled, so a
   * resumed run runs them again with the same idempotency key) and waits for them to end.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    const settled = (): Promise<void> =>
      this.#active === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            this.#idle = resolve;
          });
    const grace = new AbortController();
    const timer = setTimeout(() => grace.abort(), graceMs);
    try {
      await Promise.race([
        settled(),
        new Promise<void>((resolve) =>
          grace.signal.addEventListener('abort', () => resolve(), { once: true }),
        ),
      ]);
    } finally {
      clearTimeout(timer);
    }
    this.#shutdown.abort(
      new KeelError('KEEL_SHUTTING_DOWN', 'the node stopped while this syscall ran'),
    );
    await settled();
  }

  async #call(
    identity: CallerIdentity,
    rawIntent: unknown,
    options: SyscallOptions,
  ): Promise<JsonValue> {
    const { clock } = this.#dependencies;
    const started = clock.monotonic();
    let parsed: ParsedIntent | undefined;
    let agent: AgentRecord | undefined;
    try {
      try {
        parsed = parseIntent(rawIntent, this.#dependencies.limits.maxIntentBytes);
      } catch (error) {
        throw new Refusal(toKeelError(error, 'KEEL_INVALID_ARGUMENT'), 'validate');
      }
      agent = await this.#step('identify', () => this.#dependencies.agents.resolve(identity));
      if (identity.runId === undefined || identity.seq === undefined) {
        return await this.#admitAndExecute(identity, agent, parsed, started, options);
      }
      // One call per (runId, seq) at a time: a concurrent duplicate waits for the first and
      // then gets its journaled result, so the effect happens once.
      const key = `${identity.runId}\n${identity.seq}`;
      for (
        let running = this.#inFlight.get(key);
        running !== undefined;
        running = this.#inFlight.get(key)
      ) {
        await Promise.allSettled([running]);
      }
      const { promise: done, resolve: finish } = Promise.withResolvers<void>();
      this.#inFlight.set(key, done);
      try {
        const replayed = await this.#replay(identity.runId, identity.seq, parsed);
        if (replayed !== undefined) return replayed.value;
        return await this.#admitAndExecute(identity, agent, parsed, started, options);
      } finally {
        this.#inFlight.delete(key);
        finish();
      }
    } catch (error) {
      if (error instanceof Refusal) {
        const refusal = new Refusal(this.#redacted(error.error), error.step);
        await this.#recordRefusal(identity, parsed, refusal);
        throw refusal.error;
      }
      throw error;
    }
  }

  /**
   * The error without any secret the node knows: executor and rule messages can quote what an
   * upstream said (an API key in a 401 body), and this goes back to the agent, into the
   * journal and into the audit log. The cause is dropped for the same reason.
   */
  #redacted(error: KeelError): KeelError {
    const { redactor } = this.#dependencies;
    const details = JSON.stringify(error.details);
    if (
      !redactor.contains(error.message) &&
      !redactor.contains(details) &&
      !redactor.contains(error.hint)
    ) {
      return error;
    }
    return new KeelError(error.code, redactor.redact(error.message), {
      details: JSON.parse(redactor.redact(details)) as Record<string, unknown>,
      hint: redactor.redact(error.hint),
      retryable: error.retryable,
      ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
    });
  }

  async #step<T>(step: GateStep, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (error) {
      throw new Refusal(toKeelError(error), step);
    }
  }

  async #replay(
    runId: string,
    seq: number,
    parsed: ParsedIntent,
  ): Promise<{ value: JsonValue } | undefined> {
    const recorded = await this.#step('replay', () =>
      this.#dependencies.journal.lookup(runId, seq),
    );
    if (recorded === undefined) return undefined;
    if (recorded.intentDigest !== parsed.digest) {
      throw new Refusal(
        new KeelError(
          'KEEL_REPLAY_MISMATCH',
          `run ${runId} recorded a different ${recorded.kind} call at seq ${seq}`,
          {
            details: { runId, seq, recordedKind: recorded.kind },
          },
        ),
        'replay',
      );
    }
    this.#dependencies.logger.debug(
      { runId, seq, kind: recorded.kind },
      'replayed a journaled syscall',
    );
    if (recorded.outcome === 'error') throw KeelError.fromJSON(recorded.result);
    return { value: recorded.result };
  }

  async #admitAndExecute(
    identity: CallerIdentity,
    agent: AgentRecord,
    parsed: ParsedIntent,
    started: number,
    options: SyscallOptions,
  ): Promise<JsonValue> {
    const dependencies = this.#dependencies;
    const { intent } = parsed;
    const subject = describeIntent(intent);

    const decision = await this.#step('capability', () =>
      dependencies.capabilities.check(agent.id, intent),
    );
    if (!decision.allowed) {
      throw new Refusal(
        new KeelError(
          'KEEL_CAPABILITY_DENIED',
          `agent ${agent.name} may not ${subject}: ${decision.reason}`,
          {
            details: {
              kind: intent.kind,
              resource: intent.resource,
              reason: decision.reason,
              closestGrantId: decision.closestGrantId,
            },
          },
        ),
        'capability',
      );
    }

    const refusal = await this.#step('verifier', () =>
      dependencies.verifier.check(intent, {
        agent,
        runId: identity.runId,
        now: dependencies.clock.now(),
      }),
    );
    if (refusal !== undefined) {
      throw new Refusal(
        new KeelError(
          refusal.verdict.code ?? 'KEEL_POLICY_VIOLATION',
          `${subject} refused by ${refusal.ruleId}: ${refusal.verdict.reason}`,
          {
            details: { rule: refusal.ruleId, ...(refusal.verdict.details ?? {}) },
          },
        ),
        'verifier',
      );
    }

    const executor = dependencies.executors.get(intent.kind);
    if (executor === undefined) {
      throw new Refusal(
        new KeelError('KEEL_SYSCALL_UNSUPPORTED', `this node has no executor for ${intent.kind}`),
        'executor',
      );
    }
    const timeoutMs = executor.timeoutMs ?? dependencies.limits.defaultTimeoutMs;
    const estimate = await this.#step('budget', async () => {
      try {
        const estimated = executor.estimate?.(intent);
        return estimated === undefined ? undefined : toAmounts(estimated);
      } catch (error) {
        throw new KeelError(
          'KEEL_EXECUTOR_FAILED',
          `the executor for ${intent.kind} could not estimate its cost`,
          {
            cause: error,
            details: { reason: error instanceof Error ? error.message : String(error) },
          },
        );
      }
    });
    const reservation =
      estimate === undefined
        ? undefined
        : await this.#step('budget', () =>
            dependencies.budgets.reserve(
              scopesFor(agent.id, identity.runId),
              { ...estimate, wallMs: estimate.wallMs ?? timeoutMs },
              { agentId: agent.id, runId: identity.runId, subject },
            ),
          );

    let approvalId: string | null = null;
    try {
      const requirement = dependencies.approvalPolicy.empty
        ? undefined
        : dependencies.approvalPolicy.requirement(agent.trustLevel, intent);
      if (requirement !== undefined) {
        const approval = await this.#step('approval', () =>
          dependencies.approvals.authorise({
            agentId: agent.id,
            runId: identity.runId,
            seq: identity.seq,
            kind: intent.kind,
            resource: intent.resource,
            digest: approvalDigest(identity, parsed),
            summary: { params: summariseParameters(intent.params) },
            reason: requirement,
          }),
        );
        approvalId = approval.id;
      }
    } catch (error) {
      if (reservation !== undefined) await dependencies.budgets.release(reservation);
      throw error;
    }

    return this.#execute(
      identity,
      agent,
      parsed,
      {
        executor,
        started,
        timeoutMs,
        reservation,
        estimate,
        approvalId,
        grantId: decision.grantId,
      },
      options,
    );
  }

  async #execute(
    identity: CallerIdentity,
    agent: AgentRecord,
    parsed: ParsedIntent,
    admitted: {
      readonly executor: SyscallExecutor;
      readonly started: number;
      readonly timeoutMs: number;
      readonly reservation: BudgetReservation | undefined;
      readonly estimate: Partial<BudgetAmounts> | undefined;
      readonly approvalId: string | null;
      readonly grantId: string;
    },
    options: SyscallOptions,
  ): Promise<JsonValue> {
    const dependencies = this.#dependencies;
    const { intent } = parsed;
    const { executor } = admitted;
    // A timer cleared when the call ends (AbortSignal.timeout would keep every call's signal
    // and timer alive for the whole timeout, tens of thousands of them under load).
    const deadline = new AbortController();
    const timer = setTimeout(
      () =>
        deadline.abort(
          new DOMException(`the call took longer than ${admitted.timeoutMs} ms`, 'TimeoutError'),
        ),
      admitted.timeoutMs,
    );
    const timeout = deadline.signal;
    const signal = AbortSignal.any(
      options.signal === undefined
        ? [timeout, this.#shutdown.signal]
        : [options.signal, timeout, this.#shutdown.signal],
    );
    // The call's logger and idempotency key are made on first use: most executors need
    // neither, and a child logger (redaction set-up) and fresh randomness cost more than the
    // rest of a cheap syscall.
    let logger: Logger | undefined;
    let idempotencyKey: string | undefined;
    const callLogger = (): Logger => {
      logger ??= dependencies.logger.child({
        agentId: agent.id,
        runId: identity.runId,
        seq: identity.seq,
      });
      return logger;
    };
    const context: ExecutionContext = {
      agentId: agent.id,
      runId: identity.runId,
      seq: identity.seq,
      signal,
      get idempotencyKey() {
        idempotencyKey ??=
          identity.runId !== undefined && identity.seq !== undefined
            ? idempotencyKeyFor(identity.runId, identity.seq)
            : randomUUID();
        return idempotencyKey;
      },
      get logger() {
        return callLogger();
      },
    };
    const executeStarted = dependencies.clock.monotonic();

    let value: JsonValue | undefined;
    let failure: KeelError | undefined;
    let usage: Partial<BudgetAmounts> | undefined;
    try {
      if (signal.aborted) throw signal.reason;
      const execution = executor.doExecute(intent, context);
      // An executor that ignores its signal must not hold the call (or its budget) forever:
      // the gate stops waiting at the deadline and reports what the executor does later.
      const result = await untilAborted(execution, signal, (lateError) =>
        callLogger().warn(
          { err: lateError, kind: intent.kind },
          'an executor failed after its call was abandoned',
        ),
      );
      canonicalJson(result.value);
      usage = result.usage === undefined ? undefined : validUsage(result.usage, intent);
      value = result.value;
    } catch (error) {
      failure = this.#redacted(executionFailure(error, timeout, admitted.timeoutMs, intent));
    } finally {
      clearTimeout(timer);
    }
    const elapsedMs = Math.ceil(dependencies.clock.monotonic() - executeStarted);
    const code: ErrorCode | null = failure?.code ?? null;

    const writes: Promise<unknown>[] = [];
    // A call cut short by shutdown has no result to keep: a resumed run must run it again.
    const interrupted = failure?.code === 'KEEL_SHUTTING_DOWN';
    if (identity.runId !== undefined && identity.seq !== undefined && !interrupted) {
      writes.push(
        dependencies.journal.record({
          runId: identity.runId,
          seq: identity.seq,
          kind: intent.kind,
          intentDigest: parsed.digest,
          outcome: failure === undefined ? 'ok' : 'error',
          result:
            failure === undefined ? (value ?? null) : (failure.toJSON() as unknown as JsonValue),
          recordedAt: dependencies.clock.now(),
        }),
      );
    }
    writes.push(
      dependencies.audit.record({
        kind: 'syscall.allow',
        actor: `agent:${agent.id}`,
        agentId: agent.id,
        runId: identity.runId ?? null,
        subject: describeIntent(intent),
        outcome: failure === undefined ? 'ok' : 'error',
        code,
        data: {
          seq: identity.seq ?? null,
          grantId: admitted.grantId,
          approvalId: admitted.approvalId,
          digest: parsed.digest,
          params: summariseParameters(intent.params),
          durationMs: Math.ceil(dependencies.clock.monotonic() - admitted.started),
        },
      }),
    );
    if (admitted.reservation !== undefined) {
      const actual = { ...(usage ?? admitted.estimate ?? {}) };
      if (admitted.reservation.amounts.wallMs > 0) actual.wallMs = elapsedMs;
      writes.push(dependencies.budgets.settle(admitted.reservation, actual));
    }
    await Promise.all(writes);
    if (failure !== undefined) {
      callLogger().info({ kind: intent.kind, code }, 'syscall failed');
      throw failure;
    }
    return value ?? null;
  }

  async #recordRefusal(
    identity: CallerIdentity,
    parsed: ParsedIntent | undefined,
    refusal: Refusal,
  ): Promise<void> {
    const dependencies = this.#dependencies;
    const intent = parsed?.intent;
    await dependencies.audit.record({
      kind: 'syscall.deny',
      actor: `agent:${identity.agentId}`,
      agentId: identity.agentId,
      runId: identity.runId ?? null,
      subject: intent === undefined ? null : describeIntent(intent),
      outcome: 'denied',
      code: refusal.error.code,
      data: {
        seq: identity.seq ?? null,
        step: refusal.step,
        reason: refusal.error.message,
        digest: parsed?.digest ?? null,
        params: intent === undefined ? null : summariseParameters(intent.params),
        ...(refusal.error.code === 'KEEL_APPROVAL_REQUIRED'
          ? { approvalId: refusal.error.details.approvalId ?? null }
          : {}),
      },
    });
    dependencies.logger.info(
      {
        agentId: identity.agentId,
        runId: identity.runId,
        seq: identity.seq,
        code: refusal.error.code,
        step: refusal.step,
      },
      `syscall refused: ${refusal.error.message}`,
    );
  }
}

/**
 * Waits for an executor's promise or for the signal, whichever comes first. If the signal
 * wins, a later failure of the executor is passed to `onLateFailure` (never left unhandled).
 */
function untilAborted<T>(
  execution: Promise<T>,
  signal: AbortSignal,
  onLateFailure: (error: unknown) => void,
): Promise<T> {
  const { promise: aborted, reject } = Promise.withResolvers<never>();
  const onAbort = (): void => reject(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  execution.catch((error: unknown) => {
    if (signal.aborted) onLateFailure(error);
  });
  return Promise.race([execution, aborted]).finally(() =>
    signal.removeEventListener('abort', onAbort),
  );
}

/** An executor's reported usage, or a typed failure when it is not whole non-negative numbers. */
function validUsage(usage: Partial<BudgetAmounts>, intent: SyscallIntent): BudgetAmounts {
  try {
    return toAmounts(usage);
  } catch (error) {
    throw new KeelError(
      'KEEL_EXECUTOR_FAILED',
      `the executor for ${intent.kind} reported invalid usage`,
      {
        cause: error,
        details: { usage: { ...usage } },
      },
    );
  }
}

/** Binds an approval to exactly one call: the agent, the run position and the intent. */
function approvalDigest(identity: CallerIdentity, parsed: ParsedIntent): string {
  return createHash('sha256')
    .update(`${identity.agentId}\n${identity.runId ?? ''}\n${identity.seq ?? ''}\n${parsed.digest}`)
    .digest('hex');
}

function executionFailure(
  error: unknown,
  timeout: AbortSignal,
  timeoutMs: number,
  intent: SyscallIntent,
): KeelError {
  if (timeout.aborted && !isKeelError(error)) {
    return new KeelError(
      'KEEL_TIMEOUT',
      `${describeIntent(intent)} took longer than ${timeoutMs} ms`,
      { cause: error },
    );
  }
  if (isKeelError(error)) return error;
  if (error instanceof TypeError && /canonicalJson/.test(error.message)) {
    return new KeelError(
      'KEEL_EXECUTOR_FAILED',
      `the executor for ${intent.kind} returned a value that is not JSON`,
      { cause: error },
    );
  }
  const converted = toKeelError(error, 'KEEL_EXECUTOR_FAILED');
  return converted.code === 'KEEL_EXECUTOR_FAILED'
    ? new KeelError('KEEL_EXECUTOR_FAILED', `the executor for ${intent.kind} failed`, {
        cause: error,
        details: { reason: error instanceof Error ? error.message : String(error) },
      })
    : converted;
}
