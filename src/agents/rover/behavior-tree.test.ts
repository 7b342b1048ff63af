import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { action, condition, selector, sequence } from './behavior-tree.ts';

describe('behavior tree', () => {
  it('lets a higher-priority branch pre-empt a lower one, and falls through when it fails', async () => {
    const taken: string[] = [];
    const board = { battery: 0.1 };
    const root = selector<typeof board>('root', [
      sequence('dock', [
        condition('low battery', (state) => state.battery < 0.2),
        action('go to dock', async () => {
          taken.push('dock');
          return 'running';
        }),
      ]),
      action('patrol', async () => {
        taken.push('patrol');
        return 'running';
      }),
    ]);
    assert.equal(await root.tick(board), 'running');
    board.battery = 0.9;
    assert.equal(await root.tick(board), 'running');
    assert.deepEqual(taken, ['dock', 'patrol']);
  });

  it('fails a sequence at its first failing child without ticking the rest', async () => {
    let ticked = false;
    const node = sequence('s', [
      condition('no', () => false),
      action('never', async () => {
        ticked = true;
        return 'success';
      }),
    ]);
    assert.equal(await node.tick({}), 'failure');
    assert.equal(ticked, false);
    assert.equal(await selector('empty', []).tick({}), 'failure');
    assert.equal(await sequence('empty', []).tick({}), 'success');
  });
});
