/**
 * The command-line policy of the sandboxed shell tool: turns one command line into an argv, or
 * refuses it with a stable rule id and a reason the agent can act on.
 *
 * Commands never reach a shell: the argv goes to execve inside a bubblewrap sandbox, and the
 * capability layer already refuses metacharacters (`compileCommand`). This module is defence in
 * depth on top of both. It normalises first (printable ASCII only, no metacharacters, no quotes,
 * words split on plain spaces), then denies programs and arguments that re-open a shell, run
 * code given on the command line, escalate privilege, reach the network, or change what a
 * later command runs.
 *
 * Deliberate choices:
 * - `npx` (and `pnpx`, `bunx`) is refused outright, also for a local tool such as `npx tsc`:
 *   it is `npm exec`, which downloads and runs any package from the registry when the name is
 *   not installed, so a typo becomes remote code execution. Run a local tool by its path
 *   (`node_modules/.bin/tsc --noEmit`) or through a package script (`npm run typecheck`).
 * - Interpreter flags are looked for in every argument, not only before the script, because
 *   options that take a value make "before the script" ambiguous. `python3 tool.py -c x` is
 *   therefore refused too; a false refusal is the safe mistake.
 * - `~` is refused, so git revisions are written `HEAD^` rather than `HEAD~1`.
 */

/** The longest command line accepted, in UTF-16 code units. */
export const MAXIMUM_COMMAND_LENGTH = 8192;

/** A frozen list of the space-separated words of a table entry. */
function words(text: string): readonly string[] {
  return Object.freeze(text.split(' '));
}

/**
 * Every rule id this policy can answer with, and what it refuses (for docs and audit).
 *
 * @example
 * ```ts
 * for (const [rule, description] of Object.entries(commandPolicyRules)) console.log(rule, description);
 * ```
 */
export const commandPolicyRules = Object.freeze({
  'not-a-string': 'The command line is not a string.',
  empty: 'The command line is empty or only spaces.',
  'too-long': `The command line is longer than ${MAXIMUM_COMMAND_LENGTH} characters.`,
  'control-character': 'An ASCII or C1 control character: NUL, tab, newline, escape, DEL, NEL.',
  'invisible-character':
    'A zero-width or format character, a line or paragraph separator, a lone surrogate or a space other than U+0020.',
  'not-normalised':
    'The line changes under Unicode NFKC normalisation (full-width, compatibility or decomposed forms).',
  'non-ascii': 'A character outside printable ASCII, such as a homoglyph of a Latin letter.',
  quote: 'A single or double quote: nothing parses quotes here, so they only disguise words.',
  'command-chaining': '; & or |: a second command, a background job or a pipeline.',
  substitution: '$ or `: variable, command or arithmetic substitution.',
  redirection: '< or >: redirections, here-documents, here-strings and process substitution.',
  grouping: '( ) { }: subshells, command groups and brace expansion.',
  glob: '* ? [ ]: filename globbing.',
  escape: '\\: backslash escapes and line continuations.',
  'history-expansion': '!: history expansion and pipeline negation.',
  'tilde-expansion': '~: home-directory expansion.',
  comment: '#: a comment that hides the rest of the line.',
  'environment-assignment': 'A NAME=value word before the program (LD_PRELOAD=…, PATH=…).',
  'program-name': 'The program word starts with "-" or holds characters no program name needs.',
  'denied-program':
    'A shell, a program that runs its arguments as a command, or a privilege, network, tracing or scheduling tool.',
  'package-runner':
    'npx and friends, or a package manager sub-command that fetches and runs a package (exec, dlx, x, create).',
  'path-traversal': 'A ".." path segment in any argument.',
  'program-path': 'A program given by a path that is absolute or not a plain relative path.',
  'interpreter-eval':
    'An interpreter flag that runs code given on the command line or preloads a module.',
  'find-action': 'A find action that runs a command, deletes or writes files.',
  'git-config': 'A git configuration override, or a configuration key whose value is a command.',
  'git-command-option': "A git option that makes git run a program of the caller's choosing.",
  'git-transport': 'A git remote helper URL that runs a command (ext::).',
  'git-subcommand': 'A git sub-command that runs arbitrary commands or serves the repository.',
  'command-option': 'An option of an ordinary tool that makes it run another program.',
  'sensitive-path':
    "A path to a network pseudo-device or to another process's environment or memory.",
  'startup-file':
    'An option that loads a shell or interpreter start-up file (--rcfile, --init-file).',
  'policy-error': 'The policy itself failed; the command is refused rather than guessed at.',
} as const);

/** A rule id of {@link commandPolicyRules}. */
export type CommandPolicyRule = keyof typeof commandPolicyRules;

/** The outcome of {@link parseCommandLine}: an argv to execute, or a refusal. */
export type CommandLineVerdict =
  | { readonly ok: true; readonly argv: readonly string[] }
  | { readonly ok: false; readonly rule: CommandPolicyRule; readonly reason: string };

/** The shell metacharacters refused, by the rule that names them. */
export const SHELL_METACHARACTERS = Object.freeze({
  quote: `'"`,
  'command-chaining': ';&|',
  substitution: '$`',
  redirection: '<>',
  grouping: '(){}',
  glob: '*?[]',
  escape: '\\',
  'history-expansion': '!',
  'tilde-expansion': '~',
  comment: '#',
} as const satisfies Partial<Record<CommandPolicyRule, string>>);

/**
 * Programs refused as argv[0] (by basename, lower-cased, without a version suffix), grouped
 * by why.
 *
 * @example
 * ```ts
 * for (const group of DENIED_PROGRAM_GROUPS) console.log(`${group.programs.join(', ')}: ${group.reason}`);
 * ```
 */
export const DENIED_PROGRAM_GROUPS: readonly {
  readonly reason: string;
  readonly programs: readonly string[];
}[] = Object.freeze([
  {
    reason: 'is a shell; commands run without one, so run the program directly',
    programs: words('sh bash dash zsh ksh csh tcsh fish ash mksh rbash'),
  },
  {
    reason: 'runs its arguments as another command, which would bypass this policy',
    programs: words(
      'busybox toybox env eval exec source xargs parallel nohup setsid timeout nice ionice stdbuf taskset chrt flock watch time command builtin script expect unbuffer pwsh',
    ),
  },
  {
    reason: 'changes privilege, user, root or namespaces',
    programs: words('sudo su doas pkexec runuser setpriv capsh chroot unshare nsenter newgrp sg'),
  },
  {
    reason: 'opens network connections; use the network tools, which are policed per domain',
    programs: words('nc ncat netcat socat telnet ssh scp sftp rsync ftp curl wget'),
  },
  {
    reason: 'traces or debugs processes and can inject code into them',
    programs: words('strace ltrace gdb'),
  },
  {
    reason: 'schedules commands or changes system state outside the sandboxed run',
    programs: words('at batch crontab systemctl systemd-run service mount umount'),
  },
  {
    reason: 'is a programming language whose program is given on the command line',
    programs: words('awk gawk mawk nawk'),
  },
]);

/** Interpreter flags that run code from the command line (`shortFlags` letters in clusters). */
export interface InterpreterEvalRule {
  readonly programs: readonly string[];
  /** Short flags that run code, also inside a cluster (`-pe`, `-lne`). */
  readonly shortFlags: string;
  /** Short flags whose value is the rest of the cluster (`-Wdefault`); scanning stops there. */
  readonly valueFlags?: string;
  readonly longFlags?: readonly string[];
  /** Sub-commands (first non-option argument) that evaluate code. */
  readonly subcommands?: readonly string[];
}

/** The interpreters policed by the `interpreter-eval` rule. */
export const INTERPRETER_EVAL_RULES: readonly InterpreterEvalRule[] = Object.freeze([
  {
    programs: words('python pypy'),
    shortFlags: 'c',
    valueFlags: 'mWX',
  },
  {
    programs: words('node nodejs'),
    shortFlags: 'epr',
    longFlags: words('--eval --print --require --import --loader --experimental-loader'),
  },
  { programs: words('perl'), shortFlags: 'eE', valueFlags: 'DFIiMmdx' },
  { programs: words('ruby'), shortFlags: 'e', valueFlags: 'ICEFKTWrx' },
  { programs: words('php'), shortFlags: 'rBRE', valueFlags: 'cdfzt' },
  { programs: words('lua luajit'), shortFlags: 'e', valueFlags: 'l' },
  {
    programs: words('bun'),
    shortFlags: 'epr',
    longFlags: words('--eval --print --preload'),
  },
  {
    programs: words('deno'),
    shortFlags: '',
    longFlags: words('--eval'),
    subcommands: words('eval repl'),
  },
  {
    programs: words('julia'),
    shortFlags: 'eE',
    longFlags: words('--eval --print'),
  },
  { programs: words('rscript'), shortFlags: 'e' },
]);

/** `find` primaries refused: they run commands, delete, or write files. */
export const FIND_DENIED_ACTIONS: readonly string[] = words(
  '-exec -execdir -ok -okdir -delete -fprint -fprint0 -fprintf -fls',
);

/** Programs that are package runners: refused outright. */
export const PACKAGE_RUNNER_PROGRAMS: readonly string[] = words('npx pnpx bunx uvx');
/** Package managers whose sub-commands and options are policed (corepack passes them on). */
export const PACKAGE_MANAGER_PROGRAMS: readonly string[] = words('npm yarn pnpm bun corepack');
/**
 * Package-manager words refused anywhere before `--`: sub-commands that fetch and run a
 * package (`exec`, `x`, `dlx`, `create`), run a command in a package (`explore`) or run node
 * with any flags (`yarn node -e …`). Looked for in every argument, because options that take a
 * value make the sub-command's position ambiguous.
 */
export const PACKAGE_MANAGER_DENIED_SUBCOMMANDS: readonly string[] = words(
  'exec x dlx create explore node',
);
/** Package-manager options that choose the shell or preload code for scripts. */
export const PACKAGE_MANAGER_DENIED_OPTIONS: readonly string[] = words(
  '--script-shell --node-options --userconfig --globalconfig --call',
);

/** git options before the sub-command that take the next word as their value. */
const GIT_GLOBAL_OPTIONS_WITH_VALUE = words(
  '-C --git-dir --work-tree --namespace --super-prefix --attr-source',
);
/** git options refused anywhere, by rule. */
export const GIT_DENIED_OPTIONS = Object.freeze({
  'git-config': words('--config --config-env'),
  'git-command-option': words(
    '--exec-path --upload-pack --receive-pack --exec --template --extcmd --open-files-in-pager',
  ),
} as const satisfies Partial<Record<CommandPolicyRule, readonly string[]>>);
/** Short git options refused after a given sub-command (also inside a cluster). */
export const GIT_DENIED_SHORT_OPTIONS: Readonly<Record<string, string>> = Object.freeze({
  clone: 'uc',
  rebase: 'x',
  difftool: 'xt',
  mergetool: 't',
  grep: 'O',
});
/** git sub-commands refused outright: they run commands or serve the repository. */
export const GIT_DENIED_SUBCOMMANDS: readonly string[] = words(
  'filter-branch daemon instaweb send-email shell upload-pack receive-pack credential http-backend',
);
/** git sub-command actions refused: they run an arbitrary command. */
export const GIT_DENIED_SUBCOMMAND_ACTIONS: Readonly<Record<string, readonly string[]>> =
  Object.freeze({
    submodule: ['foreach'],
    bisect: ['run'],
  });
/** git configuration keys (lower-cased, anchored) whose value is a program or a command. */
export const GIT_COMMAND_CONFIGURATION_KEYS: readonly RegExp[] = Object.freeze([
  /^core\.(?:sshcommand|pager|fsmonitor|hookspath|editor|askpass|gitproxy|alternaterefscommand)$/,
  /^(?:sequence\.editor|diff\.external|include\.path|uploadpack\.packobjectshook|interactive\.difffilter|web\.browser)$/,
  /^(?:alias|pager|includeif)\./,
  /^(?:diff|filter|merge|credential|gpg|remote|browser|man|difftool|mergetool|protocol)\..*\.(?:textconv|command|clean|smudge|process|driver|helper|program|uploadpack|receivepack|cmd|allow|path)$/,
  /^(?:credential\.helper|gpg\.program)$/,
]);
/** git remote helpers that run commands. */
export const GIT_DENIED_TRANSPORTS: readonly string[] = words('ext:: fd::');

/** Options of ordinary tools that make them run another program, by program. */
export const COMMAND_RUNNING_OPTIONS: Readonly<
  Record<string, { readonly longOptions: readonly string[]; readonly shortFlags: string }>
> = Object.freeze({
  tar: {
    longOptions: words(
      '--to-command --checkpoint-action --use-compress-program --info-script --new-volume-script --rsh-command',
    ),
    shortFlags: 'IF',
  },
  zip: { longOptions: words('-TT --unzip-command'), shortFlags: '' },
  sort: { longOptions: words('--compress-program'), shortFlags: '' },
  rg: { longOptions: words('--pre'), shortFlags: '' },
  fd: { longOptions: words('--exec --exec-batch'), shortFlags: 'xX' },
  fdfind: { longOptions: words('--exec --exec-batch'), shortFlags: 'xX' },
  man: { longOptions: words('--pager --html'), shortFlags: 'PH' },
});

/** Argument prefixes that load a start-up file. */
export const STARTUP_FILE_OPTIONS: readonly string[] = words('--rcfile --init-file');

const ENVIRONMENT_ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;
const CONTROL_CHARACTER = /\p{Cc}/u;
const INVISIBLE_CHARACTER = /[\p{Cf}\p{Zl}\p{Zp}\p{Cs}]|(?! )\p{Zs}/u;
const NON_ASCII = /[^ -~]/;
const PROGRAM_NAME = /^[A-Za-z0-9._+@/][A-Za-z0-9._+@/-]*$/;

const METACHARACTER_RULES = new Map<string, CommandPolicyRule>(
  Object.entries(SHELL_METACHARACTERS).flatMap(([rule, characters]) =>
    Array.from(characters, (character): [string, CommandPolicyRule] => [
      character,
      rule as CommandPolicyRule,
    ]),
  ),
);
const DENIED_PROGRAMS = new Map<string, string>(
  DENIED_PROGRAM_GROUPS.flatMap((group) =>
    group.programs.map((program): [string, string] => [program, group.reason]),
  ),
);

type Refusal = Extract<CommandLineVerdict, { ok: false }>;

function refuse(rule: CommandPolicyRule, reason: string): Refusal {
  return { ok: false, rule, reason };
}

/**
 * Parses and polices one command line. Never throws: anything unexpected is a refusal.
 *
 * @example
 * ```ts
 * parseCommandLine('git status --short'); // { ok: true, argv: ['git', 'status', '--short'] }
 * parseCommandLine('ls; id'); // { ok: false, rule: 'command-chaining', reason: '…' }
 * parseCommandLine('bash -c id'); // { ok: false, rule: 'denied-program', reason: '…' }
 * ```
 */
export function parseCommandLine(command: string): CommandLineVerdict {
  try {
    const normalised = normaliseCommandLine(command);
    if (!normalised.ok) return normalised;
    return checkArgv(normalised.argv) ?? normalised;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return refuse('policy-error', `the command policy failed (${message}); the command is refused`);
  }
}

function normaliseCommandLine(command: unknown): CommandLineVerdict {
  if (typeof command !== 'string')
    return refuse('not-a-string', `expected a string, got ${typeof command}`);
  if (command.length > MAXIMUM_COMMAND_LENGTH) {
    return refuse(
      'too-long',
      `the command is ${command.length} characters; the limit is ${MAXIMUM_COMMAND_LENGTH}`,
    );
  }
  const control = CONTROL_CHARACTER.exec(command);
  if (control !== null) {
    return refuse(
      'control-character',
      `${describeCharacter(control[0], control.index)} is a control character; send one command on one line, separate words with plain spaces`,
    );
  }
  const invisible = INVISIBLE_CHARACTER.exec(command);
  if (invisible !== null) {
    return refuse(
      'invisible-character',
      `${describeCharacter(invisible[0], invisible.index)} is invisible or a non-plain space; use plain ASCII spaces only`,
    );
  }
  if (command.normalize('NFKC') !== command) {
    return refuse(
      'not-normalised',
      'the command changes under Unicode NFKC normalisation (full-width or look-alike characters); type it in plain ASCII',
    );
  }
  const nonAscii = NON_ASCII.exec(command);
  if (nonAscii !== null) {
    return refuse(
      'non-ascii',
      `${describeCharacter(nonAscii[0], nonAscii.index)} is not printable ASCII (possibly a homoglyph); only printable ASCII is accepted`,
    );
  }
  for (let index = 0; index < command.length; index += 1) {
    const character = command.charAt(index);
    const rule = METACHARACTER_RULES.get(character);
    if (rule !== undefined) {
      return refuse(
        rule,
        `"${character}" at column ${index + 1}: ${commandPolicyRules[rule]} Commands run without a shell; pass plain words only`,
      );
    }
  }
  const argv = command.split(' ').filter((word) => word.length > 0);
  if (argv.length === 0) return refuse('empty', 'the command is empty');
  return { ok: true, argv };
}

function describeCharacter(character: string, index: number): string {
  const codePoint = character.codePointAt(0) ?? 0;
  return `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')} at column ${index + 1}`;
}

/**
 * The names a program is known by: its basename, lower-cased, without `.exe` or a version
 * (`python3.12` is `python`); for a name looked up on PATH also the part before its first dot
 * (`nc.openbsd` is `nc`). Workspace scripts are run by path, so `./env.sh` stays `env.sh`.
 */
function programIdentities(program: string): readonly string[] {
  const basename = program
    .slice(program.lastIndexOf('/') + 1)
    .toLowerCase()
    .replace(/\.exe$/, '');
  const names = program.includes('/') ? [basename] : [basename, basename.split('.', 1)[0] ?? ''];
  return names.map((name) => {
    const unversioned = name.replace(/[-.]?[0-9][0-9.]*$/, '');
    return unversioned.length > 0 ? unversioned : name;
  });
}

/** An own entry of a frozen table, never one inherited from `Object.prototype`. */
function ownEntry<Value>(table: Readonly<Record<string, Value>>, key: string): Value | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

/** Whether an argument is `option` or `option=value`. */
function isOption(argument: string, option: string): boolean {
  return argument === option || argument.startsWith(`${option}=`);
}

/** The first letter of `letters` set in a short-option cluster (`-xzf`), before a value letter. */
function clusterFlag(argument: string, letters: string, valueLetters = ''): string | undefined {
  if (!argument.startsWith('-') || argument.startsWith('--') || argument.length < 2)
    return undefined;
  for (const letter of argument.slice(1)) {
    if (letters.includes(letter)) return letter;
    if (valueLetters.includes(letter)) return undefined;
  }
  return undefined;
}

function checkArgv(argv: readonly string[]): Refusal | undefined {
  const program = argv[0] ?? '';
  if (ENVIRONMENT_ASSIGNMENT.test(program)) {
    return refuse(
      'environment-assignment',
      `"${program.slice(0, program.indexOf('=') + 1)}…" assigns an environment variable for the command (LD_PRELOAD, PATH and NODE_OPTIONS change what runs); the environment is fixed by the sandbox`,
    );
  }
  if (!PROGRAM_NAME.test(program)) {
    return refuse(
      'program-name',
      `"${program}" is not a program name: it must not start with "-" and may hold only letters, digits and . _ + @ / -`,
    );
  }
  const identities = programIdentities(program);
  for (const name of identities) {
    const deniedReason = DENIED_PROGRAMS.get(name);
    if (deniedReason !== undefined) return refuse('denied-program', `"${name}" ${deniedReason}`);
  }
  const identity = identities[0] ?? program;
  const packageRefusal = checkPackageManager(identity, argv);
  if (packageRefusal !== undefined) return packageRefusal;
  for (const argument of argv) {
    if (argument.split(/[/=:,]/).includes('..')) {
      return refuse(
        'path-traversal',
        `"${argument}" has a ".." segment; use paths inside the workspace, relative to it`,
      );
    }
  }
  if (program.includes('/') && !isPlainRelativePath(program)) {
    return refuse(
      'program-path',
      `"${program}" must be a program name or a plain relative path inside the workspace (like node_modules/.bin/tsc)`,
    );
  }
  for (const argument of argv) {
    const refusal = checkArgument(argument);
    if (refusal !== undefined) return refusal;
  }
  return (
    checkInterpreter(identity, argv) ??
    checkFind(identity, argv) ??
    checkGit(identity, argv) ??
    checkCommandOptions(identity, argv)
  );
}

function isPlainRelativePath(path: string): boolean {
  if (path.startsWith('/')) return false;
  const segments = path.split('/');
  return segments.every((segment, index) => segment.length > 0 && (segment !== '.' || index === 0));
}

function checkArgument(argument: string): Refusal | undefined {
  const lower = argument.toLowerCase();
  if (lower.includes('/dev/tcp') || lower.includes('/dev/udp')) {
    return refuse('sensitive-path', `"${argument}" names a network pseudo-device`);
  }
  const proc = lower.indexOf('/proc/');
  if (proc >= 0 && (lower.includes('/environ', proc) || lower.includes('/mem', proc))) {
    return refuse('sensitive-path', `"${argument}" reads a process's environment or memory`);
  }
  const startup = STARTUP_FILE_OPTIONS.find((option) => lower.startsWith(option));
  if (startup !== undefined)
    return refuse('startup-file', `"${startup}" loads a start-up file that runs code`);
  return undefined;
}

function checkPackageManager(identity: string, argv: readonly string[]): Refusal | undefined {
  if (PACKAGE_RUNNER_PROGRAMS.includes(identity)) {
    return refuse(
      'package-runner',
      `"${identity}" downloads and runs packages by name; run a local tool by its path (node_modules/.bin/<tool>) or through a package script (npm run <script>)`,
    );
  }
  if (!PACKAGE_MANAGER_PROGRAMS.includes(identity)) return undefined;
  const separator = argv.indexOf('--');
  const own = separator < 0 ? argv.slice(1) : argv.slice(1, separator);
  for (const [index, argument] of own.entries()) {
    const option = PACKAGE_MANAGER_DENIED_OPTIONS.find((denied) => isOption(argument, denied));
    if (option !== undefined)
      return refuse(
        'package-runner',
        `"${identity} ${option}" chooses the shell or preloads code for package scripts`,
      );
    if (PACKAGE_MANAGER_DENIED_SUBCOMMANDS.includes(argument)) {
      return refuse(
        'package-runner',
        `"${identity} ${argument}" runs a package or a command of the caller's choosing; use an installed tool through a package script`,
      );
    }
    if (argument === 'init' && own.slice(index + 1).some((next) => !next.startsWith('-'))) {
      return refuse(
        'package-runner',
        `"${identity} init <initializer>" downloads and runs the initializer package`,
      );
    }
  }
  return undefined;
}

function checkInterpreter(identity: string, argv: readonly string[]): Refusal | undefined {
  const rule = INTERPRETER_EVAL_RULES.find((candidate) => candidate.programs.includes(identity));
  if (rule === undefined) return undefined;
  const reason = (flag: string): Refusal =>
    refuse(
      'interpreter-eval',
      `"${identity} ${flag}" runs code given on the command line or preloads a module; write the code to a file in the workspace and run that file`,
    );
  const arguments_ = argv.slice(1);
  const firstOperand = arguments_.find((argument) => !argument.startsWith('-'));
  if (firstOperand !== undefined && (rule.subcommands ?? []).includes(firstOperand))
    return reason(firstOperand);
  for (const argument of arguments_) {
    const long = (rule.longFlags ?? []).find((flag) => isOption(argument, flag));
    if (long !== undefined) return reason(long);
    const short = clusterFlag(argument, rule.shortFlags, rule.valueFlags);
    if (short !== undefined) return reason(`-${short}`);
  }
  return undefined;
}

function checkFind(identity: string, argv: readonly string[]): Refusal | undefined {
  if (identity !== 'find' && identity !== 'gfind') return undefined;
  const action = argv
    .slice(1)
    .find((argument) => FIND_DENIED_ACTIONS.includes(argument) || argument.startsWith('-fprint'));
  return action === undefined
    ? undefined
    : refuse(
        'find-action',
        `"find ${action}" runs a command, deletes or writes files; list with find, then act with a separate tool call`,
      );
}

function checkGit(identity: string, argv: readonly string[]): Refusal | undefined {
  if (identity !== 'git') return undefined;
  let subcommandIndex = argv.length;
  for (let index = 1; index < argv.length; index += 1) {
    const argument = argv[index] ?? '';
    if (argument.startsWith('-c')) {
      return refuse(
        'git-config',
        `"git ${argument}" overrides configuration, which can name commands git runs (core.pager, core.sshCommand)`,
      );
    }
    if (GIT_GLOBAL_OPTIONS_WITH_VALUE.includes(argument)) index += 1;
    else if (!argument.startsWith('-')) {
      subcommandIndex = index;
      break;
    }
  }
  for (const argument of argv.slice(1)) {
    for (const [rule, options] of Object.entries(GIT_DENIED_OPTIONS)) {
      const option = options.find((denied) => isOption(argument, denied));
      if (option !== undefined)
        return refuse(
          rule as CommandPolicyRule,
          `"git ${option}" makes git run a program or configuration of the caller's choosing`,
        );
    }
    const lower = argument.toLowerCase();
    const key = lower.split('=', 1)[0] ?? '';
    if (GIT_COMMAND_CONFIGURATION_KEYS.some((pattern) => pattern.test(key))) {
      return refuse('git-config', `"${key}" is a git configuration key whose value is a command`);
    }
    if (GIT_DENIED_TRANSPORTS.some((transport) => lower.includes(transport))) {
      return refuse('git-transport', `"${argument}" uses a git remote helper that runs a command`);
    }
  }
  const subcommand = argv[subcommandIndex];
  if (subcommand === undefined) return undefined;
  if (GIT_DENIED_SUBCOMMANDS.includes(subcommand))
    return refuse('git-subcommand', `"git ${subcommand}" runs commands or serves the repository`);
  const rest = argv.slice(subcommandIndex + 1);
  const action = rest.find((argument) =>
    ownEntry(GIT_DENIED_SUBCOMMAND_ACTIONS, subcommand)?.includes(argument),
  );
  if (action !== undefined)
    return refuse('git-subcommand', `"git ${subcommand} ${action}" runs an arbitrary command`);
  const letters = ownEntry(GIT_DENIED_SHORT_OPTIONS, subcommand) ?? '';
  for (const argument of rest) {
    const letter = clusterFlag(argument, letters);
    if (letter !== undefined) {
      const rule = subcommand === 'clone' && letter === 'c' ? 'git-config' : 'git-command-option';
      return refuse(
        rule,
        `"git ${subcommand} -${letter}" makes git run a program or configuration of the caller's choosing`,
      );
    }
  }
  return undefined;
}

function checkCommandOptions(identity: string, argv: readonly string[]): Refusal | undefined {
  const options = ownEntry(COMMAND_RUNNING_OPTIONS, identity);
  if (options === undefined) return undefined;
  for (const argument of argv.slice(1)) {
    const option =
      options.longOptions.find((denied) => isOption(argument, denied)) ??
      clusterFlag(argument, options.shortFlags);
    if (option !== undefined) {
      const shown = option.startsWith('-') ? option : `-${option}`;
      return refuse(
        'command-option',
        `"${identity} ${shown}" makes ${identity} run another program`,
      );
    }
  }
  return undefined;
}
