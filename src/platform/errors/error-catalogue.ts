/**
 * The one catalogue of Keel's error codes. Every error that crosses a boundary (HTTP, IPC,
 * CLI, a syscall result) carries one of these codes; callers branch on `code` and
 * `retryable`, never on the message. `docs/errors.md` is generated from this table and a test
 * keeps the two in agreement.
 *
 * @example
 * ```ts
 * const entry = ERROR_CATALOGUE.KEEL_BUDGET_EXHAUSTED;
 * entry.status; // 402
 * ```
 */
export interface ErrorCatalogueEntry {
  /** HTTP status the gateway answers with. */
  readonly status: number;
  /** Whether repeating the same request later can succeed without anything else changing. */
  readonly retryable: boolean;
  /** A one-line default message. */
  readonly message: string;
  /** What the caller or operator should do about it. */
  readonly hint: string;
}

function entry(
  status: number,
  retryable: boolean,
  message: string,
  hint: string,
): ErrorCatalogueEntry {
  return Object.freeze({ status, retryable, message, hint });
}

export const ERROR_CATALOGUE = Object.freeze({
  KEEL_INTERNAL: entry(
    500,
    false,
    'an internal error occurred',
    'this is a bug in Keel; report it with the log lines around it',
  ),
  KEEL_INVALID_ARGUMENT: entry(
    400,
    false,
    'the request is not valid',
    'fix the fields named in the details and send it again',
  ),
  KEEL_PAYLOAD_TOO_LARGE: entry(
    413,
    false,
    'the payload is larger than allowed',
    'send a smaller payload; the limit is in the details',
  ),
  KEEL_NOT_FOUND: entry(404, false, 'not found', 'check the identifier'),
  KEEL_CONFLICT: entry(
    409,
    false,
    'the request conflicts with the current state',
    'read the current state and decide again',
  ),
  KEEL_USAGE: entry(
    400,
    false,
    'the command line is not valid',
    'run the command with --help to see its usage',
  ),
  KEEL_IDENTITY_UNKNOWN: entry(
    401,
    false,
    'the caller is not a known, active agent',
    'register the agent, or check that its run belongs to it',
  ),
  KEEL_CAPABILITY_DENIED: entry(
    403,
    false,
    'no capability grant allows this',
    'grant the agent a capability for this kind, resource and parameters',
  ),
  KEEL_CAPABILITY_INVALID: entry(
    400,
    false,
    'the capability grant is not valid',
    'fix the grant; the details name the field',
  ),
  KEEL_POLICY_VIOLATION: entry(
    403,
    false,
    'a safety or policy rule refused this',
    'change the request so that it satisfies the rule named in the details',
  ),
  KEEL_BUDGET_EXHAUSTED: entry(
    402,
    false,
    'the budget for this agent or run is spent',
    'raise the budget or reset it with an operator action',
  ),
  KEEL_APPROVAL_REQUIRED: entry(
    403,
    false,
    'a human must approve this first',
    'approve or deny the approval named in the details, then resume the run',
  ),
  KEEL_APPROVAL_DENIED: entry(403, false, 'a human denied this', 'do something else'),
  KEEL_APPROVAL_EXPIRED: entry(
    403,
    false,
    'the approval expired before it was decided or used',
    'request a new approval',
  ),
  KEEL_SYSCALL_UNSUPPORTED: entry(
    501,
    false,
    'no executor is registered for this syscall kind on this node',
    'enable the service that provides this kind',
  ),
  KEEL_EXECUTOR_FAILED: entry(
    500,
    false,
    'the executor failed',
    'see the cause in the details and the node log',
  ),
  KEEL_REPLAY_MISMATCH: entry(
    409,
    false,
    'a replayed syscall differs from the one recorded at the same sequence number',
    'the agent program is not deterministic; start a new run',
  ),
  KEEL_RUN_ATTEMPTS_EXHAUSTED: entry(
    409,
    false,
    'a run that has used all its attempts made a call its journal does not hold',
    'the run is dead-lettered (keel runs dlq); fix what made its workers fail and submit it again',
  ),
  KEEL_CONVERSATION_UNKNOWN: entry(
    409,
    false,
    'an llm.chat call continues a conversation this node does not hold',
    'send the whole conversation without continues (an agent program’s context.chat does this itself)',
  ),
  KEEL_TIMEOUT: entry(504, true, 'the operation timed out', 'try again, or raise the timeout'),
  KEEL_ABORTED: entry(499, false, 'the operation was aborted', 'nothing to do: the caller aborted'),
  KEEL_NOT_READY: entry(
    503,
    true,
    'the node is not ready yet',
    'wait for /health/ready to answer 200',
  ),
  KEEL_SHUTTING_DOWN: entry(
    503,
    true,
    'the node is shutting down',
    'send the request to another node or after restart',
  ),
  KEEL_STORAGE_UNAVAILABLE: entry(
    503,
    true,
    'storage is unavailable',
    'check the database and the node log, then retry',
  ),
  KEEL_STORAGE_CORRUPT: entry(
    500,
    false,
    'the database file is corrupted or is not a Keel database',
    'restore it from a backup with `keel restore FILE`',
  ),
  KEEL_STORAGE_FULL: entry(
    507,
    false,
    'the disk or database is full',
    'free disk space, then retry',
  ),
  KEEL_MIGRATION_CHECKSUM_MISMATCH: entry(
    500,
    false,
    'an applied migration was changed after it ran',
    'restore the original migration file; migrations are forward-only',
  ),
  KEEL_MIGRATION_UNKNOWN: entry(
    500,
    false,
    'the database was migrated by a newer Keel',
    'run the Keel version that created this database, or restore a backup',
  ),
  KEEL_MIGRATION_PENDING: entry(
    503,
    false,
    'the database has migrations that are not applied yet',
    'run `keel migrate`',
  ),
  KEEL_AUDIT_CHAIN_BROKEN: entry(
    500,
    false,
    'the audit chain does not verify',
    'treat the database as tampered with; restore from a verified backup and investigate',
  ),
  KEEL_AUDIT_KEY_MISSING: entry(
    500,
    false,
    'no audit key is configured',
    'restore secrets.toml (audit_key) or set KEEL_SECRET_AUDIT_KEY',
  ),
  KEEL_CONFIG_INVALID: entry(
    400,
    false,
    'the configuration is not valid',
    'fix the field named in the message',
  ),
  KEEL_CONFIG_PERMISSIONS: entry(
    400,
    false,
    'a configuration or secrets file is readable by others',
    'run the chmod command given in the message',
  ),
  KEEL_DATA_DIR_UNWRITABLE: entry(
    400,
    false,
    'the data directory cannot be written',
    'choose a writable --data-dir or fix its owner and permissions',
  ),
  KEEL_DATA_DIR_LOCKED: entry(
    409,
    false,
    'another Keel node is using this data directory',
    'stop the other node or choose another --data-dir',
  ),
  KEEL_PORT_IN_USE: entry(
    409,
    false,
    'the port is already in use',
    'choose another --port (0 picks a free one) or stop the process that holds it',
  ),
  KEEL_TLS_REQUIRED: entry(
    400,
    false,
    'a non-loopback address needs TLS',
    'set tls.cert_file and tls.key_file, or listen on 127.0.0.1',
  ),
  KEEL_BUS_SUBSCRIBER_OVERFLOW: entry(
    503,
    false,
    'the subscriber fell too far behind and was disconnected',
    'consume faster or raise maxPending; resubscribe and resynchronise',
  ),
  KEEL_BUS_CLOSED: entry(503, false, 'the event bus is closed', 'nothing to do during shutdown'),
  KEEL_BACKUP_FAILED: entry(500, false, 'the backup failed', 'see the cause; check disk space'),
  KEEL_RESTORE_REFUSED: entry(
    400,
    false,
    'the restore was refused',
    'the message says why; nothing was changed',
  ),
  KEEL_MODEL_UNKNOWN: entry(
    404,
    false,
    'no model or alias by that name is configured',
    'configure a provider and an alias under [models] in config.toml (an API key secret, or an Ollama URL)',
  ),
  KEEL_MODEL_UNPRICED: entry(
    402,
    false,
    'the model has no price, and the budget limits cost',
    'add the model to the price table (models.price_table) or route the call to a priced model',
  ),
  KEEL_PROVIDER_UNAVAILABLE: entry(
    503,
    true,
    'the model provider is unavailable',
    'try again later; Keel fails over to the next provider of the alias when one is configured',
  ),
  KEEL_PROVIDER_RATE_LIMITED: entry(
    429,
    true,
    'the model provider is rate limiting',
    'wait for retryAfterMs, or add another provider to the alias',
  ),
  KEEL_PROVIDER_REJECTED: entry(
    502,
    false,
    'the model provider rejected the request',
    'the details carry the provider status and message; check the API key, model name and request',
  ),
  KEEL_PROVIDER_PROTOCOL: entry(
    502,
    true,
    'the model provider answered with something that is not its protocol',
    'try again; if it persists the endpoint is not the kind of provider configured',
  ),
  KEEL_PROVIDER_STREAM_INTERRUPTED: entry(
    502,
    true,
    'the model stream ended before it was complete',
    'the partial answer was discarded and what was consumed was charged; call again',
  ),
  KEEL_PROVIDER_RESPONSE_TOO_LARGE: entry(
    502,
    false,
    'the model provider answered with more than the response cap',
    'lower max_output_tokens, or raise the provider response_max_bytes',
  ),
  KEEL_RATE_LIMITED: entry(
    429,
    true,
    'a Keel rate limit refused the call',
    'wait for retryAfterMs, or raise the limit in config.toml',
  ),
  KEEL_MANIFEST_INVALID: entry(
    400,
    false,
    'the agent manifest is not valid',
    'fix the field the message names; docs/agents.md describes every manifest field',
  ),
  KEEL_MANIFEST_UNSIGNED: entry(
    403,
    false,
    'the agent manifest is not signed',
    'sign it with `keel agent sign <manifest> --key <key>`, or run the node in development mode',
  ),
  KEEL_MANIFEST_SIGNATURE_INVALID: entry(
    403,
    false,
    'the agent manifest signature does not verify',
    'the manifest changed after it was signed, or the signature is not from the named key; sign it again',
  ),
  KEEL_MANIFEST_UNTRUSTED_KEY: entry(
    403,
    false,
    'the agent manifest is signed by a key this node does not trust',
    'add the publisher key to [agents] trusted_keys in config.toml, or sign with a trusted key',
  ),
  KEEL_MANIFEST_DOWNGRADE: entry(
    409,
    false,
    'the agent manifest is not newer than the version this node has deployed',
    'raise the manifest version and sign it again; an older signed version cannot be replayed',
  ),
  KEEL_SANDBOX_UNAVAILABLE: entry(
    503,
    false,
    'an isolation layer that agent workers need is not available',
    'install bubblewrap and enable the layers `keel doctor` reports missing, or start without --production',
  ),
  KEEL_WORKER_CRASHED: entry(
    503,
    true,
    'the agent worker process ended unexpectedly',
    'the supervisor restarts it and resumes its runs; see `keel agent show` for the restart history',
  ),
  KEEL_WORKER_PROTOCOL: entry(
    502,
    false,
    'the agent worker sent a message that breaks the worker protocol',
    'the worker was stopped; this is a bug in the agent program or in Keel',
  ),
  KEEL_AGENT_NOT_RUNNING: entry(
    409,
    false,
    'the agent is not in a state that accepts this action',
    'check its state with `keel agent show <agent>`; resume or restart it first',
  ),
  KEEL_RUN_FAILED: entry(
    500,
    false,
    'the run failed',
    'see `keel runs show <run>` for the step that failed and its error',
  ),
  KEEL_RUN_CANCELLED: entry(
    409,
    false,
    'the run was cancelled',
    'nothing to do; start a new run if you still want the task done',
  ),
  KEEL_RUN_LIMIT_REACHED: entry(
    422,
    false,
    'the run reached its step or iteration limit',
    'raise limits.max_steps in the agent manifest, or split the task',
  ),
  KEEL_NODE_NOT_RUNNING: entry(
    503,
    true,
    'no Keel node is running on this data directory',
    'start one with `keel start` (or `keel start --demo`) and run the command again',
  ),
  KEEL_LLM_NOT_CONFIGURED: entry(
    503,
    false,
    'no model provider is configured',
    'add a provider and an alias under [models] in config.toml (an API key secret or an Ollama URL), or try `keel start --demo`',
  ),
  KEEL_ESTOP_ENGAGED: entry(
    423,
    false,
    'the emergency stop is engaged: no motion is allowed',
    'find and clear the cause, then release it with `keel estop --release` (see docs/robotics.md)',
  ),
  KEEL_HAL_FAULT: entry(
    502,
    false,
    'a hardware driver failed or reported a fault',
    'check the device and its driver log; the body was driven to zero energy',
  ),
  KEEL_BRIDGE_UNAVAILABLE: entry(
    503,
    true,
    'the robot bridge (rosbridge or MQTT) is not connected',
    'check that the bridge endpoint is up; Keel reconnects with backoff on its own',
  ),
} satisfies Record<string, ErrorCatalogueEntry>);

/** A stable Keel error code. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/**
 * Whether a string is a code in the catalogue.
 *
 * @example
 * ```ts
 * isErrorCode('KEEL_TIMEOUT'); // true
 * ```
 */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}
