import { compilePath, type Matcher } from '../../../kernel/capabilities/pattern-matchers.ts';

/** Why a workspace path was refused: a stable rule id and a sentence for the agent. */
export interface PathRefusal {
  readonly ok: false;
  readonly rule: string;
  readonly reason: string;
}

/** A path that passed: its segments, none empty, `.` or `..`. */
export interface CheckedPath {
  readonly ok: true;
  readonly segments: readonly string[];
  /** The segments joined with `/` (`.` for the workspace itself). */
  readonly relative: string;
}

const MAX_PATH_LENGTH = 4096;
const MAX_SEGMENT_BYTES = 255;

/**
 * Characters that look like a separator or a dot but are not one: a name holding them reads as
 * a path to a person (and to any tool that normalises Unicode) while the file system sees one
 * odd name. Backslash is a separator elsewhere.
 */
const LOOK_ALIKES =
  /[\\\u2215\u2044\u2571\u29f8\u29f9\uff0f\uff3c\ufe68\u2216\u2024\u2025\u2026\ufe52\uff0e\u3002\uff61]|\u0338/u;

/** Control and format characters, line and paragraph separators: never in a file name. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/**
 * Paths no tool may touch, whatever the grant says: environment files, keys, credentials and
 * git's own folder (changed only by the git tool). Matched case-insensitively.
 */
export const DENIED_PATH_PATTERNS: readonly string[] = Object.freeze([
  '**/.env',
  '**/.env.*',
  '**/.envrc',
  '**/.ssh/**',
  '**/.gnupg/**',
  '**/.aws/**',
  '**/.docker/config.json',
  '**/.kube/**',
  '**/secrets/**',
  '**/.secrets/**',
  '**/*.pem',
  '**/*.key',
  '**/*.p12',
  '**/*.pfx',
  '**/*.jks',
  '**/*.keystore',
  '**/id_rsa*',
  '**/id_dsa*',
  '**/id_ecdsa*',
  '**/id_ed25519*',
  '**/.npmrc',
  '**/.pypirc',
  '**/.netrc',
  '**/.git-credentials',
  '**/.git',
  '**/.git/**',
  '**/.keel-*.tmp',
]);

const DENIED_MATCHERS: readonly { readonly pattern: string; readonly matches: Matcher }[] =
  DENIED_PATH_PATTERNS.map((pattern) => ({ pattern, matches: compilePath(pattern) }));

/**
 * Checks a path an agent gave a file tool, without touching the file system: a relative path
 * inside the workspace, made of plain names. Refuses NUL and control characters, absolute
 * paths, `..` anywhere, look-alike separators and dots, names longer than the file system
 * allows and every denied pattern ({@link DENIED_PATH_PATTERNS}). Never throws.
 *
 * @example
 * ```ts
 * checkWorkspacePath('src/app.ts'); // { ok: true, segments: ['src', 'app.ts'], relative: 'src/app.ts' }
 * checkWorkspacePath('../etc/passwd'); // { ok: false, rule: 'parent-segment', … }
 * ```
 */
export function checkWorkspacePath(value: unknown): CheckedPath | PathRefusal {
  try {
    return check(value);
  } catch (error) {
    return refuse('policy-error', `the path could not be checked: ${String(error)}`);
  }
}

function check(value: unknown): CheckedPath | PathRefusal {
  if (typeof value !== 'string') return refuse('not-a-string', 'a path must be a string');
  if (value.length === 0) return refuse('empty', 'the path is empty');
  if (value.length > MAX_PATH_LENGTH) {
    return refuse('too-long', `the path is longer than ${MAX_PATH_LENGTH} characters`);
  }
  if (value.includes('\0')) return refuse('nul', 'the path contains a NUL character');
  if (!value.isWellFormed()) return refuse('malformed', 'the path is not well-formed Unicode');
  if (INVISIBLE.test(value)) {
    return refuse('invisible-character', 'the path contains a control or invisible character');
  }
  if (LOOK_ALIKES.test(value)) {
    return refuse(
      'look-alike-separator',
      'the path contains a backslash or a character that looks like a slash or a dot',
    );
  }
  const folded = value.normalize('NFKC');
  if (count(folded, '/') !== count(value, '/') || count(folded, '.') !== count(value, '.')) {
    return refuse('look-alike-separator', 'the path holds a character that folds to / or .');
  }
  if (value.startsWith('/')) {
    return refuse('absolute', 'absolute paths are not allowed; give a path inside the workspace');
  }
  if (value.startsWith('~')) return refuse('home', 'the path names a home folder');
  const segments: string[] = [];
  for (const segment of value.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') return refuse('parent-segment', 'the path contains ..');
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
      return refuse(
        'name-too-long',
        `a name in the path is longer than ${MAX_SEGMENT_BYTES} bytes`,
      );
    }
    if (segment.trim() !== segment || segment.endsWith('.')) {
      return refuse('odd-name', `the name ${JSON.stringify(segment)} ends in a space or a dot`);
    }
    segments.push(segment);
  }
  // `./~` names the same `~` as `~`: a shell given the relative path would expand it.
  if (segments[0]?.startsWith('~') === true) return refuse('home', 'the path names a home folder');
  const relative = segments.length === 0 ? '.' : segments.join('/');
  const denied = deniedPattern(relative);
  if (denied !== undefined) {
    return refuse('denied-path', `${relative} matches the denied pattern ${denied}`);
  }
  return { ok: true, segments, relative };
}

/** The denied pattern a workspace-relative path matches, or `undefined`. */
export function deniedPattern(relative: string): string | undefined {
  const lower = relative.toLowerCase();
  return DENIED_MATCHERS.find(({ matches }) => matches(lower))?.pattern;
}

function count(text: string, character: string): number {
  let found = 0;
  for (const symbol of text) if (symbol === character) found += 1;
  return found;
}

function refuse(rule: string, reason: string): PathRefusal {
  return { ok: false, rule, reason };
}
