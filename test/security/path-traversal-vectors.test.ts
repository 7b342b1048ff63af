/**
 * The path-traversal and symlink vectors a workspace must refuse: `..` in every spelling,
 * absolute and home paths, NUL, control and invisible characters, Unicode look-alikes of `/`
 * and `.`, over-long paths and names, denied files in any case; then, on a real folder, every
 * symlink trick (to `/etc`, to a file outside, as an intermediate folder, loops, dangling),
 * hard links, FIFOs, devices and sockets, and folders or files swapped for symlinks while reads
 * and writes run.
 *
 * Beside every workspace sits a folder with a sentinel file of known content: no vector may
 * return that content or change the sentinel (content, inode, mtime), nor leave anything
 * new outside the workspace.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { matchPath } from '../../src/kernel/capabilities/pattern-matchers.ts';
import type { ErrorCode } from '../../src/platform/errors/error-catalogue.ts';
import { isKeelError } from '../../src/platform/errors/keel-error.ts';
import { Workspace } from '../../src/services/tools/files/workspace.ts';
import {
  checkWorkspacePath,
  DENIED_PATH_PATTERNS,
} from '../../src/services/tools/files/workspace-path-policy.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

const SENTINEL = `KEEL-SENTINEL-${randomBytes(8).toString('hex')}`;
/** What the denied files planted inside the workspace hold: no read may return it either. */
const DENIED_BAIT = `KEEL-DENIED-${randomBytes(8).toString('hex')}`;
const runsAsRoot = process.getuid?.() === 0;

// ---------------------------------------------------------------------------------------------
// Lexical vectors: refused by checkWorkspacePath, and so by every Workspace method.

interface LexicalVector {
  readonly path: unknown;
  /** The rule that must refuse it. */
  readonly rule: string;
}

const PARENT = 'parent-segment';
const ABSOLUTE = 'absolute';
const HOME = 'home';
const LOOK_ALIKE = 'look-alike-separator';
const INVISIBLE = 'invisible-character';
const ODD = 'odd-name';
const DENIED = 'denied-path';
const NOT_A_STRING = 'not-a-string';

const LEXICAL_VECTORS: readonly LexicalVector[] = [
  // `..` wherever it stands, even where it would stay inside.
  { path: '..', rule: PARENT },
  { path: '../..', rule: PARENT },
  { path: '../', rule: PARENT },
  { path: '../outside/sentinel.txt', rule: PARENT },
  { path: 'a/../../b', rule: PARENT },
  { path: './../x', rule: PARENT },
  { path: 'a/b/../../../c', rule: PARENT },
  { path: 'a/..', rule: PARENT },
  { path: 'a//..//..//etc', rule: PARENT },
  // Absolute and home paths.
  { path: '/etc/passwd', rule: ABSOLUTE },
  { path: '//etc', rule: ABSOLUTE },
  { path: '/', rule: ABSOLUTE },
  { path: '/proc/self/root/etc/passwd', rule: ABSOLUTE },
  { path: '/proc/self/fd/0', rule: ABSOLUTE },
  { path: '~', rule: HOME },
  { path: '~root/.ssh', rule: HOME },
  { path: '~/.bashrc', rule: HOME },
  { path: './~', rule: HOME },
  { path: './/~/.bashrc', rule: HOME },
  // NUL ends the string for the kernel: `a\0/../../etc` would open `a`.
  { path: 'a\0b', rule: 'nul' },
  { path: 'notes.txt\0/../../../etc/passwd', rule: 'nul' },
  // Separators of other systems and Unicode look-alikes of `/` and `.`.
  { path: '..\\..\\x', rule: LOOK_ALIKE },
  { path: 'C:\\Windows\\win.ini', rule: LOOK_ALIKE },
  { path: '..\uff0f..\uff0fetc', rule: LOOK_ALIKE },
  { path: '..\u2215etc', rule: LOOK_ALIKE },
  { path: '..\u2044etc', rule: LOOK_ALIKE },
  { path: '..\u29f8etc', rule: LOOK_ALIKE },
  { path: '..\u2571etc', rule: LOOK_ALIKE },
  { path: '\uff0e\uff0e/etc', rule: LOOK_ALIKE },
  { path: '\u2024\u2024/etc', rule: LOOK_ALIKE },
  { path: '\u2025/etc', rule: LOOK_ALIKE },
  { path: '\u3002\u3002/etc', rule: LOOK_ALIKE },
  { path: '\uff61\uff61/etc', rule: LOOK_ALIKE },
  { path: '\ufe52\ufe52/etc', rule: LOOK_ALIKE },
  { path: 'a\u0338b', rule: LOOK_ALIKE },
  // Not in the list, but folds (NFKC) to a dot: DIGIT ONE FULL STOP is `1.`.
  { path: '\u2488/x', rule: LOOK_ALIKE },
  // Control, format and separator characters.
  { path: '\u202egnp.exe', rule: INVISIBLE },
  { path: '.\u200d./etc', rule: INVISIBLE },
  { path: '.\u200b./etc', rule: INVISIBLE },
  { path: '\ufeff../etc', rule: INVISIBLE },
  { path: 'a\nb', rule: INVISIBLE },
  { path: 'a\tb', rule: INVISIBLE },
  { path: 'a\rb', rule: INVISIBLE },
  { path: 'a\u007fb', rule: INVISIBLE },
  { path: 'a\u0085b', rule: INVISIBLE },
  { path: 'a\u2028b', rule: INVISIBLE },
  { path: '\ud800../etc', rule: 'malformed' },
  // Lengths.
  { path: 'a/'.repeat(2500), rule: 'too-long' },
  { path: 'x'.repeat(5000), rule: 'too-long' },
  { path: 'x'.repeat(300), rule: 'name-too-long' },
  { path: `dir/${'\u20ac'.repeat(86)}`, rule: 'name-too-long' },
  // Names the file system (or a person, or Windows) reads differently.
  { path: 'file.', rule: ODD },
  { path: '...', rule: ODD },
  { path: '.. ', rule: ODD },
  { path: ' ../etc', rule: ODD },
  { path: 'notes.txt ', rule: ODD },
  // Denied files, whatever the grant says, in any case and any spelling of the path.
  { path: '.env', rule: DENIED },
  { path: './.env', rule: DENIED },
  { path: 'config/.env.production', rule: DENIED },
  { path: '.envrc', rule: DENIED },
  { path: '.ssh/id_rsa', rule: DENIED },
  { path: 'home/.ssh/authorized_keys', rule: DENIED },
  { path: 'deploy/secrets/db.txt', rule: DENIED },
  { path: 'deploy/secrets', rule: DENIED },
  { path: 'server.pem', rule: DENIED },
  { path: 'keys/tls.KEY', rule: DENIED },
  { path: 'store.p12', rule: DENIED },
  { path: '.git/config', rule: DENIED },
  { path: '.git', rule: DENIED },
  { path: 'a//.git//HEAD', rule: DENIED },
  { path: 'vendor/lib/.git/hooks/pre-commit', rule: DENIED },
  { path: '.npmrc', rule: DENIED },
  { path: '.netrc', rule: DENIED },
  { path: '.git-credentials', rule: DENIED },
  { path: 'id_ed25519.pub', rule: DENIED },
  { path: '.aws/credentials', rule: DENIED },
  { path: '.docker/config.json', rule: DENIED },
  { path: '.kube/config', rule: DENIED },
  { path: '.ENV', rule: DENIED },
  { path: '.Git/config', rule: DENIED },
  { path: 'Secrets/prod.txt', rule: DENIED },
  { path: 'ID_RSA', rule: DENIED },
  // The workspace's own temporary files.
  { path: '.keel-0123456789abcdef.tmp', rule: DENIED },
  // Not a string at all.
  { path: '', rule: 'empty' },
  { path: undefined, rule: NOT_A_STRING },
  { path: null, rule: NOT_A_STRING },
  { path: 42, rule: NOT_A_STRING },
  { path: ['..', 'etc'], rule: NOT_A_STRING },
  { path: Buffer.from('../etc'), rule: NOT_A_STRING },
  { path: new String('../etc'), rule: NOT_A_STRING },
  { path: { toString: () => '../etc' }, rule: NOT_A_STRING },
];

/**
 * Paths that look like an escape to a person or to a decoding layer but are plain names to the
 * file system: allowed, and they must land where their `relative` says.
 */
const LITERAL_VECTORS: readonly { readonly path: string; readonly relative: string }[] = [
  { path: '%2e%2e/', relative: '%2e%2e' },
  { path: '%2e%2e/%2e%2e/outside/sentinel.txt', relative: '%2e%2e/%2e%2e/outside/sentinel.txt' },
  { path: '..%2f..%2foutside%2fsentinel.txt', relative: '..%2f..%2foutside%2fsentinel.txt' },
  { path: '%252e%252e/x', relative: '%252e%252e/x' },
  { path: '%c0%ae%c0%ae/x', relative: '%c0%ae%c0%ae/x' },
  { path: 'file:///etc/passwd', relative: 'file:/etc/passwd' },
  { path: 'proc/self/root/etc/passwd', relative: 'proc/self/root/etc/passwd' },
  { path: '..a/b..c', relative: '..a/b..c' },
  { path: './a/./b//c/', relative: 'a/b/c' },
  { path: 'C:/Windows/win.ini', relative: 'C:/Windows/win.ini' },
];

// ---------------------------------------------------------------------------------------------
// A workspace beside an outside folder holding the sentinel.

interface Arena extends AsyncDisposable {
  readonly base: string;
  readonly root: string;
  readonly outside: string;
  readonly sentinel: string;
  readonly workspace: Workspace;
}

async function openArena(): Promise<Arena> {
  const directory = await temporaryDirectory('keel-traversal-');
  const root = join(directory.path, 'workspace');
  const outside = join(directory.path, 'outside');
  await mkdir(root);
  await mkdir(outside);
  const sentinel = join(outside, 'sentinel.txt');
  await writeFile(sentinel, SENTINEL);
  return {
    base: directory.path,
    root,
    outside,
    sentinel,
    workspace: await Workspace.open(root),
    [Symbol.asyncDispose]: () => directory[Symbol.asyncDispose](),
  };
}

/** Everything outside the workspace a vector could touch. */
async function outsideState(arena: Arena) {
  const status = await stat(arena.sentinel, { bigint: true });
  return {
    sentinel: await readFile(arena.sentinel, 'utf8'),
    inode: status.ino,
    mtime: status.mtimeNs,
    outside: (await readdir(arena.outside, { recursive: true })).sort(),
    base: (await readdir(arena.base)).sort(),
  };
}

function assertNoLeak(result: unknown): void {
  const shown = JSON.stringify(result) ?? '';
  assert.ok(!shown.includes(SENTINEL), 'the sentinel outside the workspace was returned');
  assert.ok(!shown.includes(DENIED_BAIT), 'a denied file was returned');
}

function refusedWith(code: ErrorCode, rule?: string) {
  return (error: unknown): boolean => {
    assert.ok(isKeelError(error), `expected a KeelError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (rule !== undefined) assert.equal(error.details.rule, rule, error.message);
    return true;
  };
}

/** A path shown in a test name: invisible and non-ASCII characters escaped, long ones cut. */
function show(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Buffer.isBuffer(value)) return 'a Buffer';
  if (Array.isArray(value)) return `the array ${JSON.stringify(value)}`;
  if (value instanceof String) return 'a String object';
  if (typeof value === 'object') return 'an object with toString';
  if (typeof value !== 'string') return `the ${typeof value} ${String(value)}`;
  const escaped = JSON.stringify(value).replace(
    /[^\x20-\x7e]/gu,
    (symbol) => `\\u${symbol.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return escaped.length > 60 ? `${escaped.slice(0, 50)}…(${value.length} chars)` : escaped;
}

/**
 * Runs a call that meets a FIFO. Had it opened the FIFO blocking, it would wait for a writer
 * for ever, and hold a thread of libuv's pool so the test process could not exit: this guard
 * plays the writer after a while, so the call returns and the test fails instead of hanging.
 * It bounds a hang; it does not measure speed.
 */
async function guardFifo<T>(fifo: string, call: () => Promise<T>): Promise<T> {
  let released = false;
  const timer = setTimeout(() => {
    released = true;
    open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).then(
      (handle) => handle.close(),
      (error: NodeJS.ErrnoException) => {
        // ENXIO: nobody is reading, so nobody is blocked.
        if (error.code !== 'ENXIO') throw error;
      },
    );
  }, 5_000);
  const outcome = await call().then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  clearTimeout(timer);
  assert.equal(released, false, 'the call blocked on the FIFO until a writer came');
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

// ---------------------------------------------------------------------------------------------
// File-system vectors, each on a fresh workspace.

/** Unix socket servers opened by vectors, closed after the suite. */
const sockets: Server[] = [];

interface FileSystemVector {
  readonly name: string;
  readonly arrange?: (arena: Arena) => Promise<void>;
  readonly act: (workspace: Workspace, arena: Arena) => Promise<unknown>;
  /** The refusal expected, or `contained`: the call succeeds and stays inside. */
  readonly outcome: { readonly code: ErrorCode; readonly rule?: string } | 'contained';
  readonly verify?: (arena: Arena) => Promise<void>;
  readonly needsRoot?: boolean;
}

const SYMLINK = { code: 'KEEL_POLICY_VIOLATION', rule: 'symlink' } as const;
const NOT_A_FILE = { code: 'KEEL_INVALID_ARGUMENT' } as const;
const ONE_MB = 1 << 20;
const write = (text: string, createFolders = true) => ({
  content: Buffer.from(text),
  options: { createFolders },
});

async function assertRegularFile(path: string, content: string): Promise<void> {
  const status = await lstat(path);
  assert.ok(status.isFile(), `${path} is not a regular file`);
  assert.equal(await readFile(path, 'utf8'), content);
}

async function assertMissing(path: string): Promise<void> {
  await assert.rejects(lstat(path), { code: 'ENOENT' });
}

const FILE_SYSTEM_VECTORS: readonly FileSystemVector[] = [
  {
    name: 'a read through a symlink to /etc',
    arrange: (arena) => symlink('/etc', join(arena.root, 'etc')),
    act: (workspace) => workspace.readText('etc/passwd', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a read of /etc/hostname through a symlink to /',
    arrange: (arena) => symlink('/', join(arena.root, 'host')),
    act: (workspace) => workspace.readText('host/etc/hostname', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a listing of a folder reached through a symlink to /etc',
    arrange: (arena) => symlink('/etc', join(arena.root, 'etc')),
    act: (workspace) => workspace.list('etc'),
    outcome: SYMLINK,
  },
  {
    name: 'a listing of an outside folder through a symlink',
    arrange: (arena) => symlink(arena.outside, join(arena.root, 'link')),
    act: (workspace) => workspace.list('link'),
    outcome: SYMLINK,
  },
  {
    name: 'a listing below a symlinked folder',
    arrange: async (arena) => {
      await mkdir(join(arena.outside, 'inner'));
      await symlink(arena.outside, join(arena.root, 'link'));
    },
    act: (workspace) => workspace.list('link/inner'),
    outcome: SYMLINK,
  },
  {
    name: 'a read of a symlink to the sentinel (absolute target)',
    arrange: (arena) => symlink(arena.sentinel, join(arena.root, 'leak.txt')),
    act: (workspace) => workspace.readText('leak.txt', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a read of a symlink to the sentinel (relative target)',
    arrange: (arena) => symlink('../outside/sentinel.txt', join(arena.root, 'leak.txt')),
    act: (workspace) => workspace.readText('leak.txt', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a read of a symlink to the sentinel, nested in a real folder',
    arrange: async (arena) => {
      await mkdir(join(arena.root, 'docs'));
      await symlink('../../outside/sentinel.txt', join(arena.root, 'docs/readme.md'));
    },
    act: (workspace) => workspace.readText('docs/readme.md', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a read through a symlink to the parent folder',
    arrange: (arena) => symlink('..', join(arena.root, 'up')),
    act: (workspace) => workspace.readText('up/outside/sentinel.txt', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a read through a symlink to the workspace itself (inside, still refused)',
    arrange: async (arena) => {
      await writeFile(join(arena.root, 'a.txt'), 'inside');
      await symlink('.', join(arena.root, 'self'));
    },
    act: (workspace) => workspace.readText('self/a.txt', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a read of an absolute symlink to a file inside (still refused)',
    arrange: async (arena) => {
      await writeFile(join(arena.root, 'a.txt'), 'inside');
      await symlink(join(arena.root, 'a.txt'), join(arena.root, 'alias.txt'));
    },
    act: (workspace) => workspace.readText('alias.txt', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a write into a symlinked folder, creating folders',
    arrange: (arena) => symlink(arena.outside, join(arena.root, 'link')),
    act: (workspace) => {
      const { content, options } = write('escaped');
      return workspace.writeAtomically('link/new.txt', content, options);
    },
    outcome: SYMLINK,
    verify: (arena) => assertMissing(join(arena.outside, 'new.txt')),
  },
  {
    name: 'a write into a symlinked folder, without creating folders',
    arrange: (arena) => symlink(arena.outside, join(arena.root, 'link')),
    act: (workspace) => {
      const { content, options } = write('escaped', false);
      return workspace.writeAtomically('link/new.txt', content, options);
    },
    outcome: SYMLINK,
    verify: (arena) => assertMissing(join(arena.outside, 'new.txt')),
  },
  {
    name: 'a write that would create folders below a symlinked folder',
    arrange: (arena) => symlink(arena.outside, join(arena.root, 'link')),
    act: (workspace) => {
      const { content, options } = write('escaped');
      return workspace.writeAtomically('link/sub/deeper/new.txt', content, options);
    },
    outcome: SYMLINK,
    verify: (arena) => assertMissing(join(arena.outside, 'sub')),
  },
  {
    name: 'a write over the sentinel through a symlinked folder',
    arrange: (arena) => symlink(arena.outside, join(arena.root, 'link')),
    act: (workspace) => {
      const { content, options } = write('overwritten');
      return workspace.writeAtomically('link/sentinel.txt', content, options);
    },
    outcome: SYMLINK,
  },
  {
    name: 'a write through a symlink deeper in the path',
    arrange: async (arena) => {
      await mkdir(join(arena.root, 'real'));
      await symlink(arena.outside, join(arena.root, 'real/inner'));
    },
    act: (workspace) => {
      const { content, options } = write('escaped');
      return workspace.writeAtomically('real/inner/new.txt', content, options);
    },
    outcome: SYMLINK,
    verify: (arena) => assertMissing(join(arena.outside, 'new.txt')),
  },
  {
    name: 'a read of a symlink loop',
    arrange: (arena) => symlink('loop', join(arena.root, 'loop')),
    act: (workspace) => workspace.readText('loop', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a read through a symlink loop',
    arrange: (arena) => symlink('loop', join(arena.root, 'loop')),
    act: (workspace) => workspace.readText('loop/x', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a read through a two-link loop',
    arrange: async (arena) => {
      await symlink('b', join(arena.root, 'a'));
      await symlink('a', join(arena.root, 'b'));
    },
    act: (workspace) => workspace.readText('a/x', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a read of a dangling symlink',
    arrange: (arena) => symlink('../outside/later.txt', join(arena.root, 'dangling')),
    act: (workspace) => workspace.readText('dangling', ONE_MB),
    outcome: SYMLINK,
  },
  {
    name: 'a write over a dangling symlink replaces the link, never creates its target',
    arrange: (arena) => symlink('../outside/later.txt', join(arena.root, 'dangling')),
    act: (workspace) => {
      const { content, options } = write('replaced');
      return workspace.writeAtomically('dangling', content, options);
    },
    outcome: 'contained',
    verify: async (arena) => {
      await assertMissing(join(arena.outside, 'later.txt'));
      await assertRegularFile(join(arena.root, 'dangling'), 'replaced');
    },
  },
  {
    name: 'a write over a symlink to the sentinel replaces the link, not the sentinel',
    arrange: (arena) => symlink(arena.sentinel, join(arena.root, 'leak.txt')),
    act: (workspace) => {
      const { content, options } = write('replaced');
      return workspace.writeAtomically('leak.txt', content, options);
    },
    outcome: 'contained',
    verify: (arena) => assertRegularFile(join(arena.root, 'leak.txt'), 'replaced'),
  },
  {
    name: 'a write over a symlink to a folder replaces the link, not the folder',
    arrange: (arena) => symlink(arena.outside, join(arena.root, 'link')),
    act: (workspace) => {
      const { content, options } = write('replaced');
      return workspace.writeAtomically('link', content, options);
    },
    outcome: 'contained',
    verify: (arena) => assertRegularFile(join(arena.root, 'link'), 'replaced'),
  },
  {
    name: 'a write over a hard link to a file outside replaces the link, not the file',
    arrange: async (arena) => {
      await writeFile(join(arena.outside, 'linked.txt'), 'outside original');
      await link(join(arena.outside, 'linked.txt'), join(arena.root, 'hard.txt'));
    },
    act: (workspace) => {
      const { content, options } = write('replaced');
      return workspace.writeAtomically('hard.txt', content, options);
    },
    outcome: 'contained',
    verify: async (arena) => {
      await assertRegularFile(join(arena.outside, 'linked.txt'), 'outside original');
      assert.equal((await stat(join(arena.outside, 'linked.txt'))).nlink, 1);
      await assertRegularFile(join(arena.root, 'hard.txt'), 'replaced');
    },
  },
  {
    name: 'a read of a FIFO, without blocking on it',
    arrange: async (arena) => {
      execFileSync('mkfifo', [join(arena.root, 'fifo')]);
    },
    act: (workspace, arena) =>
      guardFifo(join(arena.root, 'fifo'), () => workspace.readText('fifo', ONE_MB)),
    outcome: NOT_A_FILE,
  },
  {
    name: 'a write over a FIFO replaces it, without blocking on it',
    arrange: async (arena) => {
      execFileSync('mkfifo', [join(arena.root, 'fifo')]);
    },
    act: (workspace, arena) => {
      const { content, options } = write('replaced');
      return guardFifo(join(arena.root, 'fifo'), () =>
        workspace.writeAtomically('fifo', content, options),
      );
    },
    outcome: 'contained',
    verify: (arena) => assertRegularFile(join(arena.root, 'fifo'), 'replaced'),
  },
  {
    name: 'a read through a FIFO taken for a folder',
    arrange: async (arena) => {
      execFileSync('mkfifo', [join(arena.root, 'fifo')]);
    },
    act: (workspace) => workspace.readText('fifo/x', ONE_MB),
    outcome: NOT_A_FILE,
  },
  {
    name: 'a listing of a FIFO',
    arrange: async (arena) => {
      execFileSync('mkfifo', [join(arena.root, 'fifo')]);
    },
    act: (workspace) => workspace.list('fifo'),
    outcome: NOT_A_FILE,
  },
  {
    name: 'a read of a character device (a copy of /dev/zero)',
    arrange: async (arena) => {
      execFileSync('mknod', [join(arena.root, 'zero'), 'c', '1', '5']);
    },
    act: (workspace) => workspace.readText('zero', ONE_MB),
    outcome: NOT_A_FILE,
    needsRoot: true,
  },
  {
    name: 'a read of a block device node',
    arrange: async (arena) => {
      execFileSync('mknod', [join(arena.root, 'disk'), 'b', '7', '0']);
    },
    act: (workspace) => workspace.readText('disk', ONE_MB),
    outcome: NOT_A_FILE,
    needsRoot: true,
  },
  {
    name: 'a read of a Unix socket',
    arrange: async (arena) => {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(join(arena.root, 'socket'), resolve));
      sockets.push(server);
    },
    act: (workspace) => workspace.readText('socket', ONE_MB),
    outcome: { code: 'KEEL_EXECUTOR_FAILED' },
  },
  {
    name: 'a read of the workspace folder itself',
    act: (workspace) => workspace.readText('.', ONE_MB),
    outcome: NOT_A_FILE,
  },
  {
    name: 'a write over the workspace folder itself',
    act: (workspace) => {
      const { content, options } = write('x');
      return workspace.writeAtomically('./', content, options);
    },
    outcome: NOT_A_FILE,
  },
  {
    name: 'a read of a denied file that exists',
    arrange: (arena) => writeFile(join(arena.root, '.env'), DENIED_BAIT),
    act: (workspace) => workspace.readText('.env', ONE_MB),
    outcome: { code: 'KEEL_POLICY_VIOLATION', rule: DENIED },
  },
  {
    name: 'a write over a denied file that exists',
    arrange: async (arena) => {
      await mkdir(join(arena.root, '.git'));
      await writeFile(join(arena.root, '.git/config'), DENIED_BAIT);
    },
    act: (workspace) => {
      const { content, options } = write('[core]\n\thooksPath = /tmp/evil\n');
      return workspace.writeAtomically('.git/config', content, options);
    },
    outcome: { code: 'KEEL_POLICY_VIOLATION', rule: DENIED },
    verify: (arena) => assertRegularFile(join(arena.root, '.git/config'), DENIED_BAIT),
  },
  {
    name: 'a listing of .git',
    arrange: async (arena) => {
      await mkdir(join(arena.root, '.git/hooks'), { recursive: true });
    },
    act: (workspace) => workspace.list('.git/hooks'),
    outcome: { code: 'KEEL_POLICY_VIOLATION', rule: DENIED },
  },
  {
    name: 'a read of a percent-encoded `..` (a literal name that does not exist)',
    act: (workspace) => workspace.readText('..%2foutside%2fsentinel.txt', ONE_MB),
    outcome: { code: 'KEEL_NOT_FOUND' },
  },
];

// ---------------------------------------------------------------------------------------------

/**
 * How a call may fail while its path is being swapped: the name is missing, or a symlink. When
 * the symlink is gone again by the time the failure is explained, a symlink taken for a folder
 * reads as "not a folder": still a refusal.
 */
function assertRaceRefusal(failure: unknown): void {
  assert.ok(isKeelError(failure), String(failure));
  assert.ok(
    failure.code === 'KEEL_NOT_FOUND' ||
      failure.code === 'KEEL_INVALID_ARGUMENT' ||
      (failure.code === 'KEEL_POLICY_VIOLATION' && failure.details.rule === 'symlink'),
    `${failure.code}: ${failure.message}`,
  );
}

describe('path traversal vectors', () => {
  it('has a table of at least 50 vectors', () => {
    const total = LEXICAL_VECTORS.length + LITERAL_VECTORS.length + FILE_SYSTEM_VECTORS.length;
    assert.ok(total >= 50, `only ${total} vectors`);
  });

  describe('lexical vectors', () => {
    let arena: Arena;
    before(async () => {
      arena = await openArena();
      // Plant every denied file, so a refusal is not merely a missing file.
      for (const { path, rule } of LEXICAL_VECTORS) {
        if (rule !== DENIED || typeof path !== 'string' || path.endsWith('secrets')) continue;
        const target = join(arena.root, path);
        if (path === '.git') continue;
        await mkdir(join(target, '..'), { recursive: true });
        await writeFile(target, DENIED_BAIT);
      }
    });
    after(() => arena[Symbol.asyncDispose]());

    for (const vector of LEXICAL_VECTORS) {
      it(`refuses ${show(vector.path)} by ${vector.rule}`, async () => {
        const verdict = checkWorkspacePath(vector.path);
        assert.equal(verdict.ok, false);
        assert.ok(!verdict.ok);
        assert.equal(verdict.rule, vector.rule, verdict.reason);

        const untouched = await outsideState(arena);
        const path = vector.path as string;
        const refused = refusedWith('KEEL_POLICY_VIOLATION', vector.rule);
        await assert.rejects(arena.workspace.readText(path, ONE_MB), refused);
        await assert.rejects(arena.workspace.list(path), refused);
        await assert.rejects(
          arena.workspace.writeAtomically(path, Buffer.from('x'), { createFolders: true }),
          refused,
        );
        assert.deepEqual(await outsideState(arena), untouched);
      });
    }

    it('left every planted denied file as it was', async () => {
      for (const { path, rule } of LEXICAL_VECTORS) {
        if (rule !== DENIED || typeof path !== 'string') continue;
        if (path === '.git' || path.endsWith('secrets')) continue;
        assert.equal(await readFile(join(arena.root, path), 'utf8'), DENIED_BAIT, path);
      }
    });
  });

  describe('literal names that only look like an escape', () => {
    for (const vector of LITERAL_VECTORS) {
      it(`keeps ${show(vector.path)} inside as ${show(vector.relative)}`, async () => {
        await using arena = await openArena();
        const verdict = checkWorkspacePath(vector.path);
        assert.ok(verdict.ok, 'a literal name is allowed');
        assert.equal(verdict.relative, vector.relative);

        const untouched = await outsideState(arena);
        await assert.rejects(
          arena.workspace.readText(vector.path, ONE_MB),
          refusedWith('KEEL_NOT_FOUND'),
        );
        const written = await arena.workspace.writeAtomically(vector.path, Buffer.from('literal'), {
          createFolders: true,
        });
        assert.equal(written.path, vector.relative);
        const landed = await realpath(join(arena.root, vector.relative));
        assert.equal(landed, join(arena.root, vector.relative));
        assert.equal(await readFile(landed, 'utf8'), 'literal');
        assert.deepEqual(await arena.workspace.readText(vector.path, ONE_MB), {
          text: 'literal',
          bytes: 7,
        });
        assert.deepEqual(await outsideState(arena), untouched);
      });
    }
  });

  describe('file-system vectors', () => {
    after(async () => {
      await Promise.all(
        sockets.map(
          (server) =>
            new Promise<void>((resolve, reject) =>
              server.close((error) => (error ? reject(error) : resolve())),
            ),
        ),
      );
    });

    for (const vector of FILE_SYSTEM_VECTORS) {
      const expected =
        vector.outcome === 'contained'
          ? 'stays inside'
          : `refuses it with ${vector.outcome.code}${vector.outcome.rule ? ` (${vector.outcome.rule})` : ''}`;
      const skip = vector.needsRoot === true && !runsAsRoot ? 'needs root for mknod' : false;
      it(`${vector.name}: ${expected}`, { skip }, async () => {
        await using arena = await openArena();
        await vector.arrange?.(arena);
        const untouched = await outsideState(arena);
        const etcBefore = (await readdir('/etc')).sort();

        const result = await vector.act(arena.workspace, arena).then(
          (value) => ({ ok: true as const, value }),
          (error: unknown) => ({ ok: false as const, error }),
        );
        if (vector.outcome === 'contained') {
          if (!result.ok) throw result.error;
        } else {
          const { code, rule } = vector.outcome;
          assert.equal(result.ok, false, `expected a refusal, got ${JSON.stringify(result)}`);
          if (!result.ok) refusedWith(code, rule)(result.error);
        }
        assertNoLeak(result);

        await vector.verify?.(arena);
        assert.deepEqual(await outsideState(arena), untouched);
        assert.deepEqual((await readdir('/etc')).sort(), etcBefore);
      });
    }

    it('reads a hard link to a file outside like the file itself (documented limit)', async () => {
      // A hard link is the file: nothing on the inode says which name was first. Keel cannot
      // tell it from any other file, so containment of hard links rests on the kernel
      // (fs.protected_hardlinks=1: a sandboxed user may only link files it owns or may write)
      // and on workspaces living on a file system of their own.
      await using arena = await openArena();
      await writeFile(join(arena.outside, 'linked.txt'), 'outside, hard-linked');
      await link(join(arena.outside, 'linked.txt'), join(arena.root, 'hard.txt'));
      assert.deepEqual(await arena.workspace.readText('hard.txt', ONE_MB), {
        text: 'outside, hard-linked',
        bytes: 20,
      });
    });
  });

  describe('races', () => {
    it('never follows a folder swapped for a symlink while reads and writes run', async (t) => {
      await using arena = await openArena();
      const folder = join(arena.root, 'd');
      const away = join(arena.root, 'd.away');
      const target = join(arena.outside, 'target');
      await mkdir(target);
      await writeFile(join(target, 'file'), SENTINEL);
      await writeFile(join(target, 'outside-marker.txt'), SENTINEL);
      await mkdir(folder);
      await writeFile(join(folder, 'file'), 'inside');
      const untouched = await outsideState(arena);
      const targetBefore = await stat(join(target, 'file'), { bigint: true });

      let swapping = true;
      let swaps = 0;
      const texts: string[] = [];
      const listed: string[] = [];
      const failures: unknown[] = [];
      let writes = 0;
      const record = (error: unknown) => {
        failures.push(error);
      };
      // Bounds the run; the outcome does not depend on it.
      const deadline = Date.now() + 2_000;
      const swapper = (async () => {
        try {
          for (; swaps < 300 && Date.now() < deadline; swaps += 1) {
            await rename(folder, away);
            await symlink(target, folder);
            await unlink(folder);
            await rename(away, folder);
          }
        } finally {
          swapping = false;
        }
      })();
      const reader = (async () => {
        while (swapping) {
          await arena.workspace.readText('d/file', ONE_MB).then(({ text }) => {
            texts.push(text);
          }, record);
        }
      })();
      const writer = (async () => {
        while (swapping) {
          await arena.workspace
            .writeAtomically('d/file', Buffer.from('written'), { createFolders: false })
            .then(() => {
              writes += 1;
            }, record);
        }
      })();
      const lister = (async () => {
        while (swapping) {
          await arena.workspace.list('d').then((entries) => {
            listed.push(...entries.map((entry) => entry.name));
          }, record);
        }
      })();
      await Promise.all([swapper, reader, writer, lister]);

      t.diagnostic(
        `${swaps} swaps; ${texts.length} reads, ${writes} writes, ${listed.length} names listed, ${failures.length} refusals`,
      );
      assert.ok(swaps > 0, 'the swapper ran');
      assert.ok(texts.length + writes + listed.length + failures.length > 0, 'calls ran');
      assert.ok(!texts.includes(SENTINEL), 'a read followed the swapped symlink');
      for (const text of texts) assert.ok(text === 'inside' || text === 'written', text);
      for (const name of listed) {
        assert.ok(name === 'file' || /^\.keel-[0-9a-f]{16}\.tmp$/.test(name), name);
      }
      for (const failure of failures) assertRaceRefusal(failure);
      assert.deepEqual((await readdir(target)).sort(), ['file', 'outside-marker.txt']);
      assert.equal(await readFile(join(target, 'file'), 'utf8'), SENTINEL);
      const targetAfter = await stat(join(target, 'file'), { bigint: true });
      assert.equal(targetAfter.mtimeNs, targetBefore.mtimeNs);
      assert.equal(targetAfter.ino, targetBefore.ino);
      assert.deepEqual(await outsideState(arena), untouched);
      assert.deepEqual((await readdir(arena.root)).sort(), ['d']);
    });

    it('never follows a file swapped for a symlink while reads and writes run', async (t) => {
      await using arena = await openArena();
      const file = join(arena.root, 'file.txt');
      const away = join(arena.root, 'file.away');
      await writeFile(file, 'inside');
      const untouched = await outsideState(arena);

      let swapping = true;
      let swaps = 0;
      const texts: string[] = [];
      const failures: unknown[] = [];
      const record = (error: unknown) => {
        failures.push(error);
      };
      const deadline = Date.now() + 2_000;
      const swapper = (async () => {
        try {
          for (; swaps < 300 && Date.now() < deadline; swaps += 1) {
            await rename(file, away).catch((error: NodeJS.ErrnoException) => {
              // The writer may have just replaced it; the next round renames it.
              if (error.code !== 'ENOENT') throw error;
            });
            await symlink(arena.sentinel, file).catch((error: NodeJS.ErrnoException) => {
              if (error.code !== 'EEXIST') throw error;
            });
            await rename(away, file).catch((error: NodeJS.ErrnoException) => {
              if (error.code !== 'ENOENT') throw error;
            });
          }
        } finally {
          swapping = false;
        }
      })();
      const reader = (async () => {
        while (swapping) {
          await arena.workspace.readText('file.txt', ONE_MB).then(({ text }) => {
            texts.push(text);
          }, record);
        }
      })();
      const writer = (async () => {
        while (swapping) {
          await arena.workspace
            .writeAtomically('file.txt', Buffer.from('written'), { createFolders: false })
            .catch(record);
        }
      })();
      await Promise.all([swapper, reader, writer]);

      t.diagnostic(`${swaps} swaps; ${texts.length} reads, ${failures.length} refusals`);
      assert.ok(swaps > 0, 'the swapper ran');
      assert.ok(!texts.includes(SENTINEL), 'a read followed the swapped symlink');
      for (const text of texts) assert.ok(text === 'inside' || text === 'written', text);
      for (const failure of failures) assertRaceRefusal(failure);
      assert.deepEqual(await outsideState(arena), untouched);
      assert.ok((await lstat(file)).isFile());
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Properties.

/** Any UTF-16 code unit, lone surrogates included. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
const anyCodeUnits = fc.string({ unit: codeUnit, maxLength: 64 });

/** Fragments that matter to the policy, mixed with arbitrary ones. */
const FRAGMENTS = [
  ...['..', '.', '', '~', '~root', '...', '. ', '.. ', '%2e%2e', '..%2f', '\\', '..\\..'],
  ...['.env', '.ENV', '.env.local', '.envrc', '.git', '.Git', 'HEAD', 'config', '.ssh'],
  ...['id_rsa', 'id_ed25519.pub', 'secrets', '.secrets', 'x.pem', 'tls.KEY', 'tls.\u212aey'],
  ...['.npmrc', '.aws', 'credentials', '.keel-ab.tmp', 'a', 'b', 'src', 'a.', ' a', 'a '],
  ...['\uff0f', '\u2215', '\u2044', '\u29f8', '\uff0e\uff0e', '\u2024', '\u3002', '\u2488'],
  ...['\u202e', '\u200d', '\n', '\t', '\u007f', '\0', '\ud800', '\u0130', 'x'.repeat(256)],
];
const fragment = fc.oneof(
  fc.constantFrom(...FRAGMENTS),
  fc.string({ unit: 'grapheme-ascii', maxLength: 8 }),
  fc.string({ unit: codeUnit, maxLength: 4 }),
);
const fragmentPath = fc
  .tuple(fc.constantFrom('', '/', './', '~', '../', '//'), fc.array(fragment, { maxLength: 10 }))
  .map(([prefix, parts]) => prefix + parts.join('/'));
const nonString = fc.oneof(
  fc.anything().filter((value) => typeof value !== 'string'),
  fc.constantFrom(
    Symbol('..'),
    10n,
    () => '../etc',
    {
      toString() {
        throw new Error('hostile');
      },
    },
    new Proxy(
      {},
      {
        get() {
          throw new Error('hostile');
        },
      },
    ),
  ),
);

/** What every accepted path must satisfy, checked without the policy's own code. */
function assertSafe(value: unknown): void {
  const verdict = checkWorkspacePath(value);
  if (!verdict.ok) {
    assert.equal(typeof verdict.rule, 'string');
    return;
  }
  const { relative, segments } = verdict;
  assert.equal(typeof value, 'string');
  assert.ok(!relative.startsWith('/'), relative);
  assert.ok(!relative.split('/').includes('..'), relative);
  assert.ok(!relative.includes('\0'), relative);
  assert.equal(relative, segments.length === 0 ? '.' : segments.join('/'));
  for (const segment of segments) {
    assert.ok(segment !== '' && segment !== '.' && segment !== '..', relative);
    assert.ok(Buffer.byteLength(segment) <= 255, relative);
  }
  for (const pattern of DENIED_PATH_PATTERNS) {
    assert.ok(!matchPath(pattern, relative.toLowerCase()), `${relative} matches ${pattern}`);
  }
  // Checking the result again changes nothing.
  assert.deepEqual(checkWorkspacePath(relative), verdict);
}

describe('checkWorkspacePath properties', () => {
  it('never throws, and accepts only safe paths, on strings of any code units', () => {
    fc.assert(fc.property(anyCodeUnits, assertSafe), { numRuns: 2_000 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 64 }), assertSafe), {
      numRuns: 1_000,
    });
  });

  it('never throws, and accepts only safe paths, on fragments joined with /', () => {
    fc.assert(fc.property(fragmentPath, assertSafe), { numRuns: 3_000 });
  });

  it('never throws on long strings around the length limits', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary-ascii', minLength: 3_900, maxLength: 4_200 }),
        assertSafe,
      ),
      { numRuns: 50 },
    );
  });

  it('refuses every non-string without throwing', () => {
    fc.assert(
      fc.property(nonString, (value) => {
        const verdict = checkWorkspacePath(value);
        assert.equal(verdict.ok, false);
        assert.ok(!verdict.ok);
        assert.equal(verdict.rule, NOT_A_STRING);
      }),
      { numRuns: 500 },
    );
  });

  it('lands every accepted write inside the workspace', async () => {
    await using arena = await openArena();
    await symlink(arena.outside, join(arena.root, 'link'));
    const untouched = await outsideState(arena);
    await fc.assert(
      fc.asyncProperty(fragmentPath, async (path) => {
        const content = Buffer.from(`content of ${path}`);
        const outcome = await arena.workspace
          .writeAtomically(path, content, { createFolders: true })
          .then(
            (written) => ({ ok: true as const, written }),
            (error: unknown) => ({ ok: false as const, error }),
          );
        if (!outcome.ok) {
          assert.ok(isKeelError(outcome.error), String(outcome.error));
          return;
        }
        const landed = await realpath(join(arena.root, outcome.written.path));
        assert.ok(landed.startsWith(`${arena.root}/`), landed);
        assert.deepEqual(await readFile(landed), content);
      }),
      { numRuns: 300 },
    );
    assert.deepEqual(await outsideState(arena), untouched);
  });
});
