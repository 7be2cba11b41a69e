import assert from "node:assert/strict";
import { XMLValidator } from "fast-xml-parser";
import { latencySvg, poolSvg } from "./svg.ts";

/** What `XMLValidator.validate` answers for a well-formed document. */
const VALID = true;

/** The points of the polyline titled `label`, as [x, y] numbers. */
function series(svg: string, label: string): number[][] {
  const m = new RegExp(
    `<polyline [^>]*points="([^"]*)"><title>${label}</title>`,
  ).exec(svg);
  assert.ok(m, `no "${label}" series`);
  return (m[1] ?? "").split(" ").map((p) => p.split(",").map(Number));
}

Deno.test("poolSvg() emits valid SVG with a pool size and a free series", () => {
  const samples = [
    { ms: 0, total: 2, free: 2 },
    { ms: 100, total: 2, free: 0 },
    { ms: 250, total: 6, free: 3 },
    { ms: 400, total: 6, free: 6 },
  ];
  const svg = poolSvg(samples, {
    title: "warm <2..6>",
    marks: [{ ms: 50, label: "ADD burst" }, { ms: 300, label: "DEL" }],
  });
  assert.strictEqual(XMLValidator.validate(svg), VALID);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /warm &lt;2\.\.6&gt;/);
  assert.match(svg, />ADD burst</);
  assert.match(svg, />DEL</);
  const size = series(svg, "pool size");
  const free = series(svg, "free");
  // Step lines: the first reading, then two points per later one.
  assert.equal(size.length, 1 + 2 * (samples.length - 1));
  assert.equal(free.length, size.length);
  // Same x for both; y grows upwards, so more addresses is a smaller y.
  assert.deepEqual(size.map((p) => p[0]), free.map((p) => p[0]));
  const ys = (pts: number[][]) => pts.map((p) => p[1] ?? NaN);
  assert.ok((ys(size).at(-1) ?? 0) < (ys(size)[0] ?? 0));
  assert.equal(ys(free)[1], ys(free)[0]); // holds 2 free until 100 ms
  assert.ok((ys(free)[2] ?? 0) > (ys(free)[1] ?? 0)); // then 0 free
  assert.equal(ys(free).at(-1), ys(size).at(-1)); // all free at the end
});

Deno.test("poolSvg() without samples is still valid SVG", () => {
  const svg = poolSvg([], { title: "empty" });
  assert.strictEqual(XMLValidator.validate(svg), VALID);
  assert.equal(svg.match(/<polyline /g)?.length, 2);
});

Deno.test("latencySvg() is valid SVG", () => {
  const svg = latencySvg([
    { label: "ADD a&b", samples: [1, 2, 3], color: "#1f77b4" },
  ], { title: "t" });
  assert.strictEqual(XMLValidator.validate(svg), VALID);
});
