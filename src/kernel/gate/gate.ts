import { createHash } from 'node:crypto';
import { followAbort } from '../../platform/clock/abort-link.ts';
import type { Clock } from '../../platform/clock/clock.ts';
import type { ErrorCode } from '../../platform/errors/error-catalogue.ts';
import { isKeelError, KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import { createId } from '../../platform/ids/create-id.ts';
import { assertCanonicalJson } from '../../platform/integrity/canonical-json.ts';
import type { Logger } from '../../platform/observability/logger.ts';
import type { SecretRedactor } from '../../platform/observability/secret-redactor.ts';
import type { AgentRecord } from '../../platform/storage/ports/agent-store.ts';
import type { BudgetAmounts } from '../../platform/storage/ports/budget-store.ts';
import {
  type JsonObject,
  type JsonValue,
  jsonFits,
  MAX_STORED_JSON_BYTES,
  storableError,
} from '../../platform/storage/ports/json-value.ts';
import type { UsageStore } from '../../platform/storage/ports/usage-store.ts';
import { approvalDigest } from '../approvals/approval-digest.ts';
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
import { CallTracker } from './call-tracker.ts';
import { describeIntent } from './describe-intent.ts';
import { createExecutionContext } from './execution-context.ts';
import { executionFailure, untilAborted, validUsage } from './execution-outcome.ts';
import type { ExecutorRegistry } from './executor-registry.ts';
import { type GateStep, Refusal } from './refusal.ts';
import type { RunJournal } from './run-journal.ts';
import {
  type ApprovalSubject,
  type CallerIdentity,
  type ParsedIntent,
  parseIntent,
  type SyscallExecutor,
  type SyscallIntent,
  type UsageAccounting,
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
  /** Model usage records; written in the same commit as the journal and audit entries. */
  readonly usage: UsageStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Removes known secret values from errors before they leave the gate. */
  readonly redactor: SecretRedactor;
  readonly limits: { readonly maxIntentBytes: number; readonly defaultTimeoutMs: number };
}

export interface SyscallOptions {
  readonly signal?: AbortSignal;
  /** Receives the executor's progress events (streamed deltas); they are not journaled. */
  readonly onProgress?: (event: JsonValue) => void;
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
  readonly #calls = new CallTracker();

  constructor(dependencies: GateDependencies) {
    this.#dependencies = dependencies;
  }

  /** Runs one syscall for `identity`; resolves with the result value or rejects with a KeelError. */
  call(
    identity: CallerIdentity,
    rawIntent: unknown,
    options: SyscallOptions = {},
  ): Promise<JsonValue> {
    return this.#calls.track(() => this.#call(identity, rawIntent, options));
  }

  /**
   * Stops taking syscalls and lets those in progress finish for up to `graceMs`; then aborts
   * them (they fail with `KEEL_SHUTTING_DOWN`, are audited, and are not journaled, so a
   * resumed run runs them again with the same idempotency key) and waits for them to end.
   */
  close(graceMs: number): Promise<void> {
    return this.#calls.close(graceMs);
  }

  async #call(
    identity: CallerIdentity,
    rawIntent: unknown,
    options: SyscallOptions,
  ): Promise<JsonValue> {
    const { clock } = this.#dependencies;
    const started = clock.monotonic();
    if (identity.runId !== undefined && identity.seq !== undefined) {
      // Before anything awaits: a run's end reported right after this call comes second.
      this.#dependencies.journal.noteCall(identity.runId, identity.seq);
    }
    let parsed: ParsedIntent | undefined;
    try {
      const intent = this.#validate(rawIntent);
      parsed = intent;
      const agent = await this.#step('identify', () => this.#dependencies.agents.resolve(identity));
      const { runId, seq } = identity;
      if (runId === undefined || seq === undefined) {
        return await this.#admitAndExecute(identity, agent, intent, started, options);
      }
      // One call per (runId, seq) at a time: a concurrent duplicate waits for the first and
      // then gets its journaled result, so the effect happens once.
      return await this.#calls.exclusive(`${runId}\n${seq}`, async () => {
        const replayed = await this.#replay(runId, seq, intent);
        if (replayed !== undefined) return replayed.value;
        if (this.#dependencies.journal.refusesNewCalls(runId)) {
          throw new Refusal(
            new KeelError(
              'KEEL_RUN_ATTEMPTS_EXHAUSTED',
              `run ${runId} has used all its attempts: only calls its journal holds are answered`,
              { details: { runId, seq } },
            ),
            'replay',
          );
        }
        return this.#admitAndExecute(identity, agent, intent, started, options);
      });
    } catch (error) {
      if (error instanceof Refusal) {
        const refusal = new Refusal(
          this.#dependencies.redactor.redactError(error.error),
          error.step,
        );
        await this.#recordRefusal(identity, parsed, refusal);
        throw refusal.error;
      }
      throw error;
    }
  }

  #validate(rawIntent: unknown): ParsedIntent {
    try {
      return parseIntent(rawIntent, this.#dependencies.limits.maxIntentBytes);
    } catch (error) {
      throw new Refusal(toKeelError(error, 'KEEL_INVALID_ARGUMENT'), 'validate');
    }
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
      this.#dependencies.journal.noteDivergence(runId);
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
    let admitted = await this.#admit(identity, agent, parsed);

    let approvalId: string | null = null;
    let edits: JsonObject | null = null;
    try {
      const requirement = dependencies.approvalPolicy.concerns(intent.kind)
        ? await dependencies.approvalPolicy.requirementFor({
            agentId: agent.id,
            trustLevel: agent.trustLevel,
            runId: identity.runId,
            intent,
          })
        : undefined;
      if (requirement !== undefined) {
        const subject = await this.#approvalSubject(identity, admitted.executor, parsed);
        const digest = approvalDigest({ ...identity, seq: subject.seq }, subject.digest);
        // One at a time per approval: two forms of one call (they have different seqs, so
        // different call locks) asking together create one pending approval, not two.
        const approval = await this.#calls.exclusive(`approval\n${digest}`, () =>
          this.#step('approval', () =>
            dependencies.approvals.authorise({
              agentId: agent.id,
              runId: identity.runId,
              seq: subject.seq,
              kind: intent.kind,
              resource: intent.resource,
              digest,
              // What the approver is shown: bounded, and without any secret the node knows.
              summary: { params: this.#summaryOf(intent) },
              reason: requirement,
            }),
          ),
        );
        approvalId = approval.id;
        edits = approval.paramEdits;
      }
    } catch (error) {
      if (admitted.reservation !== undefined)
        await dependencies.budgets.release(admitted.reservation);
      throw error;
    }

    let executed = intent;
    if (edits !== null) {
      // Edit-then-approve: the operator's parameters replace the agent's, and the edited call
      // passes the capability, rules and budget on its own; the approval stands for both.
      if (admitted.reservation !== undefined)
        await dependencies.budgets.release(admitted.reservation);
      const editedParsed = this.#validate({ ...intent, params: { ...intent.params, ...edits } });
      executed = editedParsed.intent;
      admitted = await this.#admit(identity, agent, editedParsed);
    } else if (approvalId !== null) {
      // The world may have changed while the call waited for a human (a robot's path, an
      // e-stop): the rules judge it again, just before it runs.
      try {
        await this.#verify(identity, agent, intent);
      } catch (error) {
        if (admitted.reservation !== undefined)
          await dependencies.budgets.release(admitted.reservation);
        throw error;
      }
    }

    return this.#execute(
      identity,
      agent,
      parsed,
      { ...admitted, intent: executed, started, approvalId },
      options,
    );
  }

  /** The verifier rules (step 3); a refusal throws. */
  async #verify(
    identity: CallerIdentity,
    agent: AgentRecord,
    intent: SyscallIntent,
  ): Promise<void> {
    const dependencies = this.#dependencies;
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
          `${describeIntent(intent)} refused by ${refusal.ruleId}: ${refusal.verdict.reason}`,
          {
            details: { rule: refusal.ruleId, ...(refusal.verdict.details ?? {}) },
          },
        ),
        'verifier',
      );
    }
  }

  /**
   * What an approval of the call is bound to: its executor's subject if it names one, under the
   * call's kind and resource (so no subject can stand for another kind's or resource's call),
   * else the intent. A call standing in for another `seq` of its run may name only an earlier
   * one that has not run (nothing in the journal): the approval and its audit then point at
   * the call the human was asked about.
   */
  async #approvalSubject(
    identity: CallerIdentity,
    executor: SyscallExecutor,
    parsed: ParsedIntent,
  ): Promise<{ readonly digest: string; readonly seq: number | undefined }> {
    if (executor.approvalSubject === undefined) {
      return { digest: parsed.digest, seq: identity.seq };
    }
    const { kind, resource } = parsed.intent;
    let subject: ApprovalSubject;
    try {
      subject = executor.approvalSubject(parsed.intent, identity);
    } catch (error) {
      throw new Refusal(toKeelError(error, 'KEEL_INVALID_ARGUMENT'), 'approval');
    }
    const digest = createHash('sha256')
      .update(`${kind}\n${resource}\n${subject.digest}`)
      .digest('hex');
    const standsFor = subject.seq;
    if (standsFor === undefined || standsFor === identity.seq) {
      return { digest, seq: identity.seq };
    }
    const refuse = (why: string): never => {
      throw new Refusal(
        new KeelError(
          'KEEL_INVALID_ARGUMENT',
          `${kind} may stand in only for an earlier call of its run that has not run: ${why}`,
          { details: { seq: standsFor } },
        ),
        'approval',
      );
    };
    const { runId, seq } = identity;
    if (runId === undefined || seq === undefined) return refuse('this call is not in a run');
    if (!Number.isSafeInteger(standsFor) || standsFor < 1 || standsFor >= seq) {
      return refuse(`seq ${standsFor} does not come before ${seq}`);
    }
    const recorded = await this.#step('approval', () =>
      this.#dependencies.journal.lookup(runId, standsFor),
    );
    if (recorded !== undefined) return refuse(`seq ${standsFor} ran`);
    return { digest, seq: standsFor };
  }

  /** Capability, verifier rules, executor and budget: every step before the approval. */
  async #admit(
    identity: CallerIdentity,
    agent: AgentRecord,
    parsed: ParsedIntent,
  ): Promise<{
    readonly executor: SyscallExecutor;
    readonly timeoutMs: number;
    readonly reservation: BudgetReservation | undefined;
    readonly estimate: Partial<BudgetAmounts> | undefined;
    readonly grantId: string;
  }> {
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

    await this.#verify(identity, agent, intent);

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
        const estimated = executor.estimate?.(intent, {
          caller: identity,
          intentBytes: parsed.bytes,
          maxIntentBytes: dependencies.limits.maxIntentBytes,
        });
        // Wall time defaults to the timeout: the most a call can take.
        return estimated === undefined ? undefined : toAmounts({ wallMs: timeoutMs, ...estimated });
      } catch (error) {
        // An executor that can say why (an unknown model, invalid arguments) says so.
        if (isKeelError(error)) throw error;
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
            dependencies.budgets.reserve(scopesFor(agent.id, identity.runId), estimate),
          );
    return { executor, timeoutMs, reservation, estimate, grantId: decision.grantId };
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
      /** The call that runs: the agent's, or the approver's edit of it. */
      readonly intent: SyscallIntent;
    },
    options: SyscallOptions,
  ): Promise<JsonValue> {
    const dependencies = this.#dependencies;
    const { intent, executor } = admitted;
    const edited = intent !== parsed.intent;
    // One controller for the caller's abort, the deadline and shutdown, and a timer cleared
    // when the call ends: AbortSignal.timeout would keep every call's signal and timer alive
    // for the whole timeout, and AbortSignal.any (or a listener per source) costs weak
    // references, finalizers and listener records on every call.
    const call = new AbortController();
    const signal = call.signal;
    const { promise: aborted, reject: rejectAborted } = Promise.withResolvers<never>();
    // Raced below, unless the call is refused before it runs: never an unhandled rejection.
    aborted.catch(() => undefined);
    const abort = (reason: unknown): void => {
      if (signal.aborted) return;
      call.abort(reason);
      rejectAborted(reason);
    };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort(new DOMException(`the call took longer than ${admitted.timeoutMs} ms`, 'TimeoutError'));
    }, admitted.timeoutMs);
    const unfollowShutdown = this.#calls.onShutdown(abort);
    const unfollowCaller =
      options.signal === undefined ? undefined : followAbort(options.signal, abort);
    const context = createExecutionContext(
      identity,
      agent.id,
      signal,
      dependencies.logger,
      options.onProgress,
      edited,
    );
    const executeStarted = dependencies.clock.monotonic();

    // A durable run's calls: their results are journaled before the agent sees them.
    const journaled = identity.runId !== undefined && identity.seq !== undefined;
    let value: JsonValue | undefined;
    let failure: KeelError | undefined;
    let usage: Partial<BudgetAmounts> | undefined;
    let accounting: UsageAccounting | undefined;
    let effect: JsonObject | undefined;
    try {
      if (signal.aborted) throw signal.reason;
      const execution = executor.doExecute(intent, context);
      // An executor that ignores its signal must not hold the call (or its budget) forever:
      // the gate stops waiting at the deadline and reports what the executor does later.
      const result = await untilAborted(execution, aborted, signal, (lateError) =>
        context.logger.warn(
          { err: lateError, kind: intent.kind },
          'an executor failed after its call was abandoned',
        ),
      );
      // What was consumed is kept even if the value then proves not to be JSON.
      accounting = result.accounting;
      effect = result.effect;
      usage = result.usage === undefined ? undefined : validUsage(result.usage, intent);
      assertCanonicalJson(result.value);
      // A durable run's journal keeps the result, or the agent would not see it; one it cannot
      // keep is this call's error, kept instead, so a replay answers the same and the effect
      // stays once.
      if (journaled && !jsonFits(result.value, MAX_STORED_JSON_BYTES)) {
        throw new KeelError(
          'KEEL_PAYLOAD_TOO_LARGE',
          `the result of ${describeIntent(intent)} is larger than the ${MAX_STORED_JSON_BYTES} bytes a run's journal keeps`,
          {
            details: { limit: MAX_STORED_JSON_BYTES },
            hint: 'have the call return less: a summary, a page of it, or where the full output was written',
          },
        );
      }
      value = result.value;
    } catch (error) {
      failure = this.#dependencies.redactor.redactError(
        executionFailure(error, timedOut, admitted.timeoutMs, intent),
      );
    } finally {
      clearTimeout(timer);
      unfollowShutdown();
      unfollowCaller?.();
    }
    // What the executor reported along the way stands when it returned none (or failed):
    // a stream cut after some output still consumed it.
    const reported = context.reported;
    if (reported !== undefined) {
      if (usage === undefined) {
        try {
          usage = validUsage(reported.usage, intent);
        } catch (error) {
          failure ??= this.#dependencies.redactor.redactError(toKeelError(error));
        }
      }
      accounting ??= reported.accounting;
    }
    // Likewise an error too large to keep: the agent and a replay get it cut, alike.
    if (failure !== undefined && journaled) failure = storableError(failure);
    const elapsedMs = Math.ceil(dependencies.clock.monotonic() - executeStarted);
    const code: ErrorCode | null = failure?.code ?? null;

    const writes: Promise<unknown>[] = [];
    // A call cut short by shutdown has no result to keep: a resumed run must run it again.
    const interrupted = failure?.code === 'KEEL_SHUTTING_DOWN';
    if (journaled && !interrupted) {
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
          params: this.#summaryOf(intent),
          ...(edited
            ? { editedByApprover: true, agentParams: this.#summaryOf(parsed.intent) }
            : {}),
          durationMs: Math.ceil(dependencies.clock.monotonic() - admitted.started),
          ...(effect === undefined ? {} : { effect }),
        },
      }),
    );
    if (accounting !== undefined) {
      writes.push(
        dependencies.usage.record({
          id: createId('use'),
          ts: dependencies.clock.now(),
          agentId: agent.id,
          runId: identity.runId ?? null,
          kind: intent.kind,
          model: accounting.model,
          provider: accounting.provider,
          inputTokens: accounting.inputTokens,
          outputTokens: accounting.outputTokens,
          costMicros: accounting.costMicros,
        }),
      );
    }
    if (admitted.reservation !== undefined) {
      const actual = { ...(usage ?? admitted.estimate ?? {}) };
      if (admitted.reservation.amounts.wallMs > 0) actual.wallMs = elapsedMs;
      writes.push(dependencies.budgets.settle(admitted.reservation, actual));
    }
    await Promise.all(writes);
    if (failure !== undefined) {
      context.logger.info({ kind: intent.kind, code }, 'syscall failed');
      throw failure;
    }
    return value ?? null;
  }

  /**
   * The parameters an audit entry or an approver sees: the executor's own summary when it
   * gives one (see `SyscallExecutor.summarise`), else the parameters; bounded alike, and
   * without any secret the node knows (a tool's output in a conversation may quote one).
   */
  #summaryOf(intent: SyscallIntent): JsonObject {
    const { redactor, executors, logger } = this.#dependencies;
    const executor = executors.get(intent.kind);
    if (executor?.summarise !== undefined) {
      try {
        return redactor.redactJson(summariseParameters(executor.summarise(intent)));
      } catch (error) {
        logger.warn(
          { err: error, kind: intent.kind },
          'an executor could not summarise an intent; its parameters are recorded instead',
        );
      }
    }
    return redactor.redactJson(summariseParameters(intent.params));
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
        params: intent === undefined ? null : this.#summaryOf(intent),
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
