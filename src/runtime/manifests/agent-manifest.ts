import { Buffer } from 'node:buffer';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CapabilityGrantSchema } from '../../kernel/capabilities/capability-grant.ts';
import { KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import type { TrustLevel } from '../../platform/storage/ports/agent-store.ts';
import type { JsonValue } from '../../platform/storage/ports/json-value.ts';
import { parseScheduleTrigger } from '../scheduler/schedule-trigger.ts';

/** An agent, builtin program, MCP server or skill name: `coder`, `web-research`. */
const NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
const NAME_RULE = 'lowercase letters, digits and hyphens, starting with a letter (at most 63)';

/** Semantic version `MAJOR.MINOR.PATCH[-PRERELEASE]` (semver.org 2.0.0, without build metadata). */
const VERSION_PATTERN =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$/;
const MAX_VERSION_LENGTH = 128;

/** The largest manifest file Keel reads, in bytes. */
export const MAX_MANIFEST_BYTES = 1_048_576;

/** YAML aliases expand; a handful is plenty for a manifest and bounds a "billion laughs". */
const MAX_YAML_ALIASES = 100;

/** JSON values in a manifest nest at most this deep; deeper is refused before validation. */
const MAX_DEPTH = 64;

const name = () => z.string().regex(NAME_PATTERN, NAME_RULE);

/** Like `z.json()`, but its error says what was expected instead of "Invalid input". */
const JSON_VALUE: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(JSON_VALUE), JSON_OBJECT], {
    error: 'a JSON value (string, finite number, boolean, null, list or object)',
  }),
);
const JSON_OBJECT = z.record(z.string(), JSON_VALUE);

const positiveCount = z.number().int().positive();

/**
 * A union whose options are told apart by which key is present (`builtin` or `module`). Unlike
 * `z.union`, a bad option reports its own field (`program.settings.x`), never a vague "invalid
 * input"; no key or several: `message`.
 */
function keyedUnion<const Options extends readonly (readonly [string, z.ZodType])[]>(
  options: Options,
  message: string,
) {
  return z.unknown().transform((value, context): z.output<Options[number][1]> => {
    const present =
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? options.filter(([key]) => Object.hasOwn(value, key))
        : [];
    const selected = present.length === 1 ? present[0] : undefined;
    if (selected === undefined) {
      context.addIssue({ code: 'custom', message, input: value });
      return z.NEVER;
    }
    const result = selected[1].safeParse(value);
    if (result.success) return result.data as z.output<Options[number][1]>;
    for (const issue of result.error.issues) {
      const unknownKey = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
      context.addIssue({
        code: 'custom',
        message: unknownKey === undefined ? issue.message : 'unknown field',
        path: unknownKey === undefined ? issue.path : [...issue.path, unknownKey],
        input: value,
      });
    }
    return z.NEVER;
  });
}

// Optional fields are `exactOptional`: absent or a value, never `undefined`, so the parsed types
// fit `exactOptionalPropertyTypes` callers (a budget's limits are a `Partial<BudgetAmounts>`).

/** A budget's limits; absent dimensions are unlimited. */
const BudgetLimitsSchema = z.strictObject({
  tokens: positiveCount.exactOptional(),
  costMicros: positiveCount.exactOptional(),
  calls: positiveCount.exactOptional(),
  wallMs: positiveCount.exactOptional(),
});

const settings = () => JSON_OBJECT.default({});

const BuiltinProgramSchema = z.strictObject({ builtin: name(), settings: settings() });

const ModuleProgramSchema = z.strictObject({
  module: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[^\0]*$/, 'a file path without NUL characters')
    .regex(/^(?![A-Za-z][A-Za-z0-9+.-]*:)/, 'a file path, not a URL')
    .regex(/\.(?:ts|js|mjs)$/, 'a path ending in .ts, .js or .mjs'),
  settings: settings(),
});

const ProgramSchema = keyedUnion(
  [
    ['builtin', BuiltinProgramSchema],
    ['module', ModuleProgramSchema],
  ],
  'a program is either { builtin: <name> } or { module: <path> }, not both',
);

const TaskSchema = z.strictObject({
  prompt: z
    .string()
    .refine((prompt) => Buffer.byteLength(prompt, 'utf8') <= 65_536, 'at most 64 KiB'),
  input: JSON_OBJECT.exactOptional(),
});

const schedulePriority = () => z.number().int().min(0).max(9).default(5);

/**
 * Checks a trigger as the scheduler will read it, at deploy: a cron expression that is not one
 * or an interval of zero is refused with the scheduler's reason, instead of
 * being accepted and then warned about at every tick.
 */
function schedulerAccepts(field: 'every' | 'cron') {
  return (value: string, context: z.RefinementCtx): void => {
    try {
      parseScheduleTrigger({ [field]: value });
    } catch (error) {
      context.addIssue({ code: 'custom', message: toKeelError(error).message, input: value });
    }
  };
}

const ScheduleSchema = keyedUnion(
  [
    [
      'every',
      z.strictObject({
        every: z
          .string()
          .regex(/^\d{1,6}(?:ms|s|m|h|d)$/, 'a duration such as 30s, 5m, 2h or 1d')
          .superRefine(schedulerAccepts('every')),
        task: TaskSchema,
        priority: schedulePriority(),
      }),
    ],
    [
      'cron',
      z.strictObject({
        cron: z.string().min(1).max(128).superRefine(schedulerAccepts('cron')),
        task: TaskSchema,
        priority: schedulePriority(),
      }),
    ],
  ],
  'a schedule entry has either every (a duration) or cron, not both',
);

const SkillSchema = z.strictObject({
  id: name(),
  description: z.string().max(1000),
  inputSchema: JSON_OBJECT.refine((schema) => schema.type === 'object', {
    message: 'a JSON Schema with type "object" at the top',
  }),
});

function unique<Item>(key: (item: Item) => string, what: string) {
  return (items: readonly Item[], context: z.RefinementCtx): void => {
    const seen = new Set<string>();
    items.forEach((item, index) => {
      const value = key(item);
      if (seen.has(value)) {
        context.addIssue({ code: 'custom', message: `duplicate ${what} ${value}`, path: [index] });
      }
      seen.add(value);
    });
  };
}

const TOOL_NAME = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, 'a tool name');

/**
 * An agent manifest: what an agent is (its program), what it may do (capabilities, tools, MCP
 * servers), what it may spend (budgets) and when it runs (schedule). Unknown fields are refused
 * at every level, so a typo is an error, not a silently ignored setting. Parsing fills in the
 * defaults; a signed manifest carries them written out (see manifest-signing.ts).
 *
 * @example
 * ```ts
 * const manifest = AgentManifestSchema.parse({
 *   apiVersion: 'keel.dev/v1',
 *   id: 'coder',
 *   version: '1.2.0',
 *   program: { builtin: 'react-agent' },
 *   trust: 'supervised',
 *   capabilities: [{ kind: 'llm.chat' }],
 * });
 * manifest.limits.maxSteps; // 50
 * ```
 */
export const AgentManifestSchema = z.strictObject({
  apiVersion: z.literal('keel.dev/v1', { error: 'must be "keel.dev/v1"' }),
  id: name(),
  version: z
    .string()
    .max(MAX_VERSION_LENGTH)
    .regex(VERSION_PATTERN, 'a semantic version such as 1.4.2 or 2.0.0-rc.1'),
  description: z.string().max(500).exactOptional(),
  program: ProgramSchema,
  trust: z.enum(['supervised', 'semi-autonomous', 'autonomous'], {
    error: 'one of supervised, semi-autonomous, autonomous',
  }),
  capabilities: z.array(CapabilityGrantSchema).max(256),
  budgets: z
    .strictObject({
      agent: BudgetLimitsSchema.exactOptional(),
      run: BudgetLimitsSchema.exactOptional(),
    })
    .exactOptional(),
  models: z
    .strictObject({
      default: z
        .string()
        .max(128)
        .regex(/^[A-Za-z0-9_./-]+$/, 'a model alias')
        .exactOptional(),
      maxOutputTokens: z.number().int().min(1).max(1_000_000).exactOptional(),
    })
    .exactOptional(),
  schedule: z.array(ScheduleSchema).max(32).exactOptional(),
  /** The folder the agent's file, shell and git tools work in, and its verification command. */
  workspace: z
    .strictObject({
      path: z
        .string()
        .max(4096)
        .refine((value) => value.startsWith('/') && !value.includes('\0'), 'an absolute path'),
      verify: z.string().min(1).max(1000).exactOptional(),
    })
    .exactOptional(),
  tools: z
    .array(TOOL_NAME)
    .max(256)
    .superRefine(unique((tool) => tool, 'tool'))
    .default([]),
  mcpServers: z
    .array(name())
    .max(64)
    .superRefine(unique((server) => server, 'MCP server'))
    .default([]),
  skills: z
    .array(SkillSchema)
    .max(64)
    .superRefine(unique((skill) => skill.id, 'skill'))
    .default([]),
  limits: z
    .strictObject({
      maxSteps: z.number().int().min(1).max(10_000).default(50),
      maxIterations: z.number().int().min(1).max(1_000).default(20),
      concurrency: z.number().int().min(1).max(64).default(4),
      memoryMb: z.number().int().min(32).max(8192).default(256),
      maxAttempts: z.number().int().min(1).max(100).default(5),
    })
    .prefault({}),
});

/** A parsed manifest, with every default filled in. */
export type AgentManifest = z.output<typeof AgentManifestSchema>;
/** The run limits of a manifest (`limits`), defaults filled in. */
export type ManifestLimits = AgentManifest['limits'];
/** One entry of a manifest's `schedule`. */
export type ManifestSchedule = NonNullable<AgentManifest['schedule']>[number];
/** The program a manifest runs: a builtin by name, or a module by path. */
export type ManifestProgram = AgentManifest['program'];
/** How much a manifest asks to be trusted. */
export type ManifestTrust = AgentManifest['trust'];

/** Finds a `__proto__` key (which validation would silently drop) or nesting beyond the limit. */
function findStructuralProblem(
  value: unknown,
  path: readonly (string | number)[],
): { path: readonly (string | number)[]; message: string } | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (path.length > MAX_DEPTH) return { path, message: `nested deeper than ${MAX_DEPTH} levels` };
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index += 1) {
      const problem = findStructuralProblem(value[index], [...path, index]);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    if (key === '__proto__') return { path: [...path, key], message: 'a forbidden key' };
    const problem = findStructuralProblem((value as Record<string, unknown>)[key], [...path, key]);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function invalid(path: readonly PropertyKey[], message: string, cause?: unknown): KeelError {
  const field = path.map(String).join('.') || '(top level)';
  return new KeelError('KEEL_MANIFEST_INVALID', `manifest ${field}: ${message}`, {
    details: { field },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Validates an agent manifest (already parsed from JSON or YAML) and fills in its defaults, or
 * throws `KEEL_MANIFEST_INVALID` naming the first bad field (`details.field`, e.g.
 * `capabilities.0.kind`).
 *
 * @example
 * ```ts
 * const manifest = parseAgentManifest(parseManifestText(text, 'yaml'));
 * ```
 */
export function parseAgentManifest(value: unknown): AgentManifest {
  const problem = findStructuralProblem(value, []);
  if (problem !== undefined) throw invalid(problem.path, problem.message);
  const result = AgentManifestSchema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (issue === undefined) throw invalid([], 'invalid');
  if (issue.code === 'unrecognized_keys') {
    throw invalid([...issue.path, issue.keys[0] ?? ''], 'unknown field', result.error);
  }
  throw invalid(issue.path, issue.message, result.error);
}

/**
 * Maps a manifest's `trust` to the kernel's trust level: `supervised` → `untrusted`,
 * `semi-autonomous` → `standard`, `autonomous` → `trusted`.
 *
 * @example
 * ```ts
 * trustLevelOf('semi-autonomous'); // 'standard'
 * ```
 */
export function trustLevelOf(trust: ManifestTrust): TrustLevel {
  switch (trust) {
    case 'supervised':
      return 'untrusted';
    case 'semi-autonomous':
      return 'standard';
    case 'autonomous':
      return 'trusted';
  }
}

/** The text formats a manifest file may be written in. */
export type ManifestFormat = 'json' | 'yaml';

/**
 * Parses a manifest file's text (at most 1 MiB) into a plain value for
 * {@link parseAgentManifest}. Too large: `KEEL_PAYLOAD_TOO_LARGE`; not valid JSON or YAML:
 * `KEEL_MANIFEST_INVALID`. YAML aliases are limited, and duplicate keys refused.
 *
 * @example
 * ```ts
 * const value = parseManifestText(await readFile('coder.yaml', 'utf8'), 'yaml');
 * ```
 */
export function parseManifestText(text: string, format: ManifestFormat): unknown {
  const value = parseText(text, format);
  // Aliases repeat what they name: a small YAML file can stand for a huge manifest.
  if (format === 'yaml' && !textWithin(value, MAX_MANIFEST_BYTES)) {
    throw new KeelError(
      'KEEL_PAYLOAD_TOO_LARGE',
      `the manifest is larger than ${MAX_MANIFEST_BYTES} bytes (1 MiB) once its YAML aliases are expanded`,
      { details: { limit: MAX_MANIFEST_BYTES } },
    );
  }
  return value;
}

/**
 * The format of a manifest file by its name: `.yaml` or `.yml` is YAML, `.json` JSON; any other
 * is refused (`KEEL_INVALID_ARGUMENT`) rather than read as JSON and reported as broken.
 *
 * @example
 * ```ts
 * manifestFormatOf('agents/coder.yaml'); // 'yaml'
 * ```
 */
export function manifestFormatOf(path: string): ManifestFormat {
  if (/\.ya?ml$/i.test(path)) return 'yaml';
  if (/\.json$/i.test(path)) return 'json';
  throw new KeelError(
    'KEEL_INVALID_ARGUMENT',
    `${path}: a manifest is a .yaml, .yml or .json file`,
    {
      details: { path },
      hint: 'write the manifest as YAML or JSON and name the file after its format',
    },
  );
}

/**
 * Whether a parsed value's JSON text would take at most `limit` characters, counted without
 * writing it and given up as soon as it is over (a value repeated through aliases is counted at
 * every place it appears, as it would be written).
 */
function textWithin(value: unknown, limit: number): boolean {
  let total = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (typeof next === 'string') total += next.length + 2;
    else if (typeof next !== 'object' || next === null) total += String(next).length;
    else if (Array.isArray(next)) {
      total += next.length + 1;
      for (const member of next) pending.push(member);
    } else {
      for (const [key, member] of Object.entries(next)) {
        total += key.length + 4;
        pending.push(member);
      }
      total += 2;
    }
    if (total > limit) return false;
  }
  return true;
}

function parseText(text: string, format: ManifestFormat): unknown {
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_MANIFEST_BYTES) {
    throw new KeelError(
      'KEEL_PAYLOAD_TOO_LARGE',
      `the manifest is ${size} bytes; the limit is ${MAX_MANIFEST_BYTES} (1 MiB)`,
      { details: { size, limit: MAX_MANIFEST_BYTES } },
    );
  }
  try {
    return format === 'yaml'
      ? // logLevel 'error': errors throw, warnings are not printed to the console.
        parseYaml(text, { maxAliasCount: MAX_YAML_ALIASES, logLevel: 'error' })
      : JSON.parse(text);
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).slice(0, 300);
    throw new KeelError(
      'KEEL_MANIFEST_INVALID',
      `the manifest is not valid ${format === 'yaml' ? 'YAML' : 'JSON'}: ${reason}`,
      { cause: error, details: { format, reason } },
    );
  }
}

interface ParsedVersion {
  readonly core: readonly [string, string, string];
  readonly prerelease: readonly string[];
}

function parseVersion(version: string): ParsedVersion {
  const match = version.length <= MAX_VERSION_LENGTH ? VERSION_PATTERN.exec(version) : null;
  if (match === null) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `${JSON.stringify(version)} is not a version`, {
      details: { version },
      hint: 'use a semantic version such as 1.4.2 or 2.0.0-rc.1',
    });
  }
  return {
    core: [match[1] ?? '0', match[2] ?? '0', match[3] ?? '0'],
    prerelease: match[4] === undefined ? [] : match[4].split('.'),
  };
}

/** Compares two digit strings without leading zeros, of any length, as numbers. */
function compareDigits(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

const NUMERIC = /^\d+$/;

function compareIdentifiers(a: string, b: string): number {
  const aNumeric = NUMERIC.test(a);
  const bNumeric = NUMERIC.test(b);
  if (aNumeric && bNumeric) return compareDigits(a, b);
  // Numeric identifiers have lower precedence than alphanumeric ones.
  if (aNumeric !== bNumeric) return aNumeric ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Orders two semantic versions by semver precedence: -1 when `a` is older, 0 when equal, 1 when
 * newer. A prerelease is older than its release (`1.0.0-rc.1` < `1.0.0`); prerelease identifiers
 * compare numerically when numeric, else in ASCII order, numeric before alphanumeric, and a
 * longer list wins when the shared identifiers are equal. Not a version: `KEEL_INVALID_ARGUMENT`.
 *
 * @example
 * ```ts
 * compareVersions('1.0.0-alpha.10', '1.0.0-alpha.9'); // 1
 * if (compareVersions(incoming.version, deployed.version) <= 0) refuseDowngrade();
 * ```
 */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const left = parseVersion(a);
  const right = parseVersion(b);
  for (let index = 0; index < 3; index += 1) {
    const order = compareDigits(left.core[index] ?? '0', right.core[index] ?? '0');
    if (order !== 0) return order < 0 ? -1 : 1;
  }
  if (left.prerelease.length === 0 || right.prerelease.length === 0) {
    if (left.prerelease.length === right.prerelease.length) return 0;
    return left.prerelease.length === 0 ? 1 : -1;
  }
  const shared = Math.min(left.prerelease.length, right.prerelease.length);
  for (let index = 0; index < shared; index += 1) {
    const order = compareIdentifiers(left.prerelease[index] ?? '', right.prerelease[index] ?? '');
    if (order !== 0) return order < 0 ? -1 : 1;
  }
  if (left.prerelease.length === right.prerelease.length) return 0;
  return left.prerelease.length < right.prerelease.length ? -1 : 1;
}
