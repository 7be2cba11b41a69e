/**
 * The benchmark's latency chart: one row per series (system and verb), each
 * sample a dot on a shared millisecond axis, with the p50 and p95 marked.
 * Pure text; `bench.ts` writes it next to `BENCHMARKS.md`.
 *
 * @module
 */
import { quantile } from "./stats.ts";

/** One row of the chart. */
export interface Series {
  /** The row's label, such as `ADD agent`. */
  label: string;
  /** The samples, in ms. */
  samples: readonly number[];
  /** Its colour (any SVG colour). */
  color: string;
}

function esc(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

/** A "nice" axis end and step above `max`. */
function axis(max: number): { end: number; step: number } {
  const raw = Math.max(max, 1) / 8;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ??
    10 * mag;
  return { end: Math.ceil(max / step) * step || step, step };
}

/**
 * Renders the latency distributions as an SVG document.
 *
 * @param series The rows, top to bottom.
 * @param options The title.
 * @returns The SVG text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { latencySvg } from "./svg.ts";
 * const svg = latencySvg([
 *   { label: "ADD ours", samples: [10, 12, 30], color: "#1f77b4" },
 * ], { title: "latency" });
 * assert.match(svg, /^<svg /);
 * assert.equal(svg.match(/<circle /g)?.length, 3);
 * ```
 */
export function latencySvg(
  series: readonly Series[],
  options: { title: string },
): string {
  const left = 150;
  const plot = 600;
  const row = 34;
  const top = 40;
  const height = top + row * series.length + 40;
  const max = Math.max(...series.flatMap((s) => s.samples), 1);
  const { end, step } = axis(max);
  const x = (ms: number) => (left + (ms / end) * plot).toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${
      left + plot + 30
    }" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14">${esc(options.title)}</text>`,
  ];
  const bottom = top + row * series.length;
  for (let t = 0; t <= end + 1e-9; t += step) {
    out.push(
      `<line x1="${x(t)}" y1="${top - 6}" x2="${
        x(t)
      }" y2="${bottom}" stroke="#ddd"/>`,
      `<text x="${x(t)}" y="${bottom + 16}" text-anchor="middle">${+t.toFixed(
        3,
      )}</text>`,
    );
  }
  out.push(
    `<text x="${left + plot / 2}" y="${
      bottom + 32
    }" text-anchor="middle">ms (process spawn to exit); | p50, ¦ p95</text>`,
  );
  for (const [i, s] of series.entries()) {
    const y = top + row * i + row / 2;
    out.push(
      `<text x="${left - 8}" y="${y + 4}" text-anchor="end">${
        esc(s.label)
      }</text>`,
    );
    for (const v of s.samples) {
      out.push(
        `<circle cx="${x(v)}" cy="${y}" r="3" fill="${
          esc(s.color)
        }" fill-opacity="0.35"/>`,
      );
    }
    if (s.samples.length === 0) continue;
    const p50 = quantile(s.samples, 0.5);
    const p95 = quantile(s.samples, 0.95);
    out.push(
      `<line x1="${x(p50)}" y1="${y - 11}" x2="${x(p50)}" y2="${
        y + 11
      }" stroke="black" stroke-width="2"/>`,
      `<line x1="${x(p95)}" y1="${y - 8}" x2="${x(p95)}" y2="${
        y + 8
      }" stroke="black" stroke-dasharray="2,2"/>`,
    );
  }
  out.push("</svg>", "");
  return out.join("\n");
}
