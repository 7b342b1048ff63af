import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { summariseChatParameters } from './llm-call-parameters.ts';

describe('summariseChatParameters', () => {
  it('keeps the settings, counts the messages, keeps those after the last assistant message and names the tools', () => {
    const system = { role: 'system', content: 'be brief' };
    const task = { role: 'user', content: 'read two files' };
    const assistant = { role: 'assistant', content: '', toolCalls: [] };
    const first = { role: 'tool', toolCallId: 'c1', content: '{"ok":true}' };
    const second = { role: 'tool', toolCallId: 'c2', content: '{"ok":false}' };
    const nudge = { role: 'user', content: 'you are repeating yourself' };
    assert.deepEqual(
      summariseChatParameters({
        messages: [system, task, assistant, first, second, nudge],
        tools: [{ name: 'read_file', parameters: { type: 'object' } }],
        maxOutputTokens: 100,
      }),
      {
        maxOutputTokens: 100,
        messages: 6,
        newMessages: [first, second, nudge],
        tools: ['read_file'],
      },
    );
    // The first call: everything is new, the system prompt included.
    assert.deepEqual(summariseChatParameters({ messages: [system, task] }), {
      messages: 2,
      newMessages: [system, task],
    });
    assert.deepEqual(summariseChatParameters({ messages: [system, task, assistant] }), {
      messages: 3,
      newMessages: [],
    });
  });

  it('keeps whatever an invalid call holds, for the refusal to be audited', () => {
    assert.deepEqual(summariseChatParameters({}), {});
    assert.deepEqual(summariseChatParameters({ messages: [] }), { messages: 0, newMessages: [] });
    assert.deepEqual(summariseChatParameters({ messages: 'hi', tools: 3 }), {
      messages: 'hi',
      tools: 3,
    });
    assert.deepEqual(summariseChatParameters({ messages: [1], tools: [{ nameless: true }, 'x'] }), {
      messages: 1,
      newMessages: [1],
      tools: [{ nameless: true }, 'x'],
    });
  });
});
