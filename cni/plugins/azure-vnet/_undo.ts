/**
 * Rollback steps that never throw: a failed undo step is logged and
 * swallowed, so disposal of an `AsyncDisposableStack` cannot replace the
 * original failure (and its CNI code) with a `SuppressedError`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { flattenCause } from "@vnet/cni";

const log = getLogger(["azure-vnet", "rollback"]);

/**
 * Defers an undo step on `stack` that logs and swallows its own failure.
 *
 * @param stack The stack to defer on.
 * @param step What the step undoes (for the log) and the step itself.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { deferUndo } from "./_undo.ts";
 * const stack = new AsyncDisposableStack();
 * deferUndo(stack, {
 *   what: "bridge removal",
 *   run: () => {
 *     throw new Error("busy");
 *   },
 * });
 * await stack.disposeAsync();
 * assert.ok(stack.disposed);
 * ```
 */
export function deferUndo(
  stack: AsyncDisposableStack,
  step: { what: string; run: () => Promise<unknown> | unknown },
): void {
  stack.defer(async () => {
    try {
      await step.run();
    } catch (err) {
      log.error("Rollback step {what} failed: {err}", {
        what: step.what,
        err: flattenCause(err),
      });
    }
  });
}
