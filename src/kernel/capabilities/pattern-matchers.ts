/**
 * The pattern languages of capability grants. Each function answers whether a concrete value
 * (from an intent) matches a pattern (from a grant). They are deliberately small, anchored and
 * conservative: anything odd in the value is a non-match, never a widening.
 */
import { posix } from 'node:path';

/** A pattern step that matches any run of items, also none (`*` in text, `**` in paths). */
const ANY_RUN = Symbol('any run');

/** One step of a compiled pattern: a test for exactly one item, or {@link ANY_RUN}. */
type Step<Item> = ((item: Item) => boolean) | typeof ANY_RUN;

/**
 * Matches a sequence against pattern steps, anchored at both ends, without regular
 * expressions: the classic greedy algorithm with one backtrack point runs in
 * O(pattern × value) at worst — never the exponential backtracking a regular expression with
 * several stars can fall into on hostile input. Serves both the characters of a glob and the
 * segments of a path.
 */
function matchSequence<Item>(steps: readonly Step<Item>[], items: readonly Item[]): boolean {
  let stepIndex = 0;
  let itemIndex = 0;
  let star = -1;
  let resume = 0;
  while (itemIndex < items.length) {
    const step = steps[stepIndex];
    if (step === ANY_RUN) {
      star = stepIndex;
      stepIndex += 1;
      resume = itemIndex;
    } else if (step?.(items[itemIndex] as Item)) {
      stepIndex += 1;
      itemIndex += 1;
    } else if (star >= 0) {
      stepIndex = star + 1;
      resume += 1;
      itemIndex = resume;
    } else {
      return false;
    }
  }
  while (steps[stepIndex] === ANY_RUN) stepIndex += 1;
  return stepIndex === steps.length;
}

const ANY_ONE = (): boolean => true;

/** `*` matches any run of characters (also none), `?` exactly one code point. */
function wildcard(pattern: string): Matcher {
  if (!pattern.includes('*') && !pattern.includes('?')) return (value) => value === pattern;
  const steps = Array.from(pattern, (symbol): Step<string> => {
    if (symbol === '*') return ANY_RUN;
    if (symbol === '?') return ANY_ONE;
    return (character) => character === symbol;
  });
  return (value) => matchSequence(steps, Array.from(value));
}

/**
 * A plain glob over a whole string: `*` matches any run of characters (also none), `?` one
 * character; everything else is literal. Anchored at both ends; case-sensitive.
 *
 * @example
 * ```ts
 * matchGlob('git.*', 'git.commit'); // true
 * matchGlob('shell', 'shell2'); // false
 * ```
 */
export function matchGlob(pattern: string, value: string): boolean {
  return compileGlob(pattern)(value);
}

/** A pattern compiled once into a predicate, for the gate's hot path. */
export type Matcher = (value: string) => boolean;

/**
 * Compiles a plain glob (see {@link matchGlob}).
 *
 * @example
 * ```ts
 * const matches = compileGlob('gpt-*');
 * matches('gpt-4o'); // true
 * ```
 */
export function compileGlob(pattern: string): Matcher {
  if (pattern === '*') return () => true;
  return wildcard(pattern);
}

/**
 * Normalises a path from an intent for matching, or returns `undefined` when it must never
 * match anything: empty, containing NUL, or escaping its root with `..` after normalisation.
 *
 * @example
 * ```ts
 * normaliseIntentPath('./src//a.ts'); // 'src/a.ts'
 * normaliseIntentPath('a/../../etc'); // undefined
 * ```
 */
export function normaliseIntentPath(value: string): string | undefined {
  if (value.length === 0 || value.length > 4096 || value.includes('\0')) return undefined;
  const absolute = value.startsWith('/');
  let normalised = posix.normalize(value);
  if (normalised !== '/' && normalised.endsWith('/')) normalised = normalised.slice(0, -1);
  if (normalised.startsWith('./')) normalised = normalised.slice(2);
  const segments = normalised.split('/');
  if (segments.includes('..')) return undefined;
  if (!absolute && (normalised === '.' || normalised === '')) return '.';
  return normalised;
}

/**
 * Matches a file path against a path pattern: `**` spans any number of whole segments
 * (including none), `*` and `?` stay within one segment. The value is normalised first and a
 * path that escapes with `..`, contains NUL, or differs in absoluteness never matches.
 *
 * @example
 * ```ts
 * matchPath('workspace/**', 'workspace/src/app.ts'); // true
 * matchPath('workspace/**', 'workspace/../etc/passwd'); // false
 * ```
 */
export function matchPath(pattern: string, value: string): boolean {
  return compilePath(pattern)(value);
}

/**
 * Compiles a path pattern (see {@link matchPath}).
 *
 * @example
 * ```ts
 * compilePath('workspace/**')('workspace/src/app.ts'); // true
 * ```
 */
export function compilePath(pattern: string): Matcher {
  const patternAbsolute = pattern.startsWith('/');
  const patternSegments = pattern
    .split('/')
    .filter((segment) => segment.length > 0 && segment !== '.')
    .map((segment): Step<string> => (segment === '**' ? ANY_RUN : wildcard(segment)));
  return (value) => {
    const normalised = normaliseIntentPath(value);
    if (normalised === undefined) return false;
    if (patternAbsolute !== normalised.startsWith('/')) return false;
    const valueSegments = normalised
      .split('/')
      .filter((segment) => segment.length > 0 && segment !== '.');
    return matchSequence(patternSegments, valueSegments);
  };
}

const HOST_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Lower-cases a host name and drops one trailing dot; `undefined` if it is not a DNS name.
 * A name whose last label is numeric is an IP literal in some notation (`127.0.0.1`,
 * `0x7f.1`), never a DNS name: no top-level domain is numeric.
 *
 * @example
 * ```ts
 * normaliseHost('API.Example.org.'); // 'api.example.org'
 * normaliseHost('127.0.0.1'); // undefined
 * ```
 */
export function normaliseHost(value: string): string | undefined {
  let host = value.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.length === 0 || host.length > 253) return undefined;
  const labels = host.split('.');
  if (!labels.every((label) => HOST_LABEL.test(label))) return undefined;
  if (/^(?:0x[0-9a-f]*|\d+)$/.test(labels.at(-1) ?? '')) return undefined;
  return host;
}

/**
 * Matches a host name against a domain pattern: `example.org` matches only itself;
 * `*.example.org` matches any subdomain at any depth but not `example.org`; `*` matches any
 * DNS name. IP literals and malformed names match nothing but an identical literal pattern.
 *
 * @example
 * ```ts
 * matchDomain('*.example.org', 'api.eu.example.org'); // true
 * matchDomain('*.example.org', 'example.org.evil.com'); // false
 * ```
 */
export function matchDomain(pattern: string, value: string): boolean {
  return compileDomain(pattern)(value);
}

/**
 * Compiles a domain pattern (see {@link matchDomain}).
 *
 * @example
 * ```ts
 * compileDomain('*.example.org')('api.example.org'); // true
 * ```
 */
export function compileDomain(pattern: string): Matcher {
  const suffix = pattern.startsWith('*.') ? normaliseHost(pattern.slice(2)) : undefined;
  const exact = pattern === '*' || pattern.startsWith('*.') ? undefined : normaliseHost(pattern);
  return (value) => {
    const host = normaliseHost(value);
    if (host === undefined) return pattern === value && pattern.length > 0 && pattern !== '*';
    if (pattern === '*') return true;
    if (suffix !== undefined) return host.endsWith(`.${suffix}`);
    return exact !== undefined && exact === host;
  };
}

/** Characters that make a command line mean more than one plain command. */
const SHELL_METACHARACTERS = /[;&|$`<>(){}[\]\\!]/u;

/**
 * Characters that are invisible or space-like other than the plain space (U+0020): control
 * and format characters, line and paragraph separators, and every other kind of space. An
 * executor that splits on whitespace would read a different command than the pattern saw.
 */
const HIDDEN_SEPARATORS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|(?! )\p{Zs}|\s(?<! )/u;

/**
 * Whether a command line contains shell metacharacters, control characters or odd spaces.
 *
 * @example
 * ```ts
 * hasShellMetacharacters('git status; rm -rf /'); // true
 * ```
 */
export function hasShellMetacharacters(command: string): boolean {
  return SHELL_METACHARACTERS.test(command) || HIDDEN_SEPARATORS.test(command);
}

/**
 * Matches a command line against a command pattern, word by word (split on spaces). A pattern
 * word `*` at the end matches any number of remaining words (also none); `*` inside a word
 * matches characters within that word. A command with shell metacharacters, control
 * characters or quotes never matches: commands run without a shell, and a pattern cannot vouch
 * for a line a shell would read differently.
 *
 * @example
 * ```ts
 * matchCommand('git *', 'git status --short'); // true
 * matchCommand('git *', 'git status; rm -rf /'); // false
 * matchCommand('npm test', 'npm test -- --watch'); // false
 * ```
 */
export function matchCommand(pattern: string, command: string): boolean {
  return compileCommand(pattern)(command);
}

/**
 * Compiles a command pattern (see {@link matchCommand}).
 *
 * @example
 * ```ts
 * compileCommand('git *')('git status --short'); // true
 * ```
 */
export function compileCommand(pattern: string): Matcher {
  const patternWords = pattern.trim().split(/ +/);
  const trailingStar = patternWords.at(-1) === '*';
  // Words hold no spaces (the command is split on them), so a word's wildcards stay in it.
  const fixedWords = (trailingStar ? patternWords.slice(0, -1) : patternWords).map(wildcard);
  return (command) => {
    if (command.length === 0 || command.length > 8192) return false;
    if (hasShellMetacharacters(command) || /["']/.test(command)) return false;
    const words = command.trim().split(/ +/);
    if (trailingStar ? words.length < fixedWords.length : words.length !== fixedWords.length) {
      return false;
    }
    return fixedWords.every((matches, index) => matches(words[index] ?? ''));
  };
}
