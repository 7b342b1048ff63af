import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chown,
  mkdir,
  open,
  readdir,
  readFile,
  stat,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { temporaryDirectory } from '../../../../test/support/temporary-directory.ts';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { Workspace } from './workspace.ts';

const runsAsRoot = process.getuid?.() === 0;

async function openWorkspace() {
  const directory = await temporaryDirectory('keel-workspace-');
  return {
    root: directory.path,
    workspace: await Workspace.open(directory.path),
    [Symbol.asyncDispose]: () => directory[Symbol.asyncDispose](),
  };
}

function failsWith(code: string, details: Record<string, unknown> = {}) {
  return (error: unknown): boolean => {
    assert.ok(isKeelError(error), `expected a KeelError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    for (const [key, value] of Object.entries(details)) assert.equal(error.details[key], value);
    return true;
  };
}

/** Every name under a folder, at any depth. */
async function allNames(folder: string): Promise<string[]> {
  return (await readdir(folder, { recursive: true })).sort();
}

function temporaryFiles(names: readonly string[]): string[] {
  return names.filter((name) => /(^|\/)\.keel-[^/]*\.tmp$/.test(name));
}

const sha256 = (content: Buffer | string) => createHash('sha256').update(content).digest('hex');

describe('Workspace.open', () => {
  it('refuses a folder that does not exist', async () => {
    await using directory = await temporaryDirectory();
    await assert.rejects(
      Workspace.open(join(directory.path, 'missing')),
      failsWith('KEEL_NOT_FOUND'),
    );
  });

  it('uses the real path of a folder opened through a symlink', async () => {
    await using directory = await temporaryDirectory();
    await mkdir(join(directory.path, 'real'));
    await symlink(join(directory.path, 'real'), join(directory.path, 'alias'));
    const workspace = await Workspace.open(join(directory.path, 'alias'));
    assert.equal(workspace.root, join(directory.path, 'real'));
  });
});

describe('Workspace.writeAtomically', () => {
  it('creates a file and reports its path, bytes, SHA-256 and that it was created', async () => {
    await using context = await openWorkspace();
    const content = Buffer.from('héllo\n');
    const written = await context.workspace.writeAtomically('notes.txt', content, {
      createFolders: false,
    });
    assert.deepEqual(written, {
      path: 'notes.txt',
      bytes: 7,
      sha256: sha256(content),
      created: true,
    });
    assert.deepEqual(await readFile(join(context.root, 'notes.txt')), content);
  });

  it('replaces a file whole: created is false and a reader of the old file keeps it', async () => {
    await using context = await openWorkspace();
    const path = join(context.root, 'notes.txt');
    await writeFile(path, 'old content');
    const before = await stat(path);
    await using reader = await open(path, 'r');

    const written = await context.workspace.writeAtomically('notes.txt', Buffer.from('new'), {
      createFolders: false,
    });
    assert.equal(written.created, false);
    assert.equal(written.bytes, 3);
    assert.equal(written.sha256, sha256('new'));
    assert.equal(await readFile(path, 'utf8'), 'new');
    assert.notEqual((await stat(path)).ino, before.ino, 'renamed over, not rewritten in place');
    assert.equal((await reader.readFile()).toString('utf8'), 'old content');
  });

  it('writes empty and binary content byte for byte', async () => {
    await using context = await openWorkspace();
    const binary = Buffer.from([0, 255, 0xc3, 0x28, 10, 13, 0]);
    const empty = await context.workspace.writeAtomically('empty', Buffer.alloc(0), {
      createFolders: false,
    });
    assert.deepEqual(empty, { path: 'empty', bytes: 0, sha256: sha256(''), created: true });
    const written = await context.workspace.writeAtomically('blob.bin', binary, {
      createFolders: false,
    });
    assert.equal(written.sha256, sha256(binary));
    assert.deepEqual(await readFile(join(context.root, 'blob.bin')), binary);
  });

  it('reports the path in its plain form', async () => {
    await using context = await openWorkspace();
    const written = await context.workspace.writeAtomically(
      './docs//guide/./a.md',
      Buffer.from('a'),
      {
        createFolders: true,
      },
    );
    assert.equal(written.path, 'docs/guide/a.md');
    assert.equal(await readFile(join(context.root, 'docs/guide/a.md'), 'utf8'), 'a');
  });

  it('creates missing folders only when createFolders is set', async () => {
    await using context = await openWorkspace();
    await assert.rejects(
      context.workspace.writeAtomically('a/b/c.txt', Buffer.from('x'), { createFolders: false }),
      failsWith('KEEL_NOT_FOUND', { path: 'a' }),
    );
    assert.deepEqual(await allNames(context.root), []);

    await context.workspace.writeAtomically('a/b/c.txt', Buffer.from('x'), {
      createFolders: true,
    });
    assert.deepEqual(await allNames(context.root), ['a', 'a/b', 'a/b/c.txt']);
    assert.ok((await stat(join(context.root, 'a/b'))).isDirectory());

    // Folders that exist already are fine either way.
    await context.workspace.writeAtomically('a/b/d.txt', Buffer.from('y'), {
      createFolders: true,
    });
    await context.workspace.writeAtomically('a/e.txt', Buffer.from('z'), {
      createFolders: false,
    });
    assert.deepEqual(await allNames(context.root), [
      'a',
      'a/b',
      'a/b/c.txt',
      'a/b/d.txt',
      'a/e.txt',
    ]);
  });

  it('leaves no temporary file behind after many writes', async () => {
    await using context = await openWorkspace();
    for (let round = 0; round < 20; round += 1) {
      await context.workspace.writeAtomically(`f${round % 3}.txt`, Buffer.from(`${round}`), {
        createFolders: true,
      });
      await context.workspace.writeAtomically(`deep/f${round % 2}.txt`, Buffer.from('x'), {
        createFolders: true,
      });
    }
    assert.deepEqual(temporaryFiles(await allNames(context.root)), []);
    assert.deepEqual(await allNames(context.root), [
      'deep',
      'deep/f0.txt',
      'deep/f1.txt',
      'f0.txt',
      'f1.txt',
      'f2.txt',
    ]);
  });

  it('leaves no temporary file behind when the final rename fails', async () => {
    await using context = await openWorkspace();
    await mkdir(join(context.root, 'src/lib'), { recursive: true });
    await writeFile(join(context.root, 'src/lib/a.ts'), 'export {};');
    // The temporary file is written, then renaming it over a folder fails.
    await assert.rejects(
      context.workspace.writeAtomically('src/lib', Buffer.from('x'), { createFolders: false }),
      failsWith('KEEL_INVALID_ARGUMENT', { path: 'src/lib' }),
    );
    assert.deepEqual(await allNames(context.root), ['src', 'src/lib', 'src/lib/a.ts']);
  });

  it('refuses a path whose parent is a file, leaving nothing behind', async () => {
    await using context = await openWorkspace();
    await writeFile(join(context.root, 'notes.txt'), 'a file');
    for (const createFolders of [false, true]) {
      await assert.rejects(
        context.workspace.writeAtomically('notes.txt/inner.txt', Buffer.from('x'), {
          createFolders,
        }),
        failsWith('KEEL_INVALID_ARGUMENT'),
      );
    }
    assert.deepEqual(await allNames(context.root), ['notes.txt']);
    assert.equal(await readFile(join(context.root, 'notes.txt'), 'utf8'), 'a file');
  });

  it('refuses the workspace itself as a file', async () => {
    await using context = await openWorkspace();
    await assert.rejects(
      context.workspace.writeAtomically('.', Buffer.from('x'), { createFolders: true }),
      failsWith('KEEL_INVALID_ARGUMENT'),
    );
    assert.deepEqual(await allNames(context.root), []);
  });

  it('gives the files and folders it creates to the owner of the workspace', {
    skip: runsAsRoot ? false : 'only root can give files away',
  }, async () => {
    await using directory = await temporaryDirectory();
    await chown(directory.path, 4321, 4322);
    const workspace = await Workspace.open(directory.path);
    await workspace.writeAtomically('made/by/keel.txt', Buffer.from('x'), {
      createFolders: true,
    });
    for (const path of ['made', 'made/by', 'made/by/keel.txt']) {
      const status = await stat(join(directory.path, path));
      assert.deepEqual([status.uid, status.gid], [4321, 4322], path);
    }
  });
});

describe('Workspace.readText', () => {
  it('returns the text and its size in bytes', async () => {
    await using context = await openWorkspace();
    await mkdir(join(context.root, 'src'));
    await writeFile(join(context.root, 'src/app.ts'), 'const café = 1;\n');
    assert.deepEqual(await context.workspace.readText('src/app.ts', 1024), {
      text: 'const café = 1;\n',
      bytes: 17,
    });
    assert.deepEqual(await context.workspace.readText('./src//app.ts', 1024), {
      text: 'const café = 1;\n',
      bytes: 17,
    });
  });

  it('reads a file of exactly the cap and refuses one byte more', async () => {
    await using context = await openWorkspace();
    await writeFile(join(context.root, 'exact.txt'), 'x'.repeat(100));
    await writeFile(join(context.root, 'over.txt'), 'x'.repeat(101));
    assert.equal((await context.workspace.readText('exact.txt', 100)).bytes, 100);
    await assert.rejects(
      context.workspace.readText('over.txt', 100),
      failsWith('KEEL_PAYLOAD_TOO_LARGE', { path: 'over.txt', bytes: 101, limit: 100 }),
    );
    await writeFile(join(context.root, 'empty.txt'), '');
    assert.deepEqual(await context.workspace.readText('empty.txt', 0), { text: '', bytes: 0 });
  });

  it('never returns more than the cap while the file grows', async () => {
    await using context = await openWorkspace();
    const path = join(context.root, 'growing.log');
    await writeFile(path, '');
    const cap = 16 * 1024;
    const chunk = Buffer.alloc(cap, 'a');
    let growing = true;
    const appender = (async () => {
      await using handle = await open(path, 'a');
      // Sizes cycle 0, cap, 2 × cap: a read that checks the size at 0 or at the cap and then
      // reads to the end would get more than the cap.
      while (growing) {
        await truncate(path, 0);
        await handle.write(chunk);
        await handle.write(chunk);
      }
    })();
    const sizes: number[] = [];
    let refusals = 0;
    try {
      for (let round = 0; round < 300; round += 1) {
        await context.workspace.readText('growing.log', cap).then(
          ({ text, bytes }) => {
            assert.equal(Buffer.byteLength(text), bytes);
            sizes.push(bytes);
          },
          (error: unknown) => {
            failsWith('KEEL_PAYLOAD_TOO_LARGE', { limit: cap })(error);
            refusals += 1;
          },
        );
      }
    } finally {
      growing = false;
      await appender;
    }
    assert.equal(sizes.length + refusals, 300);
    for (const size of sizes) assert.ok(size <= cap, `a read returned ${size} bytes`);
  });

  it('says KEEL_NOT_FOUND for a missing file or folder', async () => {
    await using context = await openWorkspace();
    await assert.rejects(
      context.workspace.readText('missing.txt', 1024),
      failsWith('KEEL_NOT_FOUND', { path: 'missing.txt' }),
    );
    await assert.rejects(
      context.workspace.readText('missing/file.txt', 1024),
      failsWith('KEEL_NOT_FOUND', { path: 'missing' }),
    );
  });

  it('refuses a folder as not a regular file', async () => {
    await using context = await openWorkspace();
    await mkdir(join(context.root, 'src'));
    await assert.rejects(
      context.workspace.readText('src', 1024),
      failsWith('KEEL_INVALID_ARGUMENT', { path: 'src' }),
    );
  });
});

describe('Workspace.list', () => {
  it('sorts entries by name and says what each one is', async () => {
    await using context = await openWorkspace();
    await writeFile(join(context.root, 'b.txt'), '');
    await writeFile(join(context.root, 'B.txt'), '');
    await writeFile(join(context.root, 'a.txt'), '');
    await mkdir(join(context.root, 'src'));
    await mkdir(join(context.root, '.github'));
    await symlink('a.txt', join(context.root, 'link'));
    execFileSync('mkfifo', [join(context.root, 'pipe')]);
    assert.deepEqual(await context.workspace.list('.'), [
      { name: '.github', type: 'directory' },
      { name: 'B.txt', type: 'file' },
      { name: 'a.txt', type: 'file' },
      { name: 'b.txt', type: 'file' },
      { name: 'link', type: 'symlink' },
      { name: 'pipe', type: 'other' },
      { name: 'src', type: 'directory' },
    ]);
  });

  it('lists a nested folder, and an empty one as empty', async () => {
    await using context = await openWorkspace();
    await mkdir(join(context.root, 'src/empty'), { recursive: true });
    await writeFile(join(context.root, 'src/app.ts'), '');
    assert.deepEqual(await context.workspace.list('src/'), [
      { name: 'app.ts', type: 'file' },
      { name: 'empty', type: 'directory' },
    ]);
    assert.deepEqual(await context.workspace.list('./src/empty'), []);
  });

  it('says KEEL_NOT_FOUND for a missing folder and refuses a file', async () => {
    await using context = await openWorkspace();
    await writeFile(join(context.root, 'notes.txt'), '');
    await assert.rejects(context.workspace.list('missing'), failsWith('KEEL_NOT_FOUND'));
    await assert.rejects(context.workspace.list('notes.txt'), failsWith('KEEL_INVALID_ARGUMENT'));
  });
});
