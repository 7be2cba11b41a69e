/**
 * Pure statistics and formatting for the benchmark report.
 *
 * @module
 */

/**
 * The q-quantile of a sample (nearest rank on the sorted copy).
 *
 * @param xs The sample (not modified).
 * @param q The quantile, 0 to 1 (0.5 is the median).
 * @returns The value, or NaN for an empty sample.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantile } from "./stats.ts";
 * assert.equal(quantile([3, 1, 2], 0.5), 2);
 * assert.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95), 10);
 * ```
 */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil(q * s.length)));
  return s[rank - 1] ?? NaN;
}

/**
 * One summary line `LABEL: ours unit vs theirs unit = ratio x`.
 *
 * @param label What is measured, such as `ADD p50`.
 * @param values Ours, the reference, and the unit.
 * @returns The line, with the ratio to two decimals.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ratioLine } from "./stats.ts";
 * assert.equal(
 *   ratioLine("ADD p50", { ours: 41.2, theirs: 14.8, unit: "ms" }),
 *   "ADD p50: 41.2 ms vs 14.8 ms = 2.78x",
 * );
 * ```
 */
export function ratioLine(
  label: string,
  values: { ours: number; theirs: number; unit: string },
): string {
  return `${label}: ${ratioText(values)}`;
}

/**
 * The value part of {@link ratioLine}: `41.2 ms vs 14.8 ms = 2.78x` (a
 * reference of 0 gives `NaNx`).
 *
 * @param values Ours, theirs, and the unit (`ms` prints one decimal).
 * @returns The text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ratioText } from "./stats.ts";
 * assert.equal(
 *   ratioText({ ours: 41.2, theirs: 14.8, unit: "ms" }),
 *   "41.2 ms vs 14.8 ms = 2.78x",
 * );
 * ```
 */
export function ratioText(
  values: { ours: number; theirs: number; unit: string },
): string {
  const { ours, theirs, unit } = values;
  const digits = unit === "ms" ? 1 : 0;
  const ratio = theirs === 0 ? NaN : ours / theirs;
  return `${ours.toFixed(digits)} ${unit} vs ${
    theirs.toFixed(digits)
  } ${unit} = ${ratio.toFixed(2)}x`;
}

/**
 * The addresses that occur more than once.
 *
 * @param ips Addresses as handed out (CIDR or bare).
 * @returns The duplicated ones, each once.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { duplicates } from "./stats.ts";
 * assert.deepEqual(duplicates(["a", "b", "a", "a"]), ["a"]);
 * ```
 */
export function duplicates(ips: readonly string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const ip of ips) {
    if (seen.has(ip)) dup.add(ip);
    seen.add(ip);
  }
  return [...dup];
}
