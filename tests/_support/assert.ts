/**
 * Test assertions: `node:assert/strict`, re-exported with our matchers, so a
 * swap back to `@std/assert` touches one file.
 *
 * @module
 */
import assert from "node:assert/strict";

export { assert };
export default assert;

/**
 * Asserts that a CNI error object printed on stdout has the given code and a
 * message matching `msg`.
 *
 * @param out The parsed stdout document.
 * @param code The expected CNI code.
 * @param msg A pattern the `msg` must match.
 */
export function assertCniError(
  out: unknown,
  code: number,
  msg: RegExp,
): void {
  assert.ok(typeof out === "object" && out !== null, "stdout is no object");
  const obj = out as Record<string, unknown>;
  assert.equal(obj.code, code, `code: ${JSON.stringify(obj)}`);
  assert.equal(typeof obj.cniVersion, "string");
  assert.match(String(obj.msg), msg);
}
