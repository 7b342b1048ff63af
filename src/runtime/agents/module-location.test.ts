import assert from 'node:assert/strict';
import { chmod, chown, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { locateModule } from './module-location.ts';

/** A root folder holding `data/` (with `agents/`) and `own/`, a module folder of its own. */
async function layout(root: string) {
  const dataDirectory = join(root, 'data');
  const modulesDirectory = join(dataDirectory, 'agents');
  await mkdir(join(modulesDirectory, 'inside'), { recursive: true });
  await mkdir(join(root, 'own'));
  await mkdir(join(dataDirectory, 'keys'));
  for (const file of [
    join(modulesDirectory, 'inside', 'program.ts'),
    join(modulesDirectory, 'shared.ts'),
    join(dataDirectory, 'loose.ts'),
    join(dataDirectory, 'keys', 'stray.ts'),
    join(root, 'own', 'program.ts'),
    join(root, 'beside.ts'),
  ]) {
    await writeFile(file, 'export default {};\n');
  }
  return { dataDirectory, modulesDirectory };
}

describe('locateModule', () => {
  it('finds a relative path in the modules folder and an absolute one in its own folder', async () => {
    await using root = await temporaryDirectory('keel-module-');
    const places = await layout(root.path);
    assert.deepEqual(await locateModule('inside/program.ts', places), {
      path: join(places.modulesDirectory, 'inside', 'program.ts'),
      folder: join(places.modulesDirectory, 'inside'),
    });
    // Straight in the modules folder, every worker would see every agent's modules.
    const shared = await rejectsWithCode(
      locateModule('shared.ts', places),
      'KEEL_MANIFEST_INVALID',
    );
    assert.match(shared.message, /give it a folder of its own there, e\.g\. .*<agent>\/shared\.ts/);
    const own = join(root.path, 'own', 'program.ts');
    assert.deepEqual(await locateModule(own, places), {
      path: own,
      folder: join(root.path, 'own'),
    });
  });

  it("refuses a folder that holds Keel's data directory, or the rest of it", async () => {
    await using root = await temporaryDirectory('keel-module-');
    const places = await layout(root.path);
    const beside = await rejectsWithCode(
      locateModule(join(root.path, 'beside.ts'), places),
      'KEEL_MANIFEST_INVALID',
    );
    assert.match(beside.message, /holds Keel's data directory; give the module a folder/);
    const loose = await rejectsWithCode(
      locateModule('../loose.ts', places),
      'KEEL_MANIFEST_INVALID',
    );
    assert.match(loose.message, /holds Keel's data directory/);
    const stray = await rejectsWithCode(
      locateModule('../keys/stray.ts', places),
      'KEEL_MANIFEST_INVALID',
    );
    assert.match(stray.message, /in Keel's data directory outside/);
  });

  it('follows symlinks to the real file before deciding', async () => {
    await using root = await temporaryDirectory('keel-module-');
    const places = await layout(root.path);
    await symlink(
      join(places.dataDirectory, 'loose.ts'),
      join(places.modulesDirectory, 'inside', 'link.ts'),
    );
    await rejectsWithCode(locateModule('inside/link.ts', places), 'KEEL_MANIFEST_INVALID');
    // A folder symlinked into the modules folder binds its real folder, not the link.
    await symlink(join(root.path, 'own'), join(places.modulesDirectory, 'own'));
    const located = await locateModule('own/program.ts', places);
    assert.equal(located.folder, join(root.path, 'own'));
  });

  it('refuses host folders, missing files and folders', async () => {
    await using root = await temporaryDirectory('keel-module-');
    const places = await layout(root.path);
    const cases: readonly [string, RegExp][] = [
      ['/etc/hostname', /would expose \/etc/],
      [join(root.path, 'own', 'absent.ts'), /cannot be read/],
      [join(root.path, 'own'), /is not a file/],
    ];
    for (const [module, message] of cases) {
      const error = await rejectsWithCode(locateModule(module, places), 'KEEL_MANIFEST_INVALID');
      assert.match(error.message, message);
      assert.deepEqual(error.details, { field: 'program.module' });
    }
  });

  it('refuses a folder that someone else could swap between the check and the bind', async () => {
    await using root = await temporaryDirectory('keel-module-');
    const places = await layout(root.path);
    const program = join(root.path, 'own', 'program.ts');
    // Writable by others without the sticky bit: anyone could rename it away.
    await chmod(root.path, 0o777);
    const open = await rejectsWithCode(locateModule(program, places), 'KEEL_MANIFEST_INVALID');
    assert.match(open.message, /writable by others without the sticky bit \(chmod go-w /);
    // Sticky, like /tmp: only an entry's owner can move it.
    await chmod(root.path, 0o1777);
    assert.equal((await locateModule(program, places)).folder, join(root.path, 'own'));
    await chmod(root.path, 0o700);
    if (process.getuid?.() === 0) {
      await chown(join(root.path, 'own'), 65534, 65534);
      const owned = await rejectsWithCode(locateModule(program, places), 'KEEL_MANIFEST_INVALID');
      assert.match(owned.message, /belongs to uid 65534, not root nor Keel's user/);
    }
  });

  it('refuses a hidden folder', async () => {
    await using root = await temporaryDirectory('keel-module-');
    const places = await layout(root.path);
    await mkdir(join(root.path, '.config', 'agent'), { recursive: true });
    const program = join(root.path, '.config', 'agent', 'program.ts');
    await writeFile(program, 'export default {};\n');
    const error = await rejectsWithCode(locateModule(program, places), 'KEEL_MANIFEST_INVALID');
    assert.match(error.message, /hidden folder/);
  });
});
