import type { SandboxReport } from '../../src/platform/sandbox/detect-sandbox.ts';

function unavailable(detail: string): { available: false; detail: string } {
  return { available: false, detail };
}

/**
 * A host report with bubblewrap and cgroups missing, for tests of what a launch does then.
 *
 * @example
 * ```ts
 * planSandbox(options({ report: withoutBubblewrap() }), host({ bubblewrapPath: undefined }));
 * ```
 */
export function withoutBubblewrap(): SandboxReport {
  return {
    bubblewrap: unavailable('bwrap not found on PATH; install Debian package bubblewrap'),
    userNamespaces: { available: true, detail: 'max_user_namespaces 1000' },
    cgroups: unavailable('no writable memory and pids controllers'),
    seccomp: { available: true, detail: 'mode 0' },
    landlock: unavailable('landlock not among active modules'),
  };
}

/** A host report with every layer but Landlock, as on the development machine. */
export const FULL_SANDBOX_REPORT: SandboxReport = Object.freeze({
  bubblewrap: { available: true, detail: 'bwrap 0.8.0 at /usr/bin/bwrap' },
  userNamespaces: { available: true, detail: 'max_user_namespaces 1000' },
  cgroups: { available: true, detail: 'v1 writable: memory, pids' },
  seccomp: { available: true, detail: 'mode 0' },
  landlock: unavailable('landlock not among active modules'),
});
