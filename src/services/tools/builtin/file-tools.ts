import { z } from 'zod';
import { compilePath } from '../../../kernel/capabilities/pattern-matchers.ts';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { JsonObject, JsonValue } from '../../../platform/storage/ports/json-value.ts';
import type { AgentWorkspaces } from '../agent-workspaces.ts';
import type { Workspace } from '../files/workspace.ts';
import { deniedPattern } from '../files/workspace-path-policy.ts';
import { redactSecrets, scanForSecrets } from '../secrets/secret-scanner.ts';
import { defineTool, type ToolDefinition } from '../tool-registry.ts';

/** The largest file a tool reads or writes whole. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;
/** The most text one read returns; the rest is paged with offset and limit. */
const MAX_READ_CHARACTERS = 256 * 1024;
const DEFAULT_READ_LINES = 2000;
/** How many entries a search visits and returns at most. */
const MAX_VISITED = 20_000;
const MAX_RESULTS = 1000;
/** Folders a search does not enter (listing and reading them by path still works). */
const SKIPPED_FOLDERS = new Set(['.git', 'node_modules']);

const path = z.string().min(1).max(4096);

/**
 * Refuses content that holds a key or token: a write would put it in the repository, and from
 * there in commits and backups.
 */
function refuseSecrets(content: string, where: string): void {
  const findings = scanForSecrets(content);
  if (findings.length === 0) return;
  throw new KeelError(
    'KEEL_POLICY_VIOLATION',
    `${where} holds what looks like a secret (${findings.map((finding) => `${finding.rule} at line ${finding.line}`).join(', ')}); keep secrets out of files and read them from the environment`,
    {
      details: {
        rule: 'secret-in-content',
        findings: findings.map((finding) => ({ rule: finding.rule, line: finding.line })),
      },
    },
  );
}

function writtenEffect(value: JsonValue): JsonObject | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { path: written, sha256, bytes } = value as JsonObject;
  return { path: written ?? null, sha256: sha256 ?? null, bytes: bytes ?? null };
}

/** Walks the workspace from a folder, not following symlinks, yielding files' relative paths. */
async function* walkFiles(workspace: Workspace, start: string): AsyncGenerator<string> {
  const pending = [start];
  let visited = 0;
  while (pending.length > 0) {
    const folder = pending.shift() as string;
    const entries = await workspace.list(folder);
    for (const entry of entries) {
      visited += 1;
      if (visited > MAX_VISITED) return;
      const relative = folder === '.' ? entry.name : `${folder}/${entry.name}`;
      if (deniedPattern(relative) !== undefined) continue;
      if (entry.type === 'directory' && !SKIPPED_FOLDERS.has(entry.name)) pending.push(relative);
      else if (entry.type === 'file') yield relative;
    }
  }
}

/**
 * The file tools of an agent's workspace: `read_file` (paged by lines), `write_file` (atomic,
 * checksum audited, secrets refused), `edit_file` (one exact match), `list_files`,
 * `glob_files` and `grep_files` (literal text). Paths go through the workspace's policy and
 * race-free resolution (see `Workspace`).
 *
 * @example
 * ```ts
 * const registry = new ToolRegistry(createFileTools(workspaces));
 * ```
 */
export function createFileTools(workspaces: AgentWorkspaces): ToolDefinition<never>[] {
  const read = defineTool({
    name: 'read_file',
    description:
      'Reads a text file of the workspace. Lines are numbered from 1; pass offset and limit to read a long file in parts.',
    input: z.strictObject({
      path,
      offset: z.number().int().min(1).max(10_000_000).optional(),
      limit: z.number().int().min(1).max(100_000).optional(),
    }),
    execute: async (input, context) => {
      const { workspace } = workspaces.of(context.agentId);
      const { text } = await workspace.readText(input.path, MAX_FILE_BYTES);
      const lines = text.split('\n');
      const offset = input.offset ?? 1;
      const limit = input.limit ?? DEFAULT_READ_LINES;
      let content = lines.slice(offset - 1, offset - 1 + limit).join('\n');
      let end = Math.min(lines.length, offset - 1 + limit);
      if (content.length > MAX_READ_CHARACTERS) {
        content = content.slice(0, MAX_READ_CHARACTERS);
        end = offset - 1 + content.split('\n').length - 1;
      }
      // What the model sees is journaled and kept in its conversation: no secret goes there.
      const redacted = redactSecrets(content);
      return {
        path: input.path,
        content: redacted.text,
        redactions: redacted.redactions,
        totalLines: lines.length,
        offset,
        nextOffset: end < lines.length ? end + 1 : null,
      };
    },
  });
  const write = defineTool({
    name: 'write_file',
    description:
      'Creates or replaces a text file of the workspace atomically (missing folders are created).',
    sideEffects: true,
    input: z.strictObject({ path, content: z.string().max(MAX_FILE_BYTES) }),
    execute: async (input, context) => {
      const { workspace } = workspaces.of(context.agentId);
      refuseSecrets(input.content, input.path);
      const written = await workspace.writeAtomically(input.path, Buffer.from(input.content), {
        createFolders: true,
      });
      return { ...written };
    },
    effectOf: writtenEffect,
  });
  const edit = defineTool({
    name: 'edit_file',
    description:
      'Replaces one exact piece of text in a file. The old text must occur exactly once; include enough surrounding lines to make it unique.',
    sideEffects: true,
    input: z.strictObject({
      path,
      old: z.string().min(1).max(MAX_FILE_BYTES),
      new: z.string().max(MAX_FILE_BYTES),
    }),
    execute: async (input, context) => {
      const { workspace } = workspaces.of(context.agentId);
      const { text } = await workspace.readText(input.path, MAX_FILE_BYTES);
      const first = text.indexOf(input.old);
      if (first < 0) {
        throw new KeelError(
          'KEEL_INVALID_ARGUMENT',
          `the old text does not occur in ${input.path}`,
          {
            details: { path: input.path, matches: 0 },
          },
        );
      }
      if (text.indexOf(input.old, first + 1) >= 0) {
        throw new KeelError(
          'KEEL_INVALID_ARGUMENT',
          `the old text occurs more than once in ${input.path}; include more context to make it unique`,
          { details: { path: input.path, matches: countOccurrences(text, input.old) } },
        );
      }
      refuseSecrets(input.new, input.path);
      const changed = `${text.slice(0, first)}${input.new}${text.slice(first + input.old.length)}`;
      const written = await workspace.writeAtomically(input.path, Buffer.from(changed), {
        createFolders: false,
      });
      return { ...written, line: text.slice(0, first).split('\n').length };
    },
    effectOf: writtenEffect,
  });
  const list = defineTool({
    name: 'list_files',
    description: 'Lists a folder of the workspace (default: its root).',
    input: z.strictObject({ path: path.optional() }),
    execute: async (input, context) => {
      const { workspace } = workspaces.of(context.agentId);
      const folder = input.path ?? '.';
      const entries = await workspace.list(folder);
      return entries
        .filter((entry) => {
          const relative = folder === '.' ? entry.name : `${folder}/${entry.name}`;
          return deniedPattern(relative) === undefined;
        })
        .slice(0, MAX_RESULTS)
        .map((entry) => ({ name: entry.name, type: entry.type }));
    },
  });
  const glob = defineTool({
    name: 'glob_files',
    description:
      'Finds files of the workspace whose path matches a pattern (** any folders, * and ? within a name), e.g. src/**/*.ts.',
    input: z.strictObject({ pattern: z.string().min(1).max(1024), path: path.optional() }),
    execute: async (input, context) => {
      const { workspace } = workspaces.of(context.agentId);
      const matches = compilePath(input.pattern);
      const found: string[] = [];
      for await (const file of walkFiles(workspace, input.path ?? '.')) {
        if (matches(file)) found.push(file);
        if (found.length >= MAX_RESULTS) break;
      }
      return { files: found, truncated: found.length >= MAX_RESULTS };
    },
  });
  const grep = defineTool({
    name: 'grep_files',
    description:
      'Searches the text files of the workspace for a literal text and returns matching lines with their line numbers.',
    input: z.strictObject({
      text: z.string().min(1).max(1000),
      path: path.optional(),
      ignoreCase: z.boolean().optional(),
      maxResults: z.number().int().min(1).max(MAX_RESULTS).optional(),
    }),
    execute: async (input, context) => {
      const { workspace } = workspaces.of(context.agentId);
      const limit = input.maxResults ?? 200;
      const needle = input.ignoreCase === true ? input.text.toLowerCase() : input.text;
      const matches: { path: string; line: number; text: string }[] = [];
      for await (const file of walkFiles(workspace, input.path ?? '.')) {
        let text: string;
        try {
          ({ text } = await workspace.readText(file, MAX_FILE_BYTES));
        } catch (error) {
          // Too large, or gone meanwhile: a search skips it rather than failing.
          if (error instanceof KeelError) continue;
          throw error;
        }
        if (text.includes('\0')) continue;
        const lines = text.split('\n');
        for (const [index, line] of lines.entries()) {
          const haystack = input.ignoreCase === true ? line.toLowerCase() : line;
          if (!haystack.includes(needle)) continue;
          matches.push({
            path: file,
            line: index + 1,
            text: redactSecrets(line.slice(0, 500)).text,
          });
          if (matches.length >= limit) return { matches, truncated: true };
        }
      }
      return { matches, truncated: false };
    },
  });
  return [read, write, edit, list, glob, grep] as unknown as ToolDefinition<never>[];
}

function countOccurrences(text: string, part: string): number {
  let count = 0;
  for (let index = text.indexOf(part); index >= 0; index = text.indexOf(part, index + 1)) {
    count += 1;
  }
  return count;
}
