import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runKeel, startKeel } from '../support/keel-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/syscall-stream-node.ts', import.meta.url));

describe('durability', () => {
  it('keeps every acknowledged audit entry, chained, when the node is killed with SIGKILL', async () => {
    await using directory = await temporaryDirectory();
    for (let round = 1; round <= 2; round += 1) {
      const child = spawn(process.execPath, [FIXTURE, directory.path], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '', HOME: directory.path },
      });
      let base = -1;
      let lastAck = 0;
      let buffer = '';
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
      });
      const killed = new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          buffer += chunk.toString('utf8');
          const lines = buffer.split('\n');
          buffer = lines.pop() ?? '';
          for (const line of lines) {
            const [word, value] = line.split(' ');
            if (word === 'base') base = Number(value);
            if (word === 'ack') lastAck = Number(value);
          }
          // Kill in the middle of the stream, with syscalls in flight.
          if (lastAck >= 400 && child.exitCode === null && child.signalCode === null) {
            child.kill('SIGKILL');
            resolve();
          }
        });
        child.on('exit', (code, signal) => {
          if (signal !== 'SIGKILL')
            reject(new Error(`fixture exited early (${code}); stderr: ${stderr}`));
        });
      });
      await killed;
      await once(child, 'close');
      assert.ok(base > 0, 'the fixture reported its base count');

      const verify = await runKeel(['audit', 'verify', '--data-dir', directory.path, '--json']);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      const result = JSON.parse(verify.stdout) as {
        intact: boolean;
        checked: number;
        total: number;
      };
      assert.equal(result.intact, true);
      assert.equal(result.checked, result.total);
      assert.ok(
        result.total >= base + lastAck,
        `round ${round}: ${result.total} entries stored, at least ${base} + ${lastAck} acknowledged`,
      );
    }
    // The killed node left its lock behind; a new node takes it over and stops cleanly.
    const keel = await startKeel(['--data-dir', directory.path, '--port', '0']);
    assert.deepEqual(await keel.stop('SIGTERM'), { code: 0, signal: null });
    const final = await runKeel(['audit', 'verify', '--data-dir', directory.path]);
    assert.equal(final.code, 0, final.stdout + final.stderr);
  });
});
