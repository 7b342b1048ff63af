import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { JsonObject } from '../../src/platform/storage/ports/json-value.ts';
import { createFetchTool } from '../../src/services/tools/builtin/fetch-tool.ts';
import { createFileTools } from '../../src/services/tools/builtin/file-tools.ts';
import { ToolRegistry } from '../../src/services/tools/tool-registry.ts';
import { rejectsWithCode } from '../support/assertions.ts';
import { createToolRig, type ToolRig } from '../support/tool-rig.ts';

const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';
const CONFIG = `export const region = 'eu-west-1';\nexport const key = '${AWS_KEY}';\nexport const author = 'ada@example.org';\n`;

describe('what tools read: redacted before the model, the journal or memory see it; fetches stay on their host', () => {
  let rig: ToolRig;
  let tools: ToolRegistry;
  const server = createServer((request, response) => {
    if (request.url === '/elsewhere') {
      // The same server under another name: allowed by address, but another host.
      const port = (server.address() as AddressInfo).port;
      response.writeHead(302, { location: `http://127.0.0.2:${port}/page` }).end();
      return;
    }
    if (request.url === '/here') {
      response.writeHead(302, { location: '/page' }).end();
      return;
    }
    response.setHeader('content-type', 'text/plain');
    response.end(`token ${AWS_KEY}\nwrite to ada@example.org or call +44 20 7946 0958\n`);
  });
  let url: string;
  const call = (tool: string, args: JsonObject) =>
    rig.call(tools, 'agent_reader', tool, args) as Promise<JsonObject>;

  before(async () => {
    rig = await createToolRig();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/page`;
    tools = new ToolRegistry([
      ...createFileTools(rig.workspaces),
      createFetchTool({
        timeoutMs: 5000,
        maxBytes: 65_536,
        maxRedirects: 3,
        // Loopback is refused unless allowed: this test's server is the one exception.
        allowedAddresses: ['127.0.0.0/8'],
      }),
    ]);
    await rig.workspace('agent_reader', { 'src/config.js': CONFIG });
  });
  after(async () => {
    server.close();
    await rig[Symbol.asyncDispose]();
  });

  it('read_file hides secrets but keeps the rest of the code, and says how many', async () => {
    const read = await call('read_file', { path: 'src/config.js' });
    const content = read.content as string;
    assert.doesNotMatch(content, new RegExp(AWS_KEY));
    assert.match(content, /export const key = '\[REDACTED:aws-access-key-id\]';/);
    assert.match(content, /ada@example\.org/, 'an e-mail address in code is code');
    assert.equal(read.redactions, 1);
  });

  it('grep_files hides secrets in the lines it returns', async () => {
    const found = await call('grep_files', { text: 'export const' });
    const lines = (found.matches as JsonObject[]).map((match) => match.text as string);
    assert.equal(lines.length, 3);
    assert.ok(lines.every((line) => !line.includes(AWS_KEY)));
    assert.ok(lines.some((line) => line.includes('[REDACTED:aws-access-key-id]')));
  });

  it('fetch_url hides secrets and personal data of a page', async () => {
    const fetched = await call('fetch_url', { url });
    const body = fetched.body as string;
    assert.equal(fetched.status, 200);
    assert.doesNotMatch(body, new RegExp(`${AWS_KEY}|ada@example\\.org|7946`));
    assert.match(body, /token \[REDACTED:aws-access-key-id\]/);
    assert.match(body, /\[REDACTED:email\]/);
  });

  it('fetch_url follows a redirect on the same host and refuses one to another host', async () => {
    const followed = await call('fetch_url', { url: url.replace('/page', '/here') });
    assert.equal(followed.status, 200);
    assert.deepEqual(followed.redirects, [url]);
    const refused = await rejectsWithCode(
      call('fetch_url', { url: url.replace('/page', '/elsewhere') }),
      'KEEL_POLICY_VIOLATION',
    );
    assert.equal(refused.details.rule, 'redirect-host');
  });
});
