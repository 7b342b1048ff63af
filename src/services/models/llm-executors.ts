import { createHash } from 'node:crypto';
import { type BudgetLedger, scopesFor } from '../../kernel/budgets/budget-ledger.ts';
import type {
  EstimateContext,
  ExecutionContext,
  ExecutorResult,
  SyscallExecutor,
  SyscallIntent,
  UsageAccounting,
} from '../../kernel/gate/syscall.ts';
import { KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import { canonicalJson } from '../../platform/integrity/canonical-json.ts';
import type { JsonValue } from '../../platform/storage/ports/json-value.ts';
import type { PriceTable } from './accounting/price-table.ts';
import type { TokenEstimator } from './accounting/token-estimator.ts';
import {
  type CachedConversation,
  ConversationCache,
  DEFAULT_CONVERSATION_LIMITS,
} from './conversation-cache.ts';
import {
  type ChatCall,
  chatCallOf,
  type EmbedCall,
  embedCallOf,
  MAX_CHAT_MESSAGES,
  summariseChatParameters,
} from './llm-call-parameters.ts';
import type {
  ChatMessage,
  ChatResponse,
  FinishReason,
  TokenUsage,
  ToolCall,
} from './provider/model-provider.ts';
import type { ModelRouter, RouteAttempt, RouteTarget } from './router/model-router.ts';

export interface LlmExecutorDependencies {
  readonly router: ModelRouter;
  readonly prices: PriceTable;
  readonly estimator: TokenEstimator;
  readonly budgets: BudgetLedger;
  /** Provider name → kind, so prices can be found by either. */
  readonly providerKinds: ReadonlyMap<string, string>;
  readonly defaultMaxOutputTokens: number;
  readonly maxOutputTokens: number;
  /** The router's total deadline; the gate's timeout is a little longer. */
  readonly deadlineMs: number;
  readonly onUnpriced?: (target: RouteTarget) => void;
  /** Runs' conversations kept for `continues` (default: 64 MiB, 4,096 runs). */
  readonly conversations?: ConversationCache;
}

/** A chat call with the conversation it continues resolved and its input counted. */
interface ResolvedChatCall extends ChatCall {
  /** The whole conversation's tokens before the margin. */
  readonly messageTokens: number;
  readonly inputTokens: number;
  /**
   * UTF-8 bytes of the whole conversation's canonical JSON (the messages array); measured for
   * a call sent whole only when its conversation is kept for the run.
   */
  readonly messageBytes: number | undefined;
}

/** UTF-8 bytes of messages' canonical JSON, as an array. */
function messagesBytes(messages: readonly ChatMessage[]): number {
  return Buffer.byteLength(canonicalJson(messages), 'utf8');
}

/**
 * Puts a call's messages after the conversation it continues, and counts the input. Only the
 * new messages are counted and measured: the earlier ones were when their call was made. A
 * conversation the node does not hold (another run's, one it dropped, one from before a
 * restart) is `KEEL_CONVERSATION_UNKNOWN`; the caller sends the whole conversation instead,
 * which is why a continued call may not grow past what that whole call could carry
 * (`KEEL_PAYLOAD_TOO_LARGE`, as the whole call would be).
 */
function resolveChatCall(
  call: ChatCall,
  estimateContext: EstimateContext | undefined,
  conversations: ConversationCache,
  estimator: TokenEstimator,
): ResolvedChatCall {
  const added = call.request.messages;
  const addedTokens = estimator.countMessages(added);
  if (call.fallbackOf !== undefined) {
    const seq = estimateContext?.caller.seq;
    if (
      seq === undefined ||
      estimateContext?.caller.runId === undefined ||
      call.fallbackOf >= seq
    ) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        'llm.chat params fallbackOf: names an earlier call of the same durable run',
        { details: { field: 'fallbackOf' } },
      );
    }
  }
  if (call.continues === undefined) {
    return {
      ...call,
      messageTokens: addedTokens,
      inputTokens: estimator.estimateInput(call.request, addedTokens),
      messageBytes: undefined,
    };
  }
  const runId = estimateContext?.caller.runId;
  if (estimateContext === undefined || runId === undefined) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      'llm.chat params continues: only a call of a durable run can continue a conversation',
      { details: { field: 'continues' } },
    );
  }
  const earlier: CachedConversation | undefined = conversations.get(runId, call.continues);
  if (earlier === undefined) {
    throw new KeelError(
      'KEEL_CONVERSATION_UNKNOWN',
      `llm.chat params continues: this node does not hold the conversation of call ${call.continues} of run ${runId}`,
      {
        details: {
          field: 'continues',
          runId,
          continues: call.continues,
          // What the caller's whole call names as `fallbackOf`.
          ...(estimateContext.caller.seq === undefined ? {} : { seq: estimateContext.caller.seq }),
        },
      },
    );
  }
  const count = earlier.messages.length + added.length;
  if (count > MAX_CHAT_MESSAGES) {
    throw new KeelError(
      'KEEL_INVALID_ARGUMENT',
      `llm.chat params messages: the conversation would have ${count} messages, more than ${MAX_CHAT_MESSAGES}`,
      { details: { field: 'messages', limit: MAX_CHAT_MESSAGES } },
    );
  }
  // `[a,b]` followed by `[c]` is `[a,b,c]`: one bracket pair fewer, one comma more.
  const addedBytes = messagesBytes(added);
  const messageBytes = earlier.bytes + addedBytes - 1;
  // The whole call: this one with the earlier messages too (and, unneeded, `continues`).
  const wholeBytes = estimateContext.intentBytes - addedBytes + messageBytes;
  if (wholeBytes > estimateContext.maxIntentBytes) {
    throw new KeelError(
      'KEEL_PAYLOAD_TOO_LARGE',
      `llm.chat: the conversation would make a call of ${wholeBytes} bytes, more than the ${estimateContext.maxIntentBytes} an intent may have`,
      { details: { limit: estimateContext.maxIntentBytes, size: wholeBytes } },
    );
  }
  const messageTokens = earlier.messageTokens + addedTokens;
  const request = { ...call.request, messages: [...earlier.messages, ...added] };
  return {
    ...call,
    request,
    messageTokens,
    inputTokens: estimator.estimateInput(request, messageTokens),
    messageBytes,
  };
}

/**
 * Attempt outcomes after which the provider did not process the request: it refused it (a
 * status error, a rate limit) or never received it (refused connection, open circuit, a Keel
 * limit, an excluded target). Providers do not bill those. Every other failed attempt (a
 * malformed or oversized answer, a stream cut, a timeout) is charged as a full call.
 */
const NOT_PROCESSED = new Set([
  'circuit-open',
  'KEEL_PROVIDER_UNAVAILABLE',
  'KEEL_PROVIDER_RATE_LIMITED',
  'KEEL_PROVIDER_REJECTED',
  'KEEL_RATE_LIMITED',
]);

function processed(attempt: RouteAttempt): boolean {
  return !NOT_PROCESSED.has(attempt.outcome) && !attempt.outcome.startsWith('excluded');
}

/** The attempts a router error carries, or undefined when it carries none. */
function attemptsOf(error: KeelError): readonly RouteAttempt[] | undefined {
  const attempts = error.details.attempts;
  return Array.isArray(attempts) ? (attempts as RouteAttempt[]) : undefined;
}

/**
 * The `llm.chat` and `llm.embed` syscall executors: every model call an agent makes arrives
 * here through the gate (capability, budget reservation, approval already passed). They
 * estimate the call's tokens and worst-case cost for the reservation, route it, price the
 * reported usage with the versioned price table, and hand the gate the usage record to commit
 * with the call's journal and audit entries.
 *
 * A model without a price is flagged (its cost is recorded as unknown, never zero) and is not
 * used at all while a budget of the caller limits cost. Every attempt the provider processed is
 * charged, also the failed ones before a success: a failed one as its input plus its whole
 * output bound, a broken stream as its input plus what was streamed. Attempts the provider
 * refused or never received cost nothing but the call; when the error does not say which
 * attempts ran (an abort), the whole reservation is charged.
 *
 * @example
 * ```ts
 * for (const executor of createLlmExecutors(dependencies)) kernel.registerExecutor(executor);
 * ```
 */
export function createLlmExecutors(dependencies: LlmExecutorDependencies): SyscallExecutor[] {
  const conversations =
    dependencies.conversations ?? new ConversationCache(DEFAULT_CONVERSATION_LIMITS);
  // The gate hands `estimate` and `doExecute` the same frozen intent: parse it, resolve the
  // conversation it continues and count its input tokens once (the tokenizer is the costly
  // part of a large prompt).
  const chatCalls = new WeakMap<SyscallIntent, ResolvedChatCall>();
  const chatCall = (
    intent: SyscallIntent,
    estimateContext: EstimateContext | undefined,
  ): ResolvedChatCall => {
    let call = chatCalls.get(intent);
    if (call === undefined) {
      call = resolveChatCall(
        chatCallOf(intent, dependencies.maxOutputTokens),
        estimateContext,
        conversations,
        dependencies.estimator,
      );
      chatCalls.set(intent, call);
    }
    return call;
  };
  const embedCalls = new WeakMap<SyscallIntent, EmbedCall & { readonly inputTokens: number }>();
  const embedCall = (intent: SyscallIntent) => {
    let call = embedCalls.get(intent);
    if (call === undefined) {
      const parsed = embedCallOf(intent);
      call = { ...parsed, inputTokens: dependencies.estimator.estimateEmbedding(parsed.inputs) };
      embedCalls.set(intent, call);
    }
    return call;
  };
  const accounting = new ModelAccounting(dependencies);
  const timeoutMs = dependencies.deadlineMs + 5_000;

  const chat: SyscallExecutor = {
    specificationVersion: 'v1',
    kind: 'llm.chat',
    timeoutMs,
    summarise: (intent) => summariseChatParameters(intent.params),
    // A call continued and the same call sent whole after a refusal (`fallbackOf`) do the same:
    // they share one approval, so a human is asked once, also when the node restarted or let
    // the conversation go while the run waited for them. What binds it is the whole request
    // (the gate adds the kind and the alias, the intent's resource).
    approvalSubject(intent) {
      const call = chatCall(intent, undefined);
      const digest = createHash('sha256')
        .update(canonicalJson({ stream: call.stream, request: call.request }))
        .digest('hex');
      return call.fallbackOf === undefined ? { digest } : { digest, seq: call.fallbackOf };
    },
    estimate(intent, estimateContext) {
      const call = chatCall(intent, estimateContext);
      const { inputTokens } = call;
      const outputTokens = call.request.maxOutputTokens ?? dependencies.defaultMaxOutputTokens;
      const costMicros = accounting.worstCost(call.alias, { inputTokens, outputTokens });
      return {
        tokens: inputTokens + outputTokens,
        calls: 1,
        ...(costMicros === undefined ? {} : { costMicros }),
      };
    },
    async doExecute(intent, context) {
      // The gate estimated this very intent before: its resolved call is the one kept.
      const requested = chatCall(intent, undefined);
      // The output bound that was reserved is the bound the provider gets: output can never
      // exceed what the budget set aside for it.
      const maxOutputTokens =
        requested.request.maxOutputTokens ?? dependencies.defaultMaxOutputTokens;
      const call = { ...requested, request: { ...requested.request, maxOutputTokens } };
      const exclude = await accounting.exclusion(call.alias, context);
      const inputEstimate = requested.inputTokens;
      const options = {
        signal: context.signal,
        agentId: context.agentId,
        estimatedTokens: inputEstimate + maxOutputTokens,
        ...(exclude === undefined ? {} : { exclude }),
      };
      const stream = new StreamState();
      let response: ChatResponse & { target: RouteTarget; attempts: readonly RouteAttempt[] };
      try {
        response = call.stream
          ? await streamChat(dependencies.router, call, options, context, stream)
          : await dependencies.router.chat(call.alias, call.request, options);
      } catch (error) {
        const failure = toKeelError(error);
        const attempts = attemptsOf(failure);
        if (stream.target !== undefined) {
          // The stream broke after it began: the input and what was streamed were consumed.
          const outputTokens = dependencies.estimator.countText(stream.text + stream.toolArguments);
          const [amounts, record] = accounting.charge(stream.target, {
            inputTokens: inputEstimate,
            outputTokens,
          });
          context.reportUsage(amounts, record);
        } else if (attempts !== undefined) {
          context.reportUsage(
            ...accounting.chargeAttempts(attempts.filter(processed), {
              inputTokens: inputEstimate,
              outputTokens: maxOutputTokens,
            }),
          );
        }
        throw failure;
      }
      const estimated = response.usage === undefined;
      const usage = response.usage ?? {
        inputTokens: inputEstimate,
        outputTokens: dependencies.estimator.countText(
          response.text + response.toolCalls.map((toolCall) => JSON.stringify(toolCall)).join(''),
        ),
      };
      const [amounts, record] = accounting.withFailedAttempts(
        accounting.charge(response.target, usage),
        response.attempts,
        { inputTokens: inputEstimate, outputTokens: maxOutputTokens },
      );
      const { runId, seq } = context;
      // The run's next call may now continue this conversation (answered with `seq`); not
      // one an approver edited: the program's conversation is the agent's, so its next call
      // goes whole, as it would have without `continues`.
      if (runId !== undefined && seq !== undefined && !context.edited) {
        conversations.remember(runId, {
          seq,
          messages: requested.request.messages,
          messageTokens: requested.messageTokens,
          bytes: requested.messageBytes ?? messagesBytes(requested.request.messages),
        });
      }
      const value: JsonValue = {
        ...(seq === undefined || runId === undefined ? {} : { seq }),
        text: response.text,
        toolCalls: response.toolCalls.map((toolCall) => ({ ...toolCall })),
        finishReason: response.finishReason,
        model: response.target.model,
        provider: response.target.provider,
        usage: { ...usage, costMicros: record.costMicros, estimated },
        attempts: response.attempts.map((attempt) => ({ ...attempt })),
      };
      return { value, usage: amounts, accounting: record } satisfies ExecutorResult;
    },
  };

  const embed: SyscallExecutor = {
    specificationVersion: 'v1',
    kind: 'llm.embed',
    timeoutMs,
    estimate(intent) {
      const call = embedCall(intent);
      const { inputTokens } = call;
      const costMicros = accounting.worstCost(call.alias, { inputTokens, outputTokens: 0 });
      return { tokens: inputTokens, calls: 1, ...(costMicros === undefined ? {} : { costMicros }) };
    },
    async doExecute(intent, context) {
      const call = embedCall(intent);
      const exclude = await accounting.exclusion(call.alias, context);
      const inputEstimate = call.inputTokens;
      let response: Awaited<ReturnType<ModelRouter['embed']>>;
      try {
        response = await dependencies.router.embed(
          call.alias,
          {
            inputs: call.inputs,
            ...(call.dimensions === undefined ? {} : { dimensions: call.dimensions }),
          },
          {
            signal: context.signal,
            agentId: context.agentId,
            estimatedTokens: inputEstimate,
            ...(exclude === undefined ? {} : { exclude }),
          },
        );
      } catch (error) {
        const failure = toKeelError(error);
        const attempts = attemptsOf(failure);
        if (attempts !== undefined) {
          context.reportUsage(
            ...accounting.chargeAttempts(attempts.filter(processed), {
              inputTokens: inputEstimate,
              outputTokens: 0,
            }),
          );
        }
        throw failure;
      }
      const usage = { inputTokens: response.usage?.inputTokens ?? inputEstimate, outputTokens: 0 };
      const [amounts, record] = accounting.withFailedAttempts(
        accounting.charge(response.target, usage),
        response.attempts,
        { inputTokens: inputEstimate, outputTokens: 0 },
      );
      return {
        value: {
          embeddings: response.embeddings.map((vector) => [...vector]),
          model: response.target.model,
          provider: response.target.provider,
          usage: {
            ...usage,
            costMicros: record.costMicros,
            estimated: response.usage === undefined,
          },
        },
        usage: amounts,
        accounting: record,
      };
    },
  };
  return [chat, embed];
}

/** Text streamed so far, and where the stream is served from once it began. */
class StreamState {
  target: RouteTarget | undefined;
  text = '';
  /** Tool-call arguments streamed so far: output the model produced, though not prose. */
  toolArguments = '';
}

async function streamChat(
  router: ModelRouter,
  call: ChatCall,
  options: Parameters<ModelRouter['stream']>[2],
  context: ExecutionContext,
  state: StreamState,
): Promise<ChatResponse & { target: RouteTarget; attempts: readonly RouteAttempt[] }> {
  let attempts: readonly RouteAttempt[] = [];
  const toolCalls: ToolCall[] = [];
  let finishReason: FinishReason = 'other';
  let usage: TokenUsage | undefined;
  let model = '';
  for await (const delta of router.stream(call.alias, call.request, options)) {
    switch (delta.type) {
      case 'route':
        state.target = delta.target;
        attempts = delta.attempts;
        context.progress({
          type: 'route',
          provider: delta.target.provider,
          model: delta.target.model,
        });
        continue;
      case 'text':
        state.text += delta.text;
        break;
      case 'tool-call-arguments':
        state.toolArguments += delta.text;
        break;
      case 'tool-call':
        toolCalls.push(delta.call);
        break;
      case 'finish':
        finishReason = delta.finishReason;
        usage = delta.usage;
        model = delta.model;
        break;
      default:
        break;
    }
    context.progress(delta as unknown as JsonValue);
  }
  const target = state.target as RouteTarget;
  return {
    text: state.text,
    toolCalls,
    finishReason,
    usage,
    model: model || target.model,
    target,
    attempts,
  };
}

/** Prices usage and decides which targets a caller may use. */
class ModelAccounting {
  readonly #dependencies: LlmExecutorDependencies;
  readonly #flagged = new Set<string>();

  constructor(dependencies: LlmExecutorDependencies) {
    this.#dependencies = dependencies;
  }

  #price(target: RouteTarget) {
    const kind = this.#dependencies.providerKinds.get(target.provider);
    return this.#dependencies.prices.lookup(
      kind === undefined ? [target.provider] : [target.provider, kind],
      target.model,
    );
  }

  /** The highest cost any priced target of the alias could charge; undefined if none is priced. */
  worstCost(alias: string, usage: TokenUsage): number | undefined {
    let worst: number | undefined;
    for (const target of this.#dependencies.router.resolve(alias)) {
      const price = this.#price(target);
      if (price === undefined) continue;
      worst = Math.max(worst ?? 0, this.#dependencies.prices.costMicros(price, usage));
    }
    return worst;
  }

  /** Unpriced targets are excluded while a budget of the caller limits cost. */
  async exclusion(
    alias: string,
    context: ExecutionContext,
  ): Promise<((target: RouteTarget) => KeelError | undefined) | undefined> {
    const unpriced = this.#dependencies.router
      .resolve(alias)
      .filter((target) => this.#price(target) === undefined);
    if (unpriced.length === 0) return undefined;
    const limited = await this.#dependencies.budgets.limitsCost(
      scopesFor(context.agentId, context.runId),
    );
    if (!limited) return undefined;
    return (target) =>
      this.#price(target) === undefined
        ? new KeelError(
            'KEEL_MODEL_UNPRICED',
            `${target.provider}/${target.model} has no price and a budget of the caller limits cost`,
            { details: { provider: target.provider, model: target.model } },
          )
        : undefined;
  }

  /**
   * What failed attempts the providers processed cost, `each` per attempt: the call itself
   * when there are none; a usage record under the first of them otherwise.
   */
  chargeAttempts(
    attempts: readonly RouteAttempt[],
    each: TokenUsage,
  ): [{ tokens: number; costMicros: number; calls: number }, UsageAccounting | undefined] {
    let charged:
      | [{ tokens: number; costMicros: number; calls: number }, UsageAccounting]
      | undefined;
    for (const attempt of attempts) {
      const next = this.charge(attempt, each);
      charged = charged === undefined ? next : combine(charged, next);
    }
    return charged ?? [{ tokens: 0, costMicros: 0, calls: 1 }, undefined];
  }

  /** A successful call's charge plus what the failed attempts before it cost. */
  withFailedAttempts(
    served: [{ tokens: number; costMicros: number; calls: number }, UsageAccounting],
    attempts: readonly RouteAttempt[],
    each: TokenUsage,
  ): [{ tokens: number; costMicros: number; calls: number }, UsageAccounting] {
    let charged = served;
    for (const attempt of attempts) {
      if (attempt.outcome === 'ok' || !processed(attempt)) continue;
      charged = combine(charged, this.charge(attempt, each));
    }
    return charged;
  }

  /** Budget amounts and the usage record of a call served by `target`. */
  charge(
    target: RouteTarget,
    usage: TokenUsage,
  ): [{ tokens: number; costMicros: number; calls: number }, UsageAccounting] {
    const price = this.#price(target);
    const costMicros =
      price === undefined ? null : this.#dependencies.prices.costMicros(price, usage);
    if (costMicros === null) {
      const key = `${target.provider}/${target.model}`;
      if (!this.#flagged.has(key)) {
        this.#flagged.add(key);
        this.#dependencies.onUnpriced?.(target);
      }
    }
    return [
      { tokens: usage.inputTokens + usage.outputTokens, costMicros: costMicros ?? 0, calls: 1 },
      {
        model: target.model,
        provider: target.provider,
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        costMicros,
      },
    ];
  }
}

/** Two charges as one call (recorded under the first's model): amounts and tokens add up; a cost stays unknown if either is. */
function combine(
  first: [{ tokens: number; costMicros: number; calls: number }, UsageAccounting],
  second: [{ tokens: number; costMicros: number; calls: number }, UsageAccounting],
): [{ tokens: number; costMicros: number; calls: number }, UsageAccounting] {
  const [amounts, record] = first;
  const [moreAmounts, moreRecord] = second;
  return [
    {
      tokens: amounts.tokens + moreAmounts.tokens,
      costMicros: amounts.costMicros + moreAmounts.costMicros,
      calls: 1,
    },
    {
      model: record.model,
      provider: record.provider,
      inputTokens: record.inputTokens + moreRecord.inputTokens,
      outputTokens: record.outputTokens + moreRecord.outputTokens,
      costMicros:
        record.costMicros === null || moreRecord.costMicros === null
          ? null
          : record.costMicros + moreRecord.costMicros,
    },
  ];
}
