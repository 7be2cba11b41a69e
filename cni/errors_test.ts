import assert from "node:assert/strict";
import { CniError, flattenCause } from "./errors.ts";

Deno.test("CniError.toJSON() prints code, msg and the flattened cause", () => {
  const err = new CniError(11, "Cannot lock state", {
    cause: new Error("timed out", { cause: new Error("busy") }),
  });
  assert.deepEqual(err.toJSON("0.4.0"), {
    cniVersion: "0.4.0",
    code: 11,
    msg: "Cannot lock state",
    details: "timed out: busy",
  });
});

Deno.test("flattenCause() walks AggregateError members", () => {
  const agg = new AggregateError(
    [new Error("a"), new Error("b")],
    "two failed",
  );
  assert.equal(flattenCause(agg), "two failed [a; b]");
});

Deno.test("flattenCause() describes thrown non-Error objects", () => {
  const err = new Error("Cannot parse", { cause: { err: { code: "X" } } });
  assert.equal(flattenCause(err), 'Cannot parse: {"err":{"code":"X"}}');
  assert.equal(flattenCause({ message: "plain" }), "plain");
});
