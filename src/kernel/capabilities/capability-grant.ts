import { z } from 'zod';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { describeIntent } from '../gate/describe-intent.ts';
import {
  compileCommand,
  compileDomain,
  compileGlob,
  compilePath,
  type Matcher,
} from './pattern-matchers.ts';

/** A syscall kind: dotted lowercase words, e.g. `tool.call`, `llm.chat`, `a2a.send`. */
export const SYSCALL_KIND_PATTERN = /^[a-z][a-z0-9]*(?:\.[a-z][a-z0-9_]*)*$/;

/** A grant's kind: a syscall kind, or a prefix ending in `.*` (`memory.*`). Never a bare `*`. */
const GRANT_KIND_PATTERN = /^[a-z][a-z0-9]*(?:\.[a-z][a-z0-9_]*)*(?:\.\*)?$/;

const patternList = z.array(z.string().min(1).max(1024)).min(1).max(256);

/**
 * The parameter limits a grant may carry. Each names the intent parameter it constrains; an
 * intent that lacks that parameter does not match (a limit can only narrow, never widen).
 */
const LimitsSchema = z.strictObject({
  /** `tool.call shell {commands: ["npm test", "git *"]}`: the `command` parameter. */
  commands: patternList.optional(),
  /** `fs.write {paths: ["workspace/**"]}`: the `path` parameter, or every entry of `paths`. */
  paths: patternList.optional(),
  /** `net.fetch {domains: ["*.example.org"]}`: the host of `url`, or the `domain` parameter. */
  domains: patternList.optional(),
  /** `llm.chat {models: ["gpt-*"]}`: the model alias, which is the intent's resource. */
  models: patternList.optional(),
  /** Upper bound of the `maxOutputTokens` parameter (`llm.chat`), which it makes required. */
  maxTokens: z.number().int().positive().optional(),
  /**
   * `hal.drive {maxLinear: 0.5}`: bound on the absolute `linear` parameter (m/s) and on a
   * trajectory's `maxSpeed`, whichever the intent carries (both, if it carries both).
   */
  maxLinear: z.number().finite().nonnegative().optional(),
  /**
   * `hal.drive {maxAngular: 1.0}`: bound on the absolute `angular` parameter (rad/s). A
   * trajectory has no `angular`; its turn rate is bounded by the body's own speed caps.
   */
  maxAngular: z.number().finite().nonnegative().optional(),
  /** `hal.arm {workspace: {min: {x,y,z}, max: {x,y,z}}}`: the `x`, `y`, `z` target in a box (m). */
  workspace: z
    .strictObject({ min: pointSchema(), max: pointSchema() })
    .refine(
      (box) => box.min.x <= box.max.x && box.min.y <= box.max.y && box.min.z <= box.max.z,
      'workspace min must not exceed max',
    )
    .optional(),
});

function pointSchema() {
  return z.strictObject({
    x: z.number().finite(),
    y: z.number().finite(),
    z: z.number().finite(),
  });
}

export type CapabilityLimits = z.output<typeof LimitsSchema>;

/**
 * A capability grant as data: a kind, a resource pattern and parameter limits.
 *
 * @example
 * ```ts
 * const grant = parseCapabilityGrant({
 *   kind: 'tool.call',
 *   resource: 'shell',
 *   limits: { commands: ['npm test', 'git *'] },
 * });
 * ```
 */
export const CapabilityGrantSchema = z.strictObject({
  kind: z
    .string()
    .max(64)
    .regex(GRANT_KIND_PATTERN, 'a syscall kind such as tool.call or memory.*'),
  /** Glob over the intent's resource (tool name, model alias, namespace…); `*` for any. */
  resource: z.string().min(1).max(256).default('*'),
  limits: LimitsSchema.default({}),
  description: z.string().max(500).optional(),
});

export type CapabilityGrant = z.output<typeof CapabilityGrantSchema>;

/**
 * Validates a grant, or throws `KEEL_CAPABILITY_INVALID` naming the first bad field.
 *
 * @example
 * ```ts
 * parseCapabilityGrant({ kind: 'fs.write', limits: { paths: ['workspace/**'] } });
 * ```
 */
export function parseCapabilityGrant(value: unknown): CapabilityGrant {
  const result = CapabilityGrantSchema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') || '(grant)';
  throw new KeelError(
    'KEEL_CAPABILITY_INVALID',
    `capability grant field ${field}: ${issue?.message ?? 'invalid'}`,
    {
      details: {
        field,
        issues: result.error.issues.map((entry) => ({
          path: entry.path.join('.'),
          message: entry.message,
        })),
      },
    },
  );
}

/** Checks one limit against an intent's parameters: `undefined` when it passes, else why not. */
type LimitCheck = (
  params: Readonly<Record<string, unknown>>,
  resource: string,
) => string | undefined;

function anyOf(matchers: readonly Matcher[], value: string): boolean {
  return matchers.some((matches) => matches(value));
}

function patternLimit(
  name: string,
  parameter: string,
  compile: (pattern: string) => Matcher,
  patterns: readonly string[],
): LimitCheck {
  const matchers = patterns.map(compile);
  return (params) => {
    const value = params[parameter];
    if (typeof value !== 'string') return `parameter ${parameter} is required by the ${name} limit`;
    return anyOf(matchers, value) ? undefined : `${parameter} is outside the granted ${name}`;
  };
}

function pathsLimit(patterns: readonly string[]): LimitCheck {
  const matchers = patterns.map(compilePath);
  return (params) => {
    const single = params.path;
    const many = params.paths;
    const values: unknown[] = [];
    if (single !== undefined) values.push(single);
    if (Array.isArray(many)) values.push(...many);
    else if (many !== undefined) return 'parameter paths must be a list';
    if (values.length === 0) return 'parameter path is required by the paths limit';
    for (const value of values) {
      if (typeof value !== 'string' || !anyOf(matchers, value)) {
        return `path ${typeof value === 'string' ? value : '(not a string)'} is outside the granted paths`;
      }
    }
    return undefined;
  };
}

function hostOf(params: Readonly<Record<string, unknown>>): string | undefined {
  if (typeof params.url === 'string') {
    try {
      const url = new URL(params.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
      return url.hostname.replace(/^\[|\]$/g, '');
    } catch {
      return undefined;
    }
  }
  return typeof params.domain === 'string' ? params.domain : undefined;
}

function domainsLimit(patterns: readonly string[]): LimitCheck {
  const matchers = patterns.map(compileDomain);
  return (params) => {
    const host = hostOf(params);
    if (host === undefined)
      return 'an http(s) url or a domain parameter is required by the domains limit';
    return anyOf(matchers, host) ? undefined : `host ${host} is outside the granted domains`;
  };
}

/**
 * A bound on a numeric parameter. `count` parameters (token counts) must be whole numbers of
 * 1 or more — a negative or zero count means "unlimited" to some providers; `magnitude`
 * parameters (speeds) are bounded in both directions.
 */
function maximumLimit(parameter: string, limit: number, kind: 'count' | 'magnitude'): LimitCheck {
  return (params) => {
    const value = params[parameter];
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      return `parameter ${parameter} must be a finite number under this grant`;
    }
    if (kind === 'count' && (!Number.isSafeInteger(value) || value < 1)) {
      return `parameter ${parameter} must be a whole number of 1 or more under this grant`;
    }
    const magnitude = kind === 'magnitude' ? Math.abs(value) : value;
    return magnitude <= limit ? undefined : `${parameter} ${value} exceeds the granted ${limit}`;
  };
}

function workspaceLimit(box: NonNullable<CapabilityLimits['workspace']>): LimitCheck {
  return (params) => {
    for (const axis of ['x', 'y', 'z'] as const) {
      const value = params[axis];
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        return `parameter ${axis} must be a finite number under the workspace limit`;
      }
      if (value < box.min[axis] || value > box.max[axis]) {
        return `${axis} ${value} is outside the granted workspace [${box.min[axis]}, ${box.max[axis]}]`;
      }
    }
    return undefined;
  };
}

function compileLimits(limits: CapabilityLimits): LimitCheck[] {
  const checks: LimitCheck[] = [];
  if (limits.commands)
    checks.push(patternLimit('commands', 'command', compileCommand, limits.commands));
  if (limits.paths) checks.push(pathsLimit(limits.paths));
  if (limits.domains) checks.push(domainsLimit(limits.domains));
  if (limits.models) {
    const matchers = limits.models.map(compileGlob);
    checks.push((_params, resource) =>
      anyOf(matchers, resource) ? undefined : `model ${resource} is outside the granted models`,
    );
  }
  if (limits.maxTokens !== undefined)
    checks.push(maximumLimit('maxOutputTokens', limits.maxTokens, 'count'));
  if (limits.maxLinear !== undefined) {
    const linear = maximumLimit('linear', limits.maxLinear, 'magnitude');
    const maxSpeed = maximumLimit('maxSpeed', limits.maxLinear, 'magnitude');
    // Every speed the intent carries is bounded, whatever shape it claims to have.
    checks.push((params, resource) => {
      if (params.linear === undefined && params.maxSpeed === undefined) {
        return 'parameter linear (or maxSpeed for a trajectory) is required by the maxLinear limit';
      }
      return (
        (params.linear === undefined ? undefined : linear(params, resource)) ??
        (params.maxSpeed === undefined ? undefined : maxSpeed(params, resource))
      );
    });
  }
  if (limits.maxAngular !== undefined) {
    const angular = maximumLimit('angular', limits.maxAngular, 'magnitude');
    checks.push((params, resource) =>
      params.angular === undefined && Array.isArray(params.points)
        ? undefined
        : angular(params, resource),
    );
  }
  if (limits.workspace !== undefined) checks.push(workspaceLimit(limits.workspace));
  return checks;
}

/** A grant compiled once for fast matching. */
export interface CompiledGrant {
  readonly id: string;
  readonly grant: CapabilityGrant;
  readonly expiresAt: number | null;
  matchesKind(kind: string): boolean;
  matchesResource(resource: string): boolean;
  /** `undefined` when every limit passes; otherwise the first reason it does not. */
  checkLimits(params: Readonly<Record<string, unknown>>, resource: string): string | undefined;
}

/**
 * Validates and compiles a stored grant.
 *
 * @example
 * ```ts
 * const compiled = compileGrant(stored.id, stored.grant, stored.expiresAt);
 * compiled.checkLimits({ command: 'git status' });
 * ```
 */
export function compileGrant(id: string, value: unknown, expiresAt: number | null): CompiledGrant {
  const grant = parseCapabilityGrant(value);
  const kindPrefix = grant.kind.endsWith('.*') ? grant.kind.slice(0, -1) : undefined;
  const resourceMatches = compileGlob(grant.resource);
  const checks = compileLimits(grant.limits);
  return {
    id,
    grant,
    expiresAt,
    matchesKind: (kind) =>
      kindPrefix === undefined ? kind === grant.kind : kind.startsWith(kindPrefix),
    matchesResource: resourceMatches,
    checkLimits: (params, resource) => {
      for (const check of checks) {
        const reason = check(params, resource);
        if (reason !== undefined) return reason;
      }
      return undefined;
    },
  };
}

/** What the capability step decided. */
export type CapabilityDecision =
  | { readonly allowed: true; readonly grantId: string }
  | {
      readonly allowed: false;
      readonly reason: string;
      /** The grant that came closest (kind and resource matched) and why its limits refused. */
      readonly closestGrantId: string | null;
    };

/**
 * Deny by default: allows an intent only if some unexpired grant matches its kind, its
 * resource and every one of that grant's limits.
 *
 * @example
 * ```ts
 * const decision = matchCapability(grants, { kind: 'tool.call', resource: 'shell', params: { command: 'npm test' } }, Date.now());
 * ```
 */
export function matchCapability(
  grants: readonly CompiledGrant[],
  intent: {
    readonly kind: string;
    readonly resource: string;
    readonly params: Readonly<Record<string, unknown>>;
  },
  now: number,
): CapabilityDecision {
  let closest: { grantId: string; reason: string } | undefined;
  for (const grant of grants) {
    if (grant.expiresAt !== null && grant.expiresAt <= now) continue;
    if (!grant.matchesKind(intent.kind) || !grant.matchesResource(intent.resource)) continue;
    const reason = grant.checkLimits(intent.params, intent.resource);
    if (reason === undefined) return { allowed: true, grantId: grant.id };
    closest ??= { grantId: grant.id, reason };
  }
  if (closest !== undefined) {
    return { allowed: false, reason: closest.reason, closestGrantId: closest.grantId };
  }
  return {
    allowed: false,
    reason: `no capability grant for ${describeIntent(intent)}`,
    closestGrantId: null,
  };
}
