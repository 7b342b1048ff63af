import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { replaceFileAtomically, writeFileExclusive } from './write-file-exclusive.ts';

describe('writeFileExclusive and replaceFileAtomically', () => {
  it('creates a new file with exactly its mode, and refuses one that exists', async () => {
    await using folder = await temporaryDirectory('keel-write-');
    const path = join(folder.path, 'secret');
    await writeFileExclusive(path, 'first', 0o600);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await assert.rejects(writeFileExclusive(path, 'second', 0o600), { code: 'EEXIST' });
    assert.equal(await readFile(path, 'utf8'), 'first');
    assert.deepEqual(await readdir(folder.path), ['secret'], 'no temporary file is left');
  });

  it('replaces a file whole, with its new mode, leaving no temporary file', async () => {
    await using folder = await temporaryDirectory('keel-write-');
    const path = join(folder.path, 'signed.json');
    await writeFile(path, 'old content', { mode: 0o600 });
    await replaceFileAtomically(path, 'new', 0o644);
    assert.equal(await readFile(path, 'utf8'), 'new');
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    assert.deepEqual(await readdir(folder.path), ['signed.json']);
  });
});
