import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import {
  buildSeccompFilter,
  SECCOMP_DENIED_SYSCALLS,
  SECCOMP_RESTRICTED_SYSCALLS,
} from './seccomp-filter.ts';

const ALLOW = 0x7fff0000;
const KILL_PROCESS = 0x80000000;
const errno = (number: number): number => 0x00050000 | number;
const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_I386 = 0x40000003;

interface SeccompData {
  readonly nr: number;
  readonly arch?: number;
  readonly firstArgument?: bigint;
}

interface Instruction {
  readonly code: number;
  readonly jumpTrue: number;
  readonly jumpFalse: number;
  readonly constant: number;
}

function decode(filter: Buffer): Instruction[] {
  const program: Instruction[] = [];
  for (let offset = 0; offset < filter.length; offset += 8) {
    program.push({
      code: filter.readUInt16LE(offset),
      jumpTrue: filter.readUInt8(offset + 2),
      jumpFalse: filter.readUInt8(offset + 3),
      constant: filter.readUInt32LE(offset + 4),
    });
  }
  return program;
}

/** Runs a classic-BPF seccomp program the way the kernel does, for the opcodes it may use. */
function run(filter: Buffer, input: SeccompData): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(input.nr, 0);
  data.writeUInt32LE(input.arch ?? AUDIT_ARCH_X86_64, 4);
  data.writeBigUInt64LE(input.firstArgument ?? 0n, 16);
  const program = decode(filter);
  let accumulator = 0;
  for (let counter = 0; counter < program.length; counter += 1) {
    const instruction = program[counter]!;
    switch (instruction.code) {
      case 0x20:
        accumulator = data.readUInt32LE(instruction.constant);
        break;
      case 0x15:
        counter +=
          accumulator === instruction.constant ? instruction.jumpTrue : instruction.jumpFalse;
        break;
      case 0x35:
        counter +=
          accumulator >= instruction.constant ? instruction.jumpTrue : instruction.jumpFalse;
        break;
      case 0x45:
        counter +=
          (accumulator & instruction.constant) !== 0 ? instruction.jumpTrue : instruction.jumpFalse;
        break;
      case 0x06:
        return instruction.constant;
      default:
        assert.fail(`unexpected opcode 0x${instruction.code.toString(16)} at ${counter}`);
    }
  }
  assert.fail('the program ran off its end');
}

const filter = buildSeccompFilter('x64');

describe('buildSeccompFilter', () => {
  it('builds a filter for x64 and none for other architectures', () => {
    assert.ok(filter instanceof Buffer);
    assert.equal(buildSeccompFilter('arm64'), undefined);
    assert.equal(buildSeccompFilter('ia32'), undefined);
  });

  it('is a well-formed program: whole instructions, jumps inside it, ends in a return', () => {
    assert.ok(filter !== undefined);
    assert.equal(filter.length % 8, 0);
    const program = decode(filter);
    assert.ok(program.length > 0 && program.length <= 4096, `length ${program.length}`);
    program.forEach((instruction, index) => {
      if ((instruction.code & 0x07) !== 0x05) return; // only BPF_JMP instructions jump
      for (const offset of [instruction.jumpTrue, instruction.jumpFalse]) {
        assert.ok(index + 1 + offset < program.length, `jump out of the program at ${index}`);
      }
    });
    assert.equal(program.at(-1)?.code, 0x06);
  });

  it('kills a process that makes a syscall through another ABI', () => {
    assert.equal(run(filter!, { nr: 1, arch: AUDIT_ARCH_I386 }), KILL_PROCESS);
  });

  it('refuses every x32 syscall with EPERM', () => {
    assert.equal(run(filter!, { nr: 0x40000000 + 1 }), errno(EPERM));
  });

  it('answers clone3 with ENOSYS so that the C library falls back to clone', () => {
    assert.equal(run(filter!, { nr: 435 }), errno(ENOSYS));
  });

  it('allows clone for a new thread but not for a new process or namespace', () => {
    const threadFlags = 0x003d0f00n; // what glibc's pthread_create passes
    assert.equal(run(filter!, { nr: 56, firstArgument: threadFlags }), ALLOW);
    assert.equal(run(filter!, { nr: 56, firstArgument: 0x11n }), errno(EPERM)); // fork: SIGCHLD
    assert.equal(run(filter!, { nr: 56, firstArgument: 0x4111n }), errno(EPERM)); // posix_spawn
    assert.equal(run(filter!, { nr: 56, firstArgument: threadFlags | 0x40000000n }), errno(EPERM));
  });

  it('refuses fork, vfork and every listed syscall with EPERM', () => {
    const numbers: Record<string, number> = { fork: 57, vfork: 58, ptrace: 101, mount: 165 };
    Object.assign(numbers, { unshare: 272, setns: 308, bpf: 321, io_uring_setup: 425 });
    Object.assign(numbers, { personality: 135, mknodat: 259, process_vm_readv: 310 });
    for (const [name, nr] of Object.entries(numbers)) {
      assert.ok(SECCOMP_DENIED_SYSCALLS.includes(name), name);
      assert.equal(run(filter!, { nr }), errno(EPERM), name);
    }
    assert.equal(SECCOMP_DENIED_SYSCALLS.length, 34);
  });

  it('allows only AF_UNIX sockets', () => {
    assert.equal(run(filter!, { nr: 41, firstArgument: 1n }), ALLOW);
    for (const domain of [2n, 10n, 16n, 17n]) {
      assert.equal(
        run(filter!, { nr: 41, firstArgument: domain }),
        errno(EAFNOSUPPORT),
        `${domain}`,
      );
    }
  });

  it('allows everything else, execve included', () => {
    for (const nr of [0, 1, 2, 9, 59, 60, 231, 257, 322]) {
      assert.equal(run(filter!, { nr }), ALLOW, `syscall ${nr}`);
    }
  });

  it('describes its partial rules for the docs', () => {
    assert.deepEqual(Object.keys(SECCOMP_RESTRICTED_SYSCALLS).slice(0, 3), [
      'clone',
      'clone3',
      'socket',
    ]);
  });
});

const BUBBLEWRAP = '/usr/bin/bwrap';

/** A program for the sandboxed node: it reports what the filter let it do. */
const PROBE = `
const { spawnSync } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const net = require('node:net');
const result = {};
result.spawn = spawnSync(process.execPath, ['-e', '0']).error?.code ?? 'started';
const tcp = net.connect({ host: '127.0.0.1', port: 9 });
tcp.on('error', (error) => {
  result.tcp = error.code;
  const server = net.createServer().listen('/tmp/probe.sock', () => {
    result.unix = 'listening';
    server.close();
    new Worker('require("node:worker_threads").parentPort.postMessage(6 * 7)', { eval: true })
      .once('message', (value) => {
        result.thread = value;
        process.stdout.write(JSON.stringify(result));
        process.exit(0);
      });
  });
});
`;

describe('the seccomp filter in the kernel', () => {
  it('lets node run threads and AF_UNIX sockets but not processes or TCP', async () => {
    await access(BUBBLEWRAP, constants.X_OK).catch((error: unknown) => {
      throw new Error(`bubblewrap is required at ${BUBBLEWRAP}; run \`npm run setup\``, {
        cause: error,
      });
    });
    // The network namespace is shared on purpose: only the filter stands between node and TCP.
    const child = spawn(
      BUBBLEWRAP,
      [
        '--unshare-all',
        '--share-net',
        '--die-with-parent',
        '--ro-bind',
        '/',
        '/',
        '--proc',
        '/proc',
        '--dev',
        '/dev',
        '--tmpfs',
        '/tmp',
        // node itself may live under /tmp (a clone there): show its folder through the tmpfs.
        '--ro-bind',
        dirname(process.execPath),
        dirname(process.execPath),
        '--seccomp',
        '3',
        '--',
        process.execPath,
        '-e',
        PROBE,
      ],
      { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: {} },
    );
    (child.stdio[3] as Writable).end(filter);
    const [stdout, stderr] = await Promise.all([text(child.stdout!), text(child.stderr!)]);
    assert.equal(stderr, '');
    assert.deepEqual(JSON.parse(stdout), {
      spawn: 'EPERM',
      tcp: 'EAFNOSUPPORT',
      unix: 'listening',
      thread: 42,
    });
  });

  describe('the command profile', () => {
    const command = buildSeccompFilter('x64', { kind: 'command' });
    const networked = buildSeccompFilter('x64', { kind: 'command', network: true });

    it('lets a command start processes, but never in new namespaces', () => {
      assert.equal(run(command!, { nr: 56, firstArgument: 0x11n }), ALLOW); // fork: SIGCHLD
      assert.equal(run(command!, { nr: 57 }), ALLOW); // fork
      assert.equal(run(command!, { nr: 58 }), ALLOW); // vfork
      assert.equal(run(command!, { nr: 56, firstArgument: 0x11n | 0x20000000n }), errno(EPERM));
      assert.equal(run(command!, { nr: 435 }), errno(ENOSYS));
      assert.equal(run(command!, { nr: 101 }), errno(EPERM)); // ptrace
      assert.equal(run(command!, { nr: 272 }), errno(EPERM)); // unshare
    });

    it('opens only local sockets unless the network is granted', () => {
      assert.equal(run(command!, { nr: 41, firstArgument: 2n }), errno(EAFNOSUPPORT));
      assert.equal(run(command!, { nr: 41, firstArgument: 1n }), ALLOW);
      assert.equal(run(networked!, { nr: 41, firstArgument: 2n }), ALLOW);
      assert.equal(run(networked!, { nr: 165 }), errno(EPERM)); // mount
    });
  });
});
