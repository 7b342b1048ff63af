import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  rename,
  unlink,
} from 'node:fs/promises';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { checkWorkspacePath } from './workspace-path-policy.ts';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;
/** Linux's `O_CLOEXEC` (Node's `constants` leaves it out): no command Keel starts inherits these. */
const O_CLOEXEC = 0o2000000;
const DIRECTORY_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
/**
 * Opening a FIFO for reading blocks until a writer comes, and would hold a thread of the pool
 * for good: `O_NONBLOCK` returns at once, and the file is refused as not regular after.
 */
const PROBE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
/** How much one read call takes at most. */
const READ_CHUNK_BYTES = 1 << 16;

/** One entry of a folder listing. */
export interface WorkspaceEntry {
  readonly name: string;
  readonly type: 'file' | 'directory' | 'symlink' | 'other';
}

/** What an atomic write did: the bytes and their SHA-256, for the audit entry. */
export interface WrittenFile {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly created: boolean;
}

/**
 * An agent's workspace root, and file access inside it that cannot be raced or escaped.
 *
 * Every path is checked by {@link checkWorkspacePath} first, then walked one name at a time
 * from a descriptor of the root: each folder is opened through `/proc/self/fd/<parent>/<name>`
 * with `O_NOFOLLOW | O_DIRECTORY`, the way `openat` would, so a symlink anywhere on the way
 * (placed before or during the call) fails the open instead of being followed, and a folder
 * renamed meanwhile cannot redirect it. The final file is opened the same way with
 * `O_NOFOLLOW`, and the real path of its descriptor is checked to be inside the root. Writes
 * go to a new temporary file in the same folder, are flushed, and renamed over the target
 * through the folder's descriptor; the folder is flushed after.
 *
 * When Keel runs as root, files and folders it creates are given to the workspace's owner, so
 * the commands that run as that owner in the sandbox can change them.
 *
 * @example
 * ```ts
 * const workspace = await Workspace.open('/srv/repos/app');
 * const text = await workspace.readText('src/app.ts', 1 << 20);
 * await workspace.writeAtomically('src/app.ts', Buffer.from(text.replace('a', 'b')));
 * ```
 */
export class Workspace {
  readonly root: string;
  readonly #owner: { readonly uid: number; readonly gid: number } | undefined;

  private constructor(root: string, owner: { uid: number; gid: number } | undefined) {
    this.root = root;
    this.#owner = owner;
  }

  /** Opens a workspace at a folder (its real path is used from then on). */
  static async open(folder: string): Promise<Workspace> {
    let root: string;
    try {
      root = await realpath(folder);
    } catch (error) {
      throw new KeelError('KEEL_NOT_FOUND', `workspace ${folder} does not exist`, {
        cause: error,
      });
    }
    const handle = await open(root, DIRECTORY_FLAGS);
    try {
      const status = await handle.stat();
      const runsAsRoot = process.getuid?.() === 0;
      return new Workspace(
        root,
        runsAsRoot && status.uid !== 0 ? { uid: status.uid, gid: status.gid } : undefined,
      );
    } finally {
      await handle.close();
    }
  }

  /** Reads a regular file as UTF-8, refusing one larger than `maxBytes`. */
  async readText(path: string, maxBytes: number): Promise<{ text: string; bytes: number }> {
    const { segments } = this.#check(path);
    if (segments.length === 0) throw notAFile(path);
    const folder = await this.#openFolder(segments.slice(0, -1), false);
    let file: FileHandle | undefined;
    try {
      file = await openIn(folder, segments.at(-1) as string, PROBE_FLAGS, path);
      await this.#assertInside(file, path);
      const status = await file.stat();
      if (!status.isFile()) throw notAFile(path);
      if (status.size > maxBytes) throw tooLarge(path, status.size, maxBytes);
      // The file may grow after the size was read (a command in the sandbox writing to it):
      // read one byte past the cap at most, never to the end.
      const content = await readAtMost(file, maxBytes + 1);
      if (content.length > maxBytes) throw tooLarge(path, (await file.stat()).size, maxBytes);
      return { text: content.toString('utf8'), bytes: content.length };
    } finally {
      await file?.close();
      await folder.close();
    }
  }

  /**
   * Replaces (or creates) a file atomically: temporary file, flush, rename, flush the folder.
   * Missing parent folders are created when `createFolders` is set.
   */
  async writeAtomically(
    path: string,
    content: Buffer,
    options: { readonly createFolders: boolean },
  ): Promise<WrittenFile> {
    const { segments, relative } = this.#check(path);
    if (segments.length === 0) throw notAFile(path);
    const name = segments.at(-1) as string;
    const folder = await this.#openFolder(segments.slice(0, -1), options.createFolders);
    const temporary = `.keel-${randomBytes(8).toString('hex')}.tmp`;
    let renamed = false;
    try {
      const created = !(await existsIn(folder, name));
      const file = await openIn(
        folder,
        temporary,
        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
        path,
        0o644,
      );
      try {
        await file.writeFile(content);
        if (this.#owner !== undefined) await file.chown(this.#owner.uid, this.#owner.gid);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(inFolder(folder, temporary), inFolder(folder, name));
      renamed = true;
      await folder.sync();
      return {
        path: relative,
        bytes: content.length,
        sha256: createHash('sha256').update(content).digest('hex'),
        created,
      };
    } catch (error) {
      throw fileError(error, path);
    } finally {
      if (!renamed) await unlink(inFolder(folder, temporary)).catch(ignoreMissing);
      await folder.close();
    }
  }

  /** The entries of a folder, sorted by name. */
  async list(path: string): Promise<WorkspaceEntry[]> {
    const { segments } = this.#check(path);
    const folder = await this.#openFolder(segments, false);
    try {
      const entries = await readdir(inFolder(folder, '.'), { withFileTypes: true });
      return entries
        .map((entry) => ({
          name: entry.name,
          type: entry.isFile()
            ? ('file' as const)
            : entry.isDirectory()
              ? ('directory' as const)
              : entry.isSymbolicLink()
                ? ('symlink' as const)
                : ('other' as const),
        }))
        .sort((left, right) => (left.name < right.name ? -1 : left.name > right.name ? 1 : 0));
    } finally {
      await folder.close();
    }
  }

  #check(path: string) {
    const checked = checkWorkspacePath(path);
    if (!checked.ok) {
      throw new KeelError(
        'KEEL_POLICY_VIOLATION',
        `path ${JSON.stringify(path)} refused: ${checked.reason}`,
        {
          details: { rule: checked.rule, path },
        },
      );
    }
    return checked;
  }

  /** Opens a folder inside the root one name at a time, never following a symlink. */
  async #openFolder(segments: readonly string[], create: boolean): Promise<FileHandle> {
    let current = await open(this.root, DIRECTORY_FLAGS);
    try {
      for (const [index, segment] of segments.entries()) {
        const shown = segments.slice(0, index + 1).join('/');
        if (create) {
          try {
            await mkdir(inFolder(current, segment), { mode: 0o755 });
            if (this.#owner !== undefined) {
              const made = await openIn(current, segment, DIRECTORY_FLAGS, shown);
              await made.chown(this.#owner.uid, this.#owner.gid).finally(() => made.close());
            }
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw fileError(error, shown);
          }
        }
        const next = await openIn(current, segment, DIRECTORY_FLAGS, shown);
        await current.close();
        current = next;
      }
      await this.#assertInside(current, segments.join('/') || '.');
      return current;
    } catch (error) {
      await current.close();
      throw error;
    }
  }

  async #assertInside(handle: FileHandle, path: string): Promise<void> {
    const real = await readlink(`/proc/self/fd/${handle.fd}`);
    if (real !== this.root && !real.startsWith(`${this.root}/`)) {
      throw new KeelError('KEEL_POLICY_VIOLATION', `${path} resolves outside the workspace`, {
        details: { rule: 'outside-workspace', path },
      });
    }
  }
}

/** A path that resolves through a folder's descriptor, like `openat(fd, name)`. */
function inFolder(folder: FileHandle, name: string): string {
  return `/proc/self/fd/${folder.fd}/${name}`;
}

async function openIn(
  folder: FileHandle,
  name: string,
  flags: number,
  shown: string,
  mode?: number,
): Promise<FileHandle> {
  try {
    return await open(inFolder(folder, name), flags, mode);
  } catch (error) {
    // O_DIRECTORY on a symlink says ENOTDIR: say what it really is.
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') {
      const status = await lstat(inFolder(folder, name)).catch(() => undefined);
      if (status?.isSymbolicLink() === true) throw fileError({ code: 'ELOOP' }, shown);
    }
    throw fileError(error, shown);
  }
}

async function existsIn(folder: FileHandle, name: string): Promise<boolean> {
  try {
    const handle = await open(inFolder(folder, name), PROBE_FLAGS);
    await handle.close();
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    if (code === 'ELOOP') return true;
    throw error;
  }
}

/** Reads from the start up to `limit` bytes, or to the end if that comes first. */
async function readAtMost(file: FileHandle, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  while (total < limit) {
    const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, limit - total));
    const { bytesRead } = await file.read(chunk, 0, chunk.length, total);
    if (bytesRead === 0) break;
    chunks.push(chunk.subarray(0, bytesRead));
    total += bytesRead;
  }
  return Buffer.concat(chunks, total);
}

function tooLarge(path: string, bytes: number, limit: number): KeelError {
  return new KeelError(
    'KEEL_PAYLOAD_TOO_LARGE',
    `${path} is ${bytes} bytes, more than the ${limit} a read may return; read it in parts with offset and limit`,
    { details: { path, bytes, limit } },
  );
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}

function notAFile(path: string): KeelError {
  return new KeelError('KEEL_INVALID_ARGUMENT', `${path} is not a regular file`, {
    details: { path },
  });
}

/** A file-system failure as a typed error that names the path, never the host's layout. */
function fileError(error: unknown, path: string): KeelError {
  if (error instanceof KeelError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return new KeelError('KEEL_NOT_FOUND', `${path} does not exist`, { details: { path } });
    case 'ELOOP':
    case 'EMLINK':
      return new KeelError('KEEL_POLICY_VIOLATION', `${path} goes through a symbolic link`, {
        details: { rule: 'symlink', path },
      });
    case 'ENOTDIR':
      return new KeelError('KEEL_INVALID_ARGUMENT', `a part of ${path} is not a folder`, {
        details: { path },
      });
    case 'EISDIR':
      return new KeelError('KEEL_INVALID_ARGUMENT', `${path} is a folder`, { details: { path } });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new KeelError('KEEL_POLICY_VIOLATION', `${path} may not be changed`, {
        details: { rule: 'permission', path },
      });
    case 'ENOSPC':
    case 'EDQUOT':
      return new KeelError('KEEL_STORAGE_FULL', `no space left to write ${path}`, {
        details: { path },
      });
    default:
      return new KeelError('KEEL_EXECUTOR_FAILED', `${path}: ${code ?? 'file operation failed'}`, {
        cause: error,
        details: { path, reason: code ?? null },
      });
  }
}
