/**
 * The seccomp filter of agent workers: a classic-BPF program in the raw form `bwrap --seccomp FD`
 * reads (an array of `struct sock_filter`), built here without libseccomp.
 *
 * What it forbids, and why: creating processes (`fork`, `vfork`, `clone` without
 * `CLONE_THREAD`), so a worker can run threads but never another program beside itself;
 * sockets other than `AF_UNIX`, so no network even if a namespace were shared; and the kernel
 * interfaces a sandboxed program has no business with (mounts, namespaces, tracing, keyrings,
 * BPF, modules, io_uring, …). `execve` stays allowed: bubblewrap installs the filter and then
 * executes the worker program.
 */

/** `AUDIT_ARCH_X86_64`: the architecture word the kernel puts in `seccomp_data.arch`. */
const AUDIT_ARCH_X86_64 = 0xc000003e;
/** Syscall numbers at or above this belong to the x32 ABI on an x86-64 kernel. */
const X32_SYSCALL_BIT = 0x40000000;

const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;

const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JGE_K = 0x35;
const BPF_JMP_JSET_K = 0x45;
const BPF_RET_K = 0x06;

/** Offsets in `struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6]; }`. */
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
/** Low 32 bits of `args[0]` (little-endian). */
const OFFSET_FIRST_ARGUMENT = 16;

const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;

const CLONE_THREAD = 0x00010000;
/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET. */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;
const AF_UNIX = 1;

const SYSCALL_CLONE = 56;
const SYSCALL_CLONE3 = 435;
const SYSCALL_SOCKET = 41;

/** x86-64 numbers of `fork` and `vfork`, which only the worker profile refuses. */
const PROCESS_CREATION_X86_64 = Object.freeze({ fork: 57, vfork: 58 });

/** x86-64 numbers of the syscalls every profile refuses outright with `EPERM`. */
const DENIED_X86_64 = Object.freeze({
  ptrace: 101,
  mount: 165,
  umount2: 166,
  pivot_root: 155,
  chroot: 161,
  unshare: 272,
  setns: 308,
  keyctl: 250,
  add_key: 248,
  request_key: 249,
  bpf: 321,
  perf_event_open: 298,
  kexec_load: 246,
  kexec_file_load: 320,
  init_module: 175,
  finit_module: 313,
  delete_module: 176,
  reboot: 169,
  swapon: 167,
  swapoff: 168,
  acct: 163,
  process_vm_readv: 310,
  process_vm_writev: 311,
  userfaultfd: 323,
  open_by_handle_at: 304,
  name_to_handle_at: 303,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  personality: 135,
  mknod: 133,
  mknodat: 259,
} satisfies Record<string, number>);

/**
 * The syscalls the worker filter refuses outright with `EPERM`, for `keel doctor` and the docs.
 *
 * @example
 * ```ts
 * SECCOMP_DENIED_SYSCALLS.includes('ptrace'); // true
 * ```
 */
export const SECCOMP_DENIED_SYSCALLS: readonly string[] = Object.freeze([
  ...Object.keys(PROCESS_CREATION_X86_64),
  ...Object.keys(DENIED_X86_64),
]);

/**
 * What a filter is for. `worker`: an agent worker, which may run threads but never another
 * program, and only local sockets. `command`: a tool's command (a test run, git), which may
 * start processes (without new namespaces) and, when its grant allows the network, open
 * sockets of any family; everything else the worker filter refuses it refuses too.
 */
export interface SeccompProfile {
  readonly kind: 'worker' | 'command';
  readonly network?: boolean;
}

/**
 * The syscalls the worker filter allows only in part, each with the rule in one line.
 *
 * @example
 * ```ts
 * SECCOMP_RESTRICTED_SYSCALLS.socket; // 'only AF_UNIX; any other domain fails with EAFNOSUPPORT'
 * ```
 */
export const SECCOMP_RESTRICTED_SYSCALLS: Readonly<Record<string, string>> = Object.freeze({
  clone: 'only new threads (CLONE_THREAD, no namespace flags); anything else fails with EPERM',
  clone3: 'fails with ENOSYS, so the C library falls back to clone',
  socket: 'only AF_UNIX; any other domain fails with EAFNOSUPPORT',
  'x32 ABI': 'every x32 syscall fails with EPERM',
  'other ABIs': 'a syscall from a non-x86-64 ABI (int 0x80) kills the process',
});

/** One `struct sock_filter` instruction. */
interface Instruction {
  readonly code: number;
  readonly jumpTrue: number;
  readonly jumpFalse: number;
  readonly constant: number;
}

function statement(code: number, constant: number): Instruction {
  return { code, jumpTrue: 0, jumpFalse: 0, constant };
}

function jump(code: number, constant: number, jumpTrue: number, jumpFalse: number): Instruction {
  return { code, jumpTrue, jumpFalse, constant };
}

function returnErrno(errno: number): Instruction {
  return statement(BPF_RET_K, SECCOMP_RET_ERRNO | errno);
}

/**
 * Builds the agent-worker seccomp filter for `arch` as the raw `struct sock_filter` array
 * (8 bytes per instruction, little-endian) that `bwrap --seccomp FD` reads from its descriptor.
 * Returns `undefined` for architectures other than x64, which have no filter yet.
 *
 * Every jump is relative and short (at most 5 instructions), so the program stays valid
 * however many syscalls the deny list grows to.
 *
 * @example
 * ```ts
 * const filter = buildSeccompFilter();
 * if (filter !== undefined) seccompPipe.end(filter); // the pipe bwrap reads as `--seccomp 4`
 * ```
 */
export function buildSeccompFilter(
  arch: string = process.arch,
  profile: SeccompProfile = { kind: 'worker' },
): Buffer | undefined {
  if (arch !== 'x64') return undefined;
  const worker = profile.kind === 'worker';
  const program: Instruction[] = [
    statement(BPF_LD_W_ABS, OFFSET_ARCH),
    jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
    statement(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
    statement(BPF_LD_W_ABS, OFFSET_NR),
    jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
    returnErrno(EPERM),
    // glibc tries clone3 first for threads and falls back to clone on ENOSYS; clone3 passes its
    // flags in memory, which a BPF filter cannot read, so it answers ENOSYS and glibc uses clone,
    // whose flags the rule below checks.
    jump(BPF_JMP_JEQ_K, SYSCALL_CLONE3, 0, 1),
    returnErrno(ENOSYS),
    // clone: never new namespaces; for a worker only a new thread, not a new process.
    ...(worker
      ? [
          jump(BPF_JMP_JEQ_K, SYSCALL_CLONE, 0, 5),
          statement(BPF_LD_W_ABS, OFFSET_FIRST_ARGUMENT),
          jump(BPF_JMP_JSET_K, CLONE_NAMESPACE_FLAGS, 2, 0),
          jump(BPF_JMP_JSET_K, CLONE_THREAD, 0, 1),
          statement(BPF_RET_K, SECCOMP_RET_ALLOW),
          returnErrno(EPERM),
        ]
      : [
          jump(BPF_JMP_JEQ_K, SYSCALL_CLONE, 0, 4),
          statement(BPF_LD_W_ABS, OFFSET_FIRST_ARGUMENT),
          jump(BPF_JMP_JSET_K, CLONE_NAMESPACE_FLAGS, 1, 0),
          statement(BPF_RET_K, SECCOMP_RET_ALLOW),
          returnErrno(EPERM),
        ]),
  ];
  if (profile.network !== true) {
    // socket: only local (AF_UNIX) sockets.
    program.push(
      jump(BPF_JMP_JEQ_K, SYSCALL_SOCKET, 0, 4),
      statement(BPF_LD_W_ABS, OFFSET_FIRST_ARGUMENT),
      jump(BPF_JMP_JEQ_K, AF_UNIX, 0, 1),
      statement(BPF_RET_K, SECCOMP_RET_ALLOW),
      returnErrno(EAFNOSUPPORT),
    );
  }
  const denied = worker ? { ...PROCESS_CREATION_X86_64, ...DENIED_X86_64 } : DENIED_X86_64;
  for (const number of Object.values(denied)) {
    program.push(jump(BPF_JMP_JEQ_K, number, 0, 1), returnErrno(EPERM));
  }
  program.push(statement(BPF_RET_K, SECCOMP_RET_ALLOW));
  return encode(program);
}

function encode(program: readonly Instruction[]): Buffer {
  const buffer = Buffer.alloc(program.length * 8);
  program.forEach((instruction, index) => {
    const offset = index * 8;
    buffer.writeUInt16LE(instruction.code, offset);
    buffer.writeUInt8(instruction.jumpTrue, offset + 2);
    buffer.writeUInt8(instruction.jumpFalse, offset + 3);
    buffer.writeUInt32LE(instruction.constant >>> 0, offset + 4);
  });
  return buffer;
}
