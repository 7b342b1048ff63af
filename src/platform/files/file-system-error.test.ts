import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { fileSystemError } from './file-system-error.ts';

/** What `work` threw, typed by fileSystemError. */
async function typed(work: () => Promise<unknown>) {
  const error = await work().then(
    () => assert.fail('expected the operation to fail'),
    (failure: unknown) => failure,
  );
  return fileSystemError(error);
}

describe('fileSystemError', () => {
  it('types the failures of real file operations on a named path, saying which path', async () => {
    await using folder = await temporaryDirectory('keel-fs-error-');
    const file = join(folder.path, 'file');
    await writeFile(file, 'x');

    const missing = await typed(() => readFile(join(folder.path, 'nothing')));
    assert.equal(missing?.code, 'KEEL_NOT_FOUND');
    assert.equal(missing?.details.path, join(folder.path, 'nothing'));
    assert.match(missing?.message ?? '', /nothing does not exist$/);
    const noFolder = await typed(() => writeFile(join(folder.path, 'no', 'such', 'file'), 'x'));
    assert.equal(noFolder?.message, `the folder ${join(folder.path, 'no', 'such')} does not exist`);

    const fileAsFolder = await typed(() => mkdir(file));
    assert.equal(fileAsFolder?.code, 'KEEL_INVALID_ARGUMENT');
    assert.equal(fileAsFolder?.message, `${file} exists and is not a folder`);

    const below = await typed(() => writeFile(join(file, 'below'), 'x'));
    assert.equal(below?.code, 'KEEL_INVALID_ARGUMENT');
    assert.match(below?.message ?? '', /a part of it is not a folder/);

    const folderAsFile = await typed(() => writeFile(folder.path, 'x'));
    assert.equal(folderAsFile?.code, 'KEEL_INVALID_ARGUMENT');
    assert.match(folderAsFile?.message ?? '', /is a folder, not a file/);
  });

  it('types permission and space failures as Node reports them', () => {
    const failure = (code: string, syscall: string) =>
      Object.assign(new Error(`${code}: failed, ${syscall} '/srv/keel/out.json'`), {
        code,
        syscall,
        path: '/srv/keel/out.json',
      });
    assert.equal(fileSystemError(failure('EACCES', 'open'))?.code, 'KEEL_INVALID_ARGUMENT');
    assert.equal(fileSystemError(failure('EPERM', 'rename'))?.code, 'KEEL_INVALID_ARGUMENT');
    assert.equal(fileSystemError(failure('ENOSPC', 'write'))?.code, 'KEEL_STORAGE_FULL');
    assert.equal(fileSystemError(failure('EROFS', 'open'))?.code, 'KEEL_INVALID_ARGUMENT');
    assert.match(
      fileSystemError(failure('EACCES', 'open'))?.message ?? '',
      /no permission to use \/srv\/keel\/out\.json/,
    );
  });

  it('leaves alone what is not a failed operation on a path', () => {
    assert.equal(fileSystemError(new Error('boom')), undefined);
    assert.equal(fileSystemError('EACCES'), undefined);
    assert.equal(
      fileSystemError(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })),
      undefined,
    );
    assert.equal(
      fileSystemError(Object.assign(new Error('x'), { code: 'EMFILE', path: '/tmp/x' })),
      undefined,
    );
  });
});
