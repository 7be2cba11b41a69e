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

/** One reading of the warm pool: the NIC's addresses and the free ones. */
export interface PoolSample {
  /** Ms since the phase started. */
  ms: number;
  /** Addresses in the pool (the NIC's secondary ipconfigs the IPAM holds). */
  total: number;
  /** Of those, free ones. */
  free: number;
}

/** A moment to mark on the time axis, such as the start of a burst. */
export interface PoolMark {
  /** Ms since the phase started. */
  ms: number;
  /** Its label. */
  label: string;
}

/**
 * Renders the warm pool over time as an SVG document: pool size and free
 * addresses as step lines on a shared count axis, with `marks` as dashed
 * vertical lines.
 *
 * @param samples The readings, in time order.
 * @param options The title and the marks.
 * @returns The SVG text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { poolSvg } from "./svg.ts";
 * const svg = poolSvg([
 *   { ms: 0, total: 2, free: 2 },
 *   { ms: 100, total: 6, free: 1 },
 * ], { title: "warm pool", marks: [{ ms: 50, label: "ADD burst" }] });
 * assert.match(svg, /^<svg /);
 * assert.equal(svg.match(/<polyline /g)?.length, 2);
 * ```
 */
export function poolSvg(
  samples: readonly PoolSample[],
  options: { title: string; marks?: readonly PoolMark[] },
): string {
  const left = 60;
  const plot = 640;
  const top = 50;
  const height = 260;
  const bottom = top + height;
  const marks = options.marks ?? [];
  const xAxis = axis(
    Math.max(...samples.map((s) => s.ms), ...marks.map((m) => m.ms), 1),
  );
  const yAxis = axis(Math.max(...samples.map((s) => s.total), 1));
  const x = (ms: number) => (left + (ms / xAxis.end) * plot).toFixed(1);
  const y = (n: number) => (bottom - (n / yAxis.end) * height).toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${
      left + plot + 30
    }" height="${bottom + 50}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14">${esc(options.title)}</text>`,
  ];
  for (let t = 0; t <= xAxis.end + 1e-9; t += xAxis.step) {
    out.push(
      `<line x1="${x(t)}" y1="${top}" x2="${
        x(t)
      }" y2="${bottom}" stroke="#ddd"/>`,
      `<text x="${x(t)}" y="${bottom + 16}" text-anchor="middle">${+(t / 1000)
        .toFixed(3)}</text>`,
    );
  }
  for (let n = 0; n <= yAxis.end + 1e-9; n += yAxis.step) {
    out.push(
      `<line x1="${left}" y1="${y(n)}" x2="${left + plot}" y2="${
        y(n)
      }" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${+y(n) + 4}" text-anchor="end">${+n.toFixed(
        3,
      )}</text>`,
    );
  }
  out.push(
    `<text x="${left + plot / 2}" y="${
      bottom + 34
    }" text-anchor="middle">seconds; addresses on the y axis</text>`,
  );
  for (const [i, m] of marks.entries()) {
    out.push(
      `<line x1="${x(m.ms)}" y1="${top - 4}" x2="${
        x(m.ms)
      }" y2="${bottom}" stroke="#888" stroke-dasharray="4,3"/>`,
      `<text x="${+x(m.ms) + 3}" y="${top + 12 + 14 * i}">${
        esc(m.label)
      }</text>`,
    );
  }
  const series = [
    { label: "pool size", color: "#1f77b4", value: (s: PoolSample) => s.total },
    { label: "free", color: "#2ca02c", value: (s: PoolSample) => s.free },
  ];
  for (const [i, s] of series.entries()) {
    // A step line: a reading holds until the next one.
    const points = samples.flatMap((p, j) => {
      const prev = samples[j - 1];
      const here = `${x(p.ms)},${y(s.value(p))}`;
      return prev === undefined
        ? [here]
        : [`${x(p.ms)},${y(s.value(prev))}`, here];
    });
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${
        points.join(" ")
      }"><title>${esc(s.label)}</title></polyline>`,
      `<line x1="${left + plot - 150}" y1="${top - 20 + 14 * i}" x2="${
        left + plot - 130
      }" y2="${top - 20 + 14 * i}" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${left + plot - 125}" y="${top - 16 + 14 * i}">${
        esc(s.label)
      }</text>`,
    );
  }
  out.push("</svg>", "");
  return out.join("\n");
}
