import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { locateModule } from './module-location.ts';

/** A root folder holding `data/` (with `agents/`) and `own/`, a module folder of its own. */
async function layout(root: string) {
  const dataDirectory = join(root, 'data');
  const modulesDirectory = join(dataDirectory, 'agents');
  await mkdir(modulesDirectory, { recursive: true });
  await mkdir(join(root, 'own'));
  await mkdir(join(dataDirectory, 'keys'));
  for (const file of [
    join(modulesDirectory, 'inside.ts'),
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
    assert.deepEqual(await locateModule('inside.ts', places), {
      path: join(places.modulesDirectory, 'inside.ts'),
      folder: places.modulesDirectory,
    });
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
    await symlink(join(places.dataDirectory, 'loose.ts'), join(places.modulesDirectory, 'link.ts'));
    await rejectsWithCode(locateModule('link.ts', places), 'KEEL_MANIFEST_INVALID');
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
});
