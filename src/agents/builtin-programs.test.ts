import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BUILTIN_PROGRAM_NAMES } from '../runtime/manifests/builtin-program-names.ts';
import { BUILTIN_PROGRAMS } from './builtin-programs.ts';

describe('BUILTIN_PROGRAMS', () => {
  it('ships exactly the programs that deploys accept by name', () => {
    assert.deepEqual([...BUILTIN_PROGRAMS.keys()].sort(), [...BUILTIN_PROGRAM_NAMES].sort());
  });
});
