import type { JsonObject, JsonValue } from '../../platform/storage/ports/json-value.ts';

/** A final answer read as the JSON object a result schema asks for, or why it is not one. */
export type JsonAnswer =
  | { readonly ok: true; readonly data: JsonObject }
  | { readonly ok: false; readonly problem: string };

const FENCED = /^```[A-Za-z]*[ \t]*\r?\n([\s\S]*?)\r?\n?```$/;

function typeMatches(value: JsonValue, type: string): boolean {
  switch (type) {
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'integer':
      return Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'null':
      return value === null;
    default:
      return true;
  }
}

function declaredTypes(schema: JsonValue | undefined): readonly string[] | undefined {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
  const type = (schema as JsonObject).type;
  if (typeof type === 'string') return [type];
  if (Array.isArray(type)) return type.filter((item): item is string => typeof item === 'string');
  return undefined;
}

/**
 * Reads a final answer as the JSON object `schema` describes. Accepts the object alone or in
 * one Markdown code fence. Checks the top level only: that the answer is an object, that the
 * schema's `required` properties are present, and that each property with a declared `type`
 * has it. It is not a full JSON Schema validator; the provider enforces the schema where it
 * supports structured output.
 *
 * @example
 * ```ts
 * const answer = parseJsonAnswer('{"title":"x"}', { type: 'object', required: ['title'] });
 * if (answer.ok) answer.data.title; // 'x'
 * ```
 */
export function parseJsonAnswer(text: string, schema: JsonObject): JsonAnswer {
  const trimmed = text.trim();
  const body = FENCED.exec(trimmed)?.[1] ?? trimmed;
  let value: JsonValue;
  try {
    value = JSON.parse(body) as JsonValue;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { ok: false, problem: `the answer is not JSON (${reason})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, problem: 'the answer is JSON but not a JSON object' };
  }
  const data = value as JsonObject;
  const required = Array.isArray(schema.required) ? schema.required : [];
  for (const name of required) {
    if (typeof name === 'string' && !Object.hasOwn(data, name)) {
      return { ok: false, problem: `the answer lacks the required property ${name}` };
    }
  }
  const properties = schema.properties;
  if (typeof properties === 'object' && properties !== null && !Array.isArray(properties)) {
    for (const [name, propertySchema] of Object.entries(properties as JsonObject)) {
      const member = data[name];
      const types = declaredTypes(propertySchema);
      if (member === undefined || types === undefined || types.length === 0) continue;
      if (!types.some((type) => typeMatches(member, type))) {
        return { ok: false, problem: `the property ${name} is not of type ${types.join(' or ')}` };
      }
    }
  }
  return { ok: true, data };
}
