/**
 * The benchmark report's lines and rows from what was measured: summary
 * lines (`LABEL: ours unit vs theirs unit = ratio x`) of each of our
 * systems against the reference, plus chosen pairs of ours against each
 * other (transparent mode against bridge mode, #15), the Markdown rows and
 * the latency chart's series. Pure; `bench.ts` measures and writes.
 *
 * @module
 */
import { quantile, ratioLine, ratioText } from "./stats.ts";
import type { Series } from "./svg.ts";

/** ADD and DEL latencies of one system, in ms. */
export interface Latency {
  add: number[];
  del: number[];
}

/** What one burst of N concurrent ADDs of one system gave. */
export interface Burst {
  /** Concurrent ADDs. */
  n: number;
  /** Spawn of the first to exit of the last, ms. */
  wallMs: number;
  /** ADDs that succeeded. */
  ok: number;
  /** Addresses handed out more than once. */
  dups: number;
  /** Peak RSS per plugin process, max and median over the burst, KB. */
  rssMax: number;
  rssP50: number;
  /** Distinct failure messages. */
  failures: string[];
}

/** A measurement of one of our systems, by its short name. */
export interface Of<T> {
  /** The system's name in the lines, such as `agent`. */
  who: string;
  value: T;
}

/** A pair of our systems to compare directly: `who` against `base`. */
export interface Versus {
  who: string;
  base: string;
}

/** What the summary lines compare against. */
export interface CompareOptions<T> {
  /** The reference's measurement (bridge + host-local). */
  reference: T;
  /** Pairs of ours compared with each other, after the reference lines. */
  versus?: readonly Versus[];
}

/** `value` of `who` among `ours`, or undefined. */
function valueOf<T>(ours: readonly Of<T>[], who: string): T | undefined {
  return ours.find((o) => o.who === who)?.value;
}

/**
 * Ratio lines of one measure: each of ours against the reference
 * (`LABEL (who)`), then each `versus` pair present in `ours`
 * (`LABEL (who vs base)`).
 */
function compared<T>(
  label: string,
  ours: readonly Of<T>[],
  options: {
    reference: T;
    pick: (v: T) => number;
    unit: string;
    versus: readonly Versus[];
  },
): string[] {
  const { reference, pick, unit, versus } = options;
  const lines = ours.map((o) =>
    ratioLine(`${label} (${o.who})`, {
      ours: pick(o.value),
      theirs: pick(reference),
      unit,
    })
  );
  for (const v of versus) {
    const a = valueOf(ours, v.who);
    const b = valueOf(ours, v.base);
    if (a === undefined || b === undefined) continue;
    lines.push(ratioLine(`${label} (${v.who} vs ${v.base})`, {
      ours: pick(a),
      theirs: pick(b),
      unit,
    }));
  }
  return lines;
}

/**
 * The latency summary lines: p50 then p95, ADD then DEL; for each, every
 * system of ours against the reference, then the `versus` pairs.
 *
 * @param ours Our systems' latencies, in line order.
 * @param options The reference's latencies and the pairs of ours to
 * compare directly.
 * @returns The lines.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { latencyLines } from "./report.ts";
 * const agent = { add: [30], del: [40] };
 * const transparent = { add: [15], del: [20] };
 * const reference = { add: [10], del: [20] };
 * const versus = [{ who: "transparent", base: "agent" }];
 * const [first, , third] = latencyLines(
 *   [{ who: "agent", value: agent }, { who: "transparent", value: transparent }],
 *   { reference, versus },
 * );
 * assert.equal(first, "ADD p50 (agent): 30.0 ms vs 10.0 ms = 3.00x");
 * assert.equal(third, "ADD p50 (transparent vs agent): 15.0 ms vs 30.0 ms = 0.50x");
 * ```
 */
export function latencyLines(
  ours: readonly Of<Latency>[],
  options: CompareOptions<Latency>,
): string[] {
  const { reference } = options;
  const lines: string[] = [];
  for (const [name, q] of [["p50", 0.5], ["p95", 0.95]] as const) {
    for (const verb of ["add", "del"] as const) {
      lines.push(...compared(`${verb.toUpperCase()} ${name}`, ours, {
        reference,
        pick: (l) => quantile(l[verb], q),
        unit: "ms",
        versus: options.versus ?? [],
      }));
    }
  }
  return lines;
}

/**
 * The summary lines of one burst size: wall time of each of ours against
 * the reference (and the `versus` pairs), successes and duplicate IPs of
 * all in one line, and the plugin processes' peak RSS against the
 * reference's. Systems that did not run this size are left out. N is the
 * reference's.
 *
 * @param ours Our systems' bursts of this size, in line order.
 * @param options The reference's burst, and pairs of ours (wall time).
 * @returns The lines.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { burstLines } from "./report.ts";
 * const b = (wallMs: number) => ({
 *   n: 2, wallMs, ok: 2, dups: 0, rssMax: 100, rssP50: 90, failures: [],
 * });
 * const lines = burstLines([{ who: "agent", value: b(40) }], {
 *   reference: b(20),
 * });
 * assert.deepEqual(lines, [
 *   "burst 2 wall (agent): 40.0 ms vs 20.0 ms = 2.00x",
 *   "burst 2 successes: agent 2/2 vs 2/2; duplicate IPs: agent 0 vs 0",
 *   "burst 2 plugin peak RSS max (agent): 100 KB vs 100 KB = 1.00x",
 * ]);
 * ```
 */
export function burstLines(
  ours: readonly Of<Burst>[],
  { reference, versus = [] }: CompareOptions<Burst>,
): string[] {
  const size = reference.n;
  const each = (f: (b: Burst) => string) =>
    ours.map((o) => `${o.who} ${f(o.value)}`).join(", ");
  return [
    ...compared(`burst ${size} wall`, ours, {
      reference,
      pick: (b) => b.wallMs,
      unit: "ms",
      versus,
    }),
    `burst ${size} successes: ${
      each((b) => `${b.ok}/${size}`)
    } vs ${reference.ok}/${size}; duplicate IPs: ${
      each((b) => String(b.dups))
    } vs ${reference.dups}`,
    ...compared(`burst ${size} plugin peak RSS max`, ours, {
      reference,
      pick: (b) => b.rssMax,
      unit: "KB",
      versus: [],
    }),
  ];
}

/**
 * A number as the report prints milliseconds: one decimal.
 *
 * @param x The number.
 * @returns Its text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fmt } from "./report.ts";
 * assert.equal(fmt(9.75), "9.8");
 * ```
 */
export function fmt(x: number): string {
  return x.toFixed(1);
}

/**
 * A Markdown row of the latency table: system, ADD p50, p95, DEL p50, p95.
 *
 * @param label The system.
 * @param l Its latencies.
 * @returns The row.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { latencyRow } from "./report.ts";
 * assert.equal(
 *   latencyRow("x", { add: [1, 2], del: [3] }),
 *   "| x | 1.0 | 2.0 | 3.0 | 3.0 |",
 * );
 * ```
 */
export function latencyRow(label: string, l: Latency): string {
  const q = (xs: number[], p: number) => fmt(quantile(xs, p));
  return `| ${label} | ${q(l.add, 0.5)} | ${q(l.add, 0.95)} | ${
    q(l.del, 0.5)
  } | ${q(l.del, 0.95)} |`;
}

/**
 * A Markdown row of the burst table: N, system, wall ms, successes,
 * duplicate IPs, RSS p50 and max, failures (`|` replaced, `-` if none).
 *
 * @param label The system.
 * @param b Its burst.
 * @returns The row.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { burstRow } from "./report.ts";
 * assert.equal(
 *   burstRow("agent", {
 *     n: 3, wallMs: 50, ok: 2, dups: 0, rssMax: 9, rssP50: 8,
 *     failures: ["a|b"],
 *   }),
 *   "| 3 | agent | 50.0 | 2/3 | 0 | 8 | 9 | a/b |",
 * );
 * ```
 */
export function burstRow(label: string, b: Burst): string {
  const failures = b.failures.join("; ").replaceAll("|", "/") || "-";
  return `| ${b.n} | ${label} | ${
    fmt(b.wallMs)
  } | ${b.ok}/${b.n} | ${b.dups} | ${b.rssP50} | ${b.rssMax} | ${failures} |`;
}

/** One system of the latency chart. */
export interface Charted {
  /** Its name in the chart, such as `agent`. */
  label: string;
  /** Its latencies. */
  latency: Latency;
  /** Its colour (any SVG colour), the same for ADD and DEL. */
  color: string;
}

/**
 * The latency chart's rows: every system's ADD, then every system's DEL,
 * in the given order.
 *
 * @param systems The systems.
 * @returns The series for `latencySvg()`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { latencySeries } from "./report.ts";
 * const rows = latencySeries([
 *   { label: "a", latency: { add: [1], del: [2] }, color: "red" },
 *   { label: "b", latency: { add: [3], del: [4] }, color: "blue" },
 * ]);
 * assert.deepEqual(rows.map((r) => r.label), ["ADD a", "ADD b", "DEL a", "DEL b"]);
 * ```
 */
export function latencySeries(systems: readonly Charted[]): Series[] {
  return (["add", "del"] as const).flatMap((verb) =>
    systems.map((s) => ({
      label: `${verb.toUpperCase()} ${s.label}`,
      samples: s.latency[verb],
      color: s.color,
    }))
  );
}

/** The bound of a ratio target: `atMost` (≤) or `below` (<) the reference. */
export type RatioBound = { atMost: number } | { below: number };

/**
 * A row of the target table for a ratio target: measure, target, `ours ms
 * vs theirs ms = ratio` (plus `extra`), and whether it was met (`yes` or a
 * bold `no`). A ratio that is NaN (nothing measured) is not met.
 *
 * @param measure What is measured.
 * @param values The target's text, ours and theirs (ms), the bound of
 * `ours / theirs`, and more text with a condition that must hold too (such
 * as all ADDs succeeding).
 * @returns The row.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ratioTargetRow } from "./report.ts";
 * assert.equal(
 *   ratioTargetRow("ADD p50", {
 *     target: "≤ 2×", ours: 30, theirs: 10, atMost: 2,
 *   }),
 *   "| ADD p50 | ≤ 2× | 30.0 ms vs 10.0 ms = 3.00x | **no** |",
 * );
 * assert.equal(
 *   ratioTargetRow("ADD p50 (transparent)", {
 *     target: "< 1×", ours: 8, theirs: 10, below: 1,
 *     extra: { text: ", 5/5", met: true },
 *   }),
 *   "| ADD p50 (transparent) | < 1× | 8.0 ms vs 10.0 ms = 0.80x, 5/5 | yes |",
 * );
 * ```
 */
export function ratioTargetRow(
  measure: string,
  values: {
    target: string;
    ours: number;
    theirs: number;
    extra?: { text: string; met: boolean };
  } & RatioBound,
): string {
  const { ours, theirs, extra } = values;
  const r = ours / theirs;
  const bounded = "atMost" in values ? r <= values.atMost : r < values.below;
  return targetRow(measure, {
    target: values.target,
    measured: `${ratioText({ ours, theirs, unit: "ms" })}${extra?.text ?? ""}`,
    met: bounded && (extra?.met ?? true),
  });
}

/**
 * A row of the target table: measure, target, measured, met (`yes` or a
 * bold `no`).
 *
 * @param measure What is measured.
 * @param result The target's text, what was measured as text, and whether
 * the target was met.
 * @returns The row.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { targetRow } from "./report.ts";
 * assert.equal(
 *   targetRow("RSS", { target: "≤ 35 MB", measured: "33.9 MB", met: true }),
 *   "| RSS | ≤ 35 MB | 33.9 MB | yes |",
 * );
 * ```
 */
export function targetRow(
  measure: string,
  result: { target: string; measured: string; met: boolean },
): string {
  const { target, measured, met } = result;
  return `| ${measure} | ${target} | ${measured} | ${met ? "yes" : "**no**"} |`;
}
