import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { ApprovalRule } from '../../src/kernel/approvals/approval-policy.ts';
import { Kernel } from '../../src/kernel/kernel.ts';
import { MemoryEventBus } from '../../src/platform/bus/memory/memory-event-bus.ts';
import { type Clock, systemClock } from '../../src/platform/clock/clock.ts';
import { createId } from '../../src/platform/ids/create-id.ts';
import { createLogger } from '../../src/platform/observability/logger.ts';
import { SecretRedactor } from '../../src/platform/observability/secret-redactor.ts';
import type { TrustLevel } from '../../src/platform/storage/ports/agent-store.ts';
import {
  openSqliteStorage,
  type SqliteStorage,
} from '../../src/platform/storage/sqlite/sqlite-storage.ts';
import type { Storage } from '../../src/platform/storage/storage.ts';
import { temporaryDirectory } from './temporary-directory.ts';

export interface KernelHarness extends AsyncDisposable {
  readonly kernel: Kernel;
  readonly storage: SqliteStorage;
  readonly bus: MemoryEventBus;
  readonly auditKey: Uint8Array;
  readonly logLines: string[];
  /** Creates a pending run of an agent. */
  newRun(agentId: string): Promise<{ id: string }>;
  /** Registers an agent and moves it to `running`. */
  runningAgent(name?: string, trustLevel?: TrustLevel): Promise<{ id: string; name: string }>;
}

/**
 * A real kernel over a real SQLite file in a temporary directory and an in-process bus, for
 * kernel and gate tests.
 */
export async function createKernelHarness(
  options: {
    readonly approvalRules?: readonly ApprovalRule[];
    readonly clock?: Clock;
    readonly approvalTtlMs?: number;
    readonly replaceStores?: (storage: Storage) => Storage;
    readonly defaultTimeoutMs?: number;
    readonly secrets?: readonly string[];
    /** How long identity and grant caches serve an entry; default 0 (always read). */
    readonly cacheTtlMs?: number;
    readonly sweepIntervalMs?: number;
  } = {},
): Promise<KernelHarness> {
  const directory = await temporaryDirectory();
  const auditKey = randomBytes(32);
  const storage = await openSqliteStorage({ path: join(directory.path, 'keel.db'), auditKey });
  const bus = new MemoryEventBus();
  const logLines: string[] = [];
  const logger = createLogger({
    level: 'debug',
    format: 'json',
    redactor: new SecretRedactor([]),
    destination: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logLines.push(chunk.toString('utf8'));
        callback();
      },
    }),
  });
  const kernel = new Kernel({
    storage: options.replaceStores?.(storage) ?? storage,
    bus,
    clock: options.clock ?? systemClock,
    logger,
    redactor: new SecretRedactor(options.secrets ?? []),
    auditKey,
    actor: 'node:test',
    approvals: {
      ttlMs: options.approvalTtlMs ?? 60_000,
      sweepIntervalMs: options.sweepIntervalMs ?? 60_000,
      rules: options.approvalRules ?? [],
    },
    gate: { maxIntentBytes: 64 * 1024, defaultTimeoutMs: options.defaultTimeoutMs ?? 5_000 },
    cacheTtlMs: options.cacheTtlMs ?? 0,
  });
  await kernel.start();
  let counter = 0;
  return {
    kernel,
    storage,
    bus,
    auditKey,
    logLines,
    newRun(agentId) {
      return storage.runs.create({ id: createId('run'), agentId, task: {}, now: Date.now() });
    },
    async runningAgent(name, trustLevel = 'standard') {
      counter += 1;
      const agent = await kernel.agents.register(
        { name: name ?? `agent-${counter}`, trustLevel },
        'operator:test',
      );
      await kernel.agents.setState(agent.id, 'running');
      return { id: agent.id, name: agent.name };
    },
    async [Symbol.asyncDispose]() {
      await kernel.close();
      await bus.close();
      await storage.close();
      await directory[Symbol.asyncDispose]();
    },
  };
}
