import type { EventBus } from '../platform/bus/event-bus.ts';
import type { Clock } from '../platform/clock/clock.ts';
import type { Logger } from '../platform/observability/logger.ts';
import type { SecretRedactor } from '../platform/observability/secret-redactor.ts';
import type { RunRecord } from '../platform/storage/ports/run-store.ts';
import type { Storage } from '../platform/storage/storage.ts';
import { ApprovalPolicy, type ApprovalRule } from './approvals/approval-policy.ts';
import { ApprovalService } from './approvals/approval-service.ts';
import { AuditLog } from './audit/audit-log.ts';
import { BudgetLedger, DEFAULT_LEASE_CALLS } from './budgets/budget-ledger.ts';
import { CapabilityService } from './capabilities/capability-service.ts';
import { ExecutorRegistry } from './gate/executor-registry.ts';
import { Gate } from './gate/gate.ts';
import { RunJournal } from './gate/run-journal.ts';
import type { SyscallExecutor } from './gate/syscall.ts';
import { AgentDirectory } from './identity/agent-directory.ts';
import { commandPolicyRule } from './verifier/rules/command-policy-rule.ts';
import { pathPolicyRule } from './verifier/rules/path-policy-rule.ts';
import { urlPolicyRule } from './verifier/rules/url-policy-rule.ts';
import { Verifier } from './verifier/verifier-rule.ts';

export interface KernelOptions {
  readonly storage: Storage;
  readonly bus: EventBus;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Knows the node's secret values; errors are redacted with it before leaving the gate. */
  readonly redactor: SecretRedactor;
  readonly auditKey: Uint8Array;
  /** Who the kernel itself acts as in audit entries, e.g. `node:keel`. */
  readonly actor: string;
  readonly approvals: {
    readonly ttlMs: number;
    readonly sweepIntervalMs: number;
    readonly rules: readonly ApprovalRule[];
  };
  readonly gate: {
    readonly maxIntentBytes: number;
    readonly defaultTimeoutMs: number;
    /** Calls a budget lease covers; 1 reserves each call on its own (default 8). */
    readonly budgetLeaseCalls?: number;
  };
  /** How long identity and grant caches may serve an entry; default 1 s. */
  readonly cacheTtlMs?: number;
}

/**
 * The kernel: the gate and everything it consults — identities, capabilities, verifier rules,
 * budgets, approvals, the audit log — wired over the storage and bus ports. Services register
 * their executors here at boot; operators act through its services, each action audited.
 *
 * @example
 * ```ts
 * const kernel = new Kernel({ storage, bus, clock, logger, redactor, auditKey, actor: 'node:keel', approvals, gate });
 * kernel.registerExecutor(clockExecutor);
 * await kernel.start();
 * ```
 */
export class Kernel {
  readonly gate: Gate;
  readonly audit: AuditLog;
  readonly agents: AgentDirectory;
  readonly capabilities: CapabilityService;
  readonly budgets: BudgetLedger;
  readonly approvals: ApprovalService;
  readonly verifier: Verifier;
  readonly executors: ExecutorRegistry;
  /** Which calls need a human: the configured rules, then services' own (see `addSource`). */
  readonly approvalPolicy: ApprovalPolicy;
  readonly #journal: RunJournal;
  readonly #logger: Logger;
  readonly #actor: string;
  readonly #sweepIntervalMs: number;
  #sweeper: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  #started = false;

  constructor(options: KernelOptions) {
    const { storage, bus, clock } = options;
    this.#logger = options.logger.child({ component: 'kernel' });
    this.#actor = options.actor;
    this.#sweepIntervalMs = options.approvals.sweepIntervalMs;
    this.audit = new AuditLog(storage.audit, clock, options.auditKey);
    const cacheTtlMs = options.cacheTtlMs ?? 1_000;
    this.agents = new AgentDirectory({
      agents: storage.agents,
      runs: storage.runs,
      audit: this.audit,
      clock,
      cacheTtlMs,
    });
    this.capabilities = new CapabilityService({
      store: storage.grants,
      audit: this.audit,
      clock,
      logger: this.#logger,
      cacheTtlMs,
    });
    this.budgets = new BudgetLedger(storage.budgets, this.audit, clock, {
      leaseCalls: options.gate.budgetLeaseCalls ?? DEFAULT_LEASE_CALLS,
      logger: this.#logger,
    });
    this.approvals = new ApprovalService({
      store: storage.approvals,
      audit: this.audit,
      bus,
      clock,
      ttlMs: options.approvals.ttlMs,
    });
    this.verifier = new Verifier();
    for (const rule of [pathPolicyRule, commandPolicyRule, urlPolicyRule])
      this.verifier.register(rule);
    this.executors = new ExecutorRegistry();
    this.approvalPolicy = new ApprovalPolicy(options.approvals.rules);
    this.#journal = new RunJournal(storage.runs);
    this.gate = new Gate({
      agents: this.agents,
      capabilities: this.capabilities,
      verifier: this.verifier,
      budgets: this.budgets,
      approvals: this.approvals,
      approvalPolicy: this.approvalPolicy,
      journal: this.#journal,
      executors: this.executors,
      audit: this.audit,
      usage: storage.usage,
      clock,
      logger: options.logger.child({ component: 'gate' }),
      redactor: options.redactor,
      limits: options.gate,
    });
  }

  /**
   * A run's attempt is starting, and storage has just answered its record and its journal's
   * head: the gate keeps both, so that the run's first call reads neither again.
   */
  runStarted(run: RunRecord, journalHead: number): void {
    this.agents.noteRun(run);
    this.#journal.noteHead(run.id, journalHead);
    this.#journal.attemptStarted(run.id);
  }

  /**
   * A run that has used all its attempts is replayed once more, answered only from its
   * journal: a call the journal does not hold is refused with `KEEL_RUN_ATTEMPTS_EXHAUSTED`,
   * also after the replay, until a counted attempt of the run starts.
   */
  lastReplayStarted(run: RunRecord, journalHead: number): void {
    this.agents.noteRun(run);
    this.#journal.noteHead(run.id, journalHead);
    this.#journal.startLastReplay(run.id, journalHead);
  }

  /**
   * A run's last replay is over (its worker reported its end, or crashed): whether it asked
   * for a call its journal does not hold, or one that differs from it; `undefined` if it was
   * not on its last replay (or this was asked already).
   */
  lastReplayEnded(runId: string): boolean | undefined {
    return this.#journal.endLastReplay(runId);
  }

  /** A run has ended: its next call reads its record again, and is refused. */
  runEnded(runId: string): void {
    this.agents.forgetRun(runId);
  }

  registerExecutor(executor: SyscallExecutor): void {
    this.executors.register(executor);
  }

  /** Settles budgets a crash left open and starts expiring approvals. */
  async start(): Promise<void> {
    if (this.#started) return;
    await this.audit.assertKeyMatches();
    this.#started = true;
    const reconciled = await this.budgets.reconcile(this.#actor);
    if (reconciled > 0) {
      this.#logger.warn(
        { reservations: reconciled },
        'charged budget reservations left open by an earlier crash',
      );
    }
    await this.approvals.expireDue();
    this.#sweeper = setInterval(() => this.#sweep(), this.#sweepIntervalMs);
    this.#sweeper.unref();
  }

  #sweep(): void {
    if (this.#sweeping !== undefined) return;
    this.#sweeping = this.approvals
      .expireDue()
      .then(() => undefined)
      .catch((error: unknown) =>
        this.#logger.error({ err: error }, 'expiring approvals failed; will retry'),
      )
      .finally(() => {
        this.#sweeping = undefined;
      });
  }

  get ready(): boolean {
    return this.#started && this.#sweeper !== undefined;
  }

  /**
   * Stops taking syscalls (those in progress get `graceMs` to finish, default 10 s), hands
   * budget leases back, then stops the approval sweeper.
   */
  async close(graceMs = 10_000): Promise<void> {
    await this.gate.close(graceMs);
    await this.budgets.handBackLeases();
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    await this.#sweeping;
  }
}
