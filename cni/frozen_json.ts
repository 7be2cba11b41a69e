/**
 * Deep-frozen JSON documents and their text, for state files that a
 * long-lived process (the agent) reads and rewrites many times (#14).
 *
 * A document frozen by {@link deepFreeze} cannot change, so what it parses
 * to and what it encodes as can be shared: {@link encodeJson} encodes each
 * deep-frozen object once and reuses those bytes in every later document
 * that holds the same object. Rewriting a state file after one endpoint
 * changed then encodes that endpoint, not all of them.
 *
 * @module
 */

/** Objects frozen with everything they hold (by {@link deepFreeze}). */
const DEEP = new WeakSet<object>();

/**
 * The encoded text of deep-frozen objects, in one array each, with the
 * indent it was made at.
 */
const ENCODED = new WeakMap<object, { indent: string; bytes: Uint8Array }>();

const ENCODER = new TextEncoder();

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
 * The UTF-8 bytes of `JSON.stringify(value, null, 2)` followed by `end`,
 * reusing the bytes of deep-frozen objects encoded before at the same
 * depth: a state file that changed in one record encodes that record, and
 * copies the others' bytes once, into the result.
 *
 * @param value A JSON-serialisable value (not a lone `undefined`).
 * @param end Text after the document, such as a file's final newline.
 * @returns The bytes.
 * @throws {TypeError} Like `JSON.stringify` (a BigInt, a cycle), and for a
 * value with no JSON text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { deepFreeze, encodeJson } from "./frozen_json.ts";
 * const doc = { version: 1, endpoints: deepFreeze({ a: { ip: "10.0.0.4" } }) };
 * assert.equal(
 *   new TextDecoder().decode(encodeJson(doc, "\n")),
 *   `${JSON.stringify(doc, null, 2)}\n`,
 * );
 * ```
 */
export function encodeJson(value: unknown, end = ""): Uint8Array {
  const out = new Parts();
  const top = jsonValue(value, "");
  if (skipped(top)) {
    throw new TypeError(`Cannot encode ${typeof value} as JSON`);
  }
  encodeInto(top, { indent: "", path: new Set(), out });
  out.text(end);
  return out.bytes();
}

/**
 * Text and bytes collected in order, joined once into one array: runs of
 * text are kept as one string, and each string is encoded straight into
 * the result.
 */
class Parts {
  #parts: (string | Uint8Array)[] = [];
  #text = "";

  text(s: string): void {
    this.#text += s;
  }

  add(bytes: Uint8Array): void {
    if (this.#text !== "") this.#parts.push(this.#text);
    this.#text = "";
    this.#parts.push(bytes);
  }

  bytes(): Uint8Array {
    if (this.#text !== "") this.#parts.push(this.#text);
    this.#text = "";
    // A UTF-16 code unit takes at most 3 bytes in UTF-8.
    let bound = 0;
    for (const p of this.#parts) {
      bound += p.length * (typeof p === "string" ? 3 : 1);
    }
    const out = new Uint8Array(bound);
    let at = 0;
    for (const p of this.#parts) {
      if (typeof p === "string") {
        at += ENCODER.encodeInto(p, out.subarray(at)).written;
      } else {
        out.set(p, at);
        at += p.length;
      }
    }
    // Exactly sized: kept bytes must not hold on to the spare room.
    return at === bound ? out : out.slice(0, at);
  }
}

/**
 * What `JSON.stringify` leaves out of an object (and prints as `null` in an
 * array).
 */
function skipped(value: unknown): boolean {
  return value === undefined || typeof value === "function" ||
    typeof value === "symbol";
}

/** The value JSON.stringify serialises for `value` under `key` (toJSON). */
function jsonValue(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null &&
      typeof (value as { toJSON?: unknown }).toJSON === "function"
    ? (value as { toJSON: (key: string) => unknown }).toJSON(key)
    : value;
}

/** Appends the indented JSON of `value` (not {@link skipped}) to `at.out`. */
function encodeInto(
  value: unknown,
  at: { indent: string; path: Set<object>; out: Parts },
): void {
  const { indent, path, out } = at;
  if (typeof value !== "object" || value === null) {
    out.text(JSON.stringify(value) ?? "null");
    return;
  }
  const kept = ENCODED.get(value);
  if (kept !== undefined && kept.indent === indent) {
    out.add(kept.bytes);
    return;
  }
  if (path.has(value)) {
    throw new TypeError("Converting circular structure to JSON");
  }
  path.add(value);
  // A deep-frozen object (below the top, which is new with each document)
  // is encoded into an array of its own, kept for the next document.
  const own = DEEP.has(value) && indent !== "" ? new Parts() : out;
  const inner = `${indent}  `;
  const next = { indent: inner, path, out: own };
  const array = Array.isArray(value);
  own.text(array ? "[" : "{");
  let first = true;
  if (array) {
    for (let i = 0; i < value.length; i++) {
      own.text(`${first ? "" : ","}\n${inner}`);
      first = false;
      const item = jsonValue(value[i], String(i));
      if (skipped(item)) own.text("null");
      else encodeInto(item, next);
    }
  } else {
    for (const [key, raw] of Object.entries(value)) {
      const item = jsonValue(raw, key);
      if (skipped(item)) continue;
      own.text(`${first ? "" : ","}\n${inner}${JSON.stringify(key)}: `);
      first = false;
      encodeInto(item, next);
    }
  }
  own.text(first ? (array ? "]" : "}") : `\n${indent}${array ? "]" : "}"}`);
  path.delete(value);
  if (own !== out) {
    const bytes = own.bytes();
    ENCODED.set(value, { indent, bytes });
    out.add(bytes);
  }
}
