import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { summariseChatParameters } from './llm-call-parameters.ts';

describe('summariseChatParameters', () => {
  it('keeps the settings, counts the messages, keeps the last one and names the tools', () => {
    assert.deepEqual(
      summariseChatParameters({
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'tool', toolCallId: 'c1', content: '{"ok":true}' },
        ],
        tools: [{ name: 'read_file', parameters: { type: 'object' } }],
        maxOutputTokens: 100,
      }),
      {
        maxOutputTokens: 100,
        messages: 2,
        lastMessage: { role: 'tool', toolCallId: 'c1', content: '{"ok":true}' },
        tools: ['read_file'],
      },
    );
  });

  it('keeps whatever an invalid call holds, for the refusal to be audited', () => {
    assert.deepEqual(summariseChatParameters({}), {});
    assert.deepEqual(summariseChatParameters({ messages: [] }), { messages: 0 });
    assert.deepEqual(summariseChatParameters({ messages: 'hi', tools: 3 }), {
      messages: 'hi',
      tools: 3,
    });
    assert.deepEqual(summariseChatParameters({ messages: [1], tools: [{ nameless: true }, 'x'] }), {
      messages: 1,
      lastMessage: 1,
      tools: [{ nameless: true }, 'x'],
    });
  });
});
