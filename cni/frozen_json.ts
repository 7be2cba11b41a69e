/**
 * Deep-frozen JSON documents and their text, for state files that a
 * long-lived process (the agent) reads and rewrites many times (#14).
 *
 * A document frozen by {@link deepFreeze} cannot change, so what it parses
 * to and what it prints as can be shared: {@link stringifyJson} prints each
 * deep-frozen object once and reuses that text in every later document that
 * holds the same object. Rewriting a state file after one endpoint changed
 * then prints that endpoint, not all of them.
 *
 * @module
 */

/** Objects frozen with everything they hold (by {@link deepFreeze}). */
const DEEP = new WeakSet<object>();

/** The printed text of deep-frozen objects, with the indent it was made at. */
const PRINTED = new WeakMap<object, { indent: string; text: string }>();

/**
 * Freezes `value` and everything it holds. Objects already deep-frozen are
 * not walked again, so freezing a new document that shares most of its
 * objects with an older one costs only the new objects.
 *
 * @param value Any JSON-like value.
 * @returns `value`, frozen.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { deepFreeze } from "./frozen_json.ts";
 * const doc = deepFreeze({ a: { b: [1] } });
 * assert.ok(Object.isFrozen(doc.a.b));
 * ```
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== "object" || value === null || DEEP.has(value)) {
    return value;
  }
  for (const inner of Object.values(value)) deepFreeze(inner);
  Object.freeze(value);
  DEEP.add(value);
  return value;
}

/**
 * Whether `value` was frozen with everything it holds by {@link deepFreeze}.
 *
 * @param value Anything.
 * @returns True for a deep-frozen object or array.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { deepFreeze, isDeepFrozen } from "./frozen_json.ts";
 * assert.ok(!isDeepFrozen(Object.freeze({ a: {} })));
 * assert.ok(isDeepFrozen(deepFreeze({ a: {} })));
 * ```
 */
export function isDeepFrozen(value: unknown): boolean {
  return typeof value === "object" && value !== null && DEEP.has(value);
}

/**
 * `JSON.stringify(value, null, 2)`, the same text, reusing the text of
 * deep-frozen objects printed before at the same depth.
 *
 * @param value A JSON-serialisable value.
 * @returns Its indented JSON text (undefined for a lone `undefined` or
 * function, as `JSON.stringify` returns).
 * @throws {TypeError} Like `JSON.stringify` (a BigInt, a cycle).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { deepFreeze, stringifyJson } from "./frozen_json.ts";
 * const doc = { version: 1, endpoints: deepFreeze({ a: { ip: "10.0.0.4" } }) };
 * assert.equal(stringifyJson(doc), JSON.stringify(doc, null, 2));
 * ```
 */
export function stringifyJson(value: unknown): string | undefined {
  return print(value, "", new Set());
}

function print(
  value: unknown,
  indent: string,
  path: Set<object>,
): string | undefined {
  if (typeof value !== "object" || value === null) {
    return JSON.stringify(value);
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") {
    // Rare in state (a Date): JSON.stringify's own rules, re-indented.
    return JSON.stringify(value, null, 2)?.replaceAll("\n", `\n${indent}`);
  }
  const printed = PRINTED.get(value);
  if (printed !== undefined && printed.indent === indent) return printed.text;
  if (path.has(value)) {
    throw new TypeError("Converting circular structure to JSON");
  }
  path.add(value);
  const inner = `${indent}  `;
  const parts: string[] = [];
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      parts.push(inner + (print(value[i], inner, path) ?? "null"));
    }
  } else {
    for (const [key, item] of Object.entries(value)) {
      const text = print(item, inner, path);
      if (text !== undefined) {
        parts.push(`${inner}${JSON.stringify(key)}: ${text}`);
      }
    }
  }
  path.delete(value);
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  const text = parts.length === 0
    ? open + close
    : `${open}\n${parts.join(",\n")}\n${indent}${close}`;
  if (DEEP.has(value)) PRINTED.set(value, { indent, text });
  return text;
}
