import assert from "node:assert/strict";
import { duplicates, quantile, ratioLine } from "./stats.ts";

Deno.test("quantile() picks the nearest rank and is NaN when empty", () => {
  const xs = Array.from({ length: 30 }, (_, i) => 30 - i);
  assert.equal(quantile(xs, 0.5), 15);
  assert.equal(quantile(xs, 0.95), 29);
  assert.equal(quantile(xs, 1), 30);
  assert.equal(quantile(xs, 0), 1);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

Deno.test("ratioLine() formats ms with one decimal and counts with none", () => {
  assert.equal(
    ratioLine("DEL p50", { ours: 20, theirs: 40, unit: "ms" }),
    "DEL p50: 20.0 ms vs 40.0 ms = 0.50x",
  );
  assert.equal(
    ratioLine("burst 30 peak RSS", { ours: 44400, theirs: 12000, unit: "KB" }),
    "burst 30 peak RSS: 44400 KB vs 12000 KB = 3.70x",
  );
});

Deno.test("duplicates() reports each repeated address once", () => {
  assert.deepEqual(duplicates([]), []);
  assert.deepEqual(duplicates(["1", "2", "2", "1", "3"]), ["2", "1"]);
});
