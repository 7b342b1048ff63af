import assert from 'node:assert/strict';
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { pathExists } from './path-exists.ts';

describe('pathExists', () => {
  it('sees files, folders and links (dangling ones too), and nothing where nothing is', async () => {
    await using folder = await temporaryDirectory('keel-exists-');
    const file = join(folder.path, 'file');
    await writeFile(file, 'x');
    await symlink(join(folder.path, 'nowhere'), join(folder.path, 'dangling'));
    assert.equal(await pathExists(file), true);
    assert.equal(await pathExists(folder.path), true);
    assert.equal(await pathExists(join(folder.path, 'dangling')), true);
    assert.equal(await pathExists(join(folder.path, 'nowhere')), false);
  });

  it('throws what is not absence instead of answering false', async () => {
    await using folder = await temporaryDirectory('keel-exists-');
    const file = join(folder.path, 'file');
    await writeFile(file, 'x');
    await assert.rejects(pathExists(join(file, 'below')), { code: 'ENOTDIR' });
  });
});
