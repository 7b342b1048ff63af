import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  chmod,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeelError } from '../errors/keel-error.ts';
import { pathExists } from './path-exists.ts';
import { makeReadableFolders } from './readable-folders.ts';
import { relativeImports } from './relative-imports.ts';

/** Bumped when what the stripper writes changes, so older copies are not reused. */
const FORMAT = 'keel-stripped-graph/1';
const STRIPPER = fileURLToPath(new URL('./strip-types-main.ts', import.meta.url));
const STRIP_TIMEOUT_MS = 60_000;
const DEFAULT_KEEP = 5;
/** A partial copy this old was left by a process that died making it. */
const ABANDONED_AFTER_MS = 60 * 60 * 1000;

export interface StrippedGraphOptions {
  /** The graph's entry module, a `.ts` file inside `sourceRoot`. */
  readonly entry: string;
  /** Every module of the graph must be inside it; the copy keeps their paths under it. */
  readonly sourceRoot: string;
  /**
   * Where copies are kept, one folder per content. Bare imports (`zod`) are resolved from the
   * copy's place, so it belongs inside the project (e.g. `node_modules/.cache/…`).
   */
  readonly cacheDirectory: string;
  /** How many copies to keep, the most recently used first (default 5). */
  readonly keep?: number;
  readonly signal?: AbortSignal;
}

/**
 * A module graph's TypeScript sources as plain JavaScript: the modules `entry` imports,
 * transitively, with their types stripped as Node strips them when it runs the sources, kept
 * in a folder named after their content (and Node's version), so that a process can run them
 * without loading Node's TypeScript stripper (about 30 MiB of memory per process). A changed
 * source makes a new copy; a copy is made once, in a folder of its own that appears whole or
 * not at all, and nodes starting at the same time share it. Resolves with the copy's entry.
 *
 * @example
 * ```ts
 * const entry = await prepareStrippedGraph({ entry: '/srv/keel/src/agents/agent-worker-main.ts',
 *   sourceRoot: '/srv/keel', cacheDirectory: '/srv/keel/node_modules/.cache/keel-worker' });
 * spawn(process.execPath, [entry]);
 * ```
 */
export async function prepareStrippedGraph(options: StrippedGraphOptions): Promise<string> {
  const sourceRoot = resolve(options.sourceRoot);
  const files = await moduleGraph(resolve(options.entry), sourceRoot);
  const digest = createHash('sha256').update(`${FORMAT}\n${process.version}\n`);
  for (const [path, content] of files)
    digest.update(`${path}\0${content.length}\0`).update(content);
  const copy = join(options.cacheDirectory, digest.digest('hex').slice(0, 32));
  const entry = join(copy, relative(sourceRoot, resolve(options.entry)).replace(/\.ts$/, '.js'));
  if (await pathExists(entry)) {
    // Marks the copy as in use, for the pruning of other nodes.
    const now = new Date();
    await utimes(copy, now, now);
    return entry;
  }
  // Readable by all, whatever the umask: sandboxed processes run as another user.
  await makeReadableFolders(options.cacheDirectory);
  const partial = await mkdtemp(join(options.cacheDirectory, '.partial-'));
  try {
    await chmod(partial, 0o755); // mkdtemp makes it 0700
    await strip(sourceRoot, [...files.keys()], partial, options.signal);
    await writeFile(join(partial, 'package.json'), '{ "type": "module" }\n');
    await chmod(join(partial, 'package.json'), 0o644);
    await rename(partial, copy).catch(async (error: unknown) => {
      // Another process made the same copy first: it is the same content.
      if (!(await pathExists(entry))) throw error;
    });
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
  await prune(options.cacheDirectory, copy, options.keep ?? DEFAULT_KEEP);
  return entry;
}

/** The graph's modules by path under `sourceRoot`, sorted, with their text. */
async function moduleGraph(entry: string, sourceRoot: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const pending = [entry];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    const path = relative(sourceRoot, file);
    if (found.has(path)) continue;
    if (path.startsWith(`..${sep}`) || path === '..' || !file.endsWith('.ts')) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        `module ${file} is outside ${sourceRoot} or not TypeScript; it cannot be copied`,
      );
    }
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      // A name matched in a comment need not exist; the entry must.
      if (file === entry || (error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      continue;
    }
    found.set(path, text);
    for (const specifier of relativeImports(text)) {
      pending.push(resolve(dirname(file), `${specifier}.ts`));
    }
  }
  return new Map([...found].sort(([left], [right]) => (left < right ? -1 : 1)));
}

async function strip(
  sourceRoot: string,
  files: readonly string[],
  outputDirectory: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', STRIPPER], {
    stdio: ['pipe', 'ignore', 'pipe'],
    env: {},
    cwd: sourceRoot,
    signal: AbortSignal.any([AbortSignal.timeout(STRIP_TIMEOUT_MS), ...(signal ? [signal] : [])]),
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    stderr = (stderr + text).slice(-2000);
  });
  child.stdin.end(JSON.stringify({ sourceRoot, files, outputDirectory }));
  let code: number | null;
  let killedBy: NodeJS.Signals | null;
  try {
    [code, killedBy] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  } catch (error) {
    throw new KeelError('KEEL_INTERNAL', `could not strip the types of ${files.length} modules`, {
      cause: error,
    });
  }
  if (code !== 0) {
    throw new KeelError(
      'KEEL_INTERNAL',
      `stripping the types of ${files.length} modules failed (${killedBy ?? `exit ${code}`}): ${stderr.trim()}`,
    );
  }
}

/**
 * Removes all but the `keep` most recently used copies (never `current`), and what a process
 * that died while making one left behind.
 */
async function prune(cacheDirectory: string, current: string, keep: number): Promise<void> {
  const entries = await readdir(cacheDirectory, { withFileTypes: true });
  const folders = await Promise.all(
    entries
      .filter((entry) => entry.isDirectory())
      .map(async (entry) => {
        const path = join(cacheDirectory, entry.name);
        return { path, partial: entry.name.startsWith('.'), used: (await stat(path)).mtimeMs };
      }),
  );
  const copies = folders.filter((folder) => !folder.partial && folder.path !== current);
  copies.sort((left, right) => right.used - left.used);
  const abandoned = folders.filter(
    (folder) => folder.partial && Date.now() - folder.used > ABANDONED_AFTER_MS,
  );
  await Promise.all(
    [...copies.slice(Math.max(0, keep - 1)), ...abandoned].map((folder) =>
      rm(folder.path, { recursive: true, force: true }),
    ),
  );
}
