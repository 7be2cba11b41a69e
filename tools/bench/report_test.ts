import assert from "node:assert/strict";
import {
  type Burst,
  burstLines,
  burstRow,
  latencyLines,
  latencyRow,
  latencySeries,
  ratioTargetRow,
} from "./report.ts";

function burstOf(wallMs: number, extra: Partial<Burst> = {}): Burst {
  return {
    n: 30,
    wallMs,
    ok: 30,
    dups: 0,
    rssMax: 34000,
    rssP50: 33000,
    failures: [],
    ...extra,
  };
}

Deno.test("latencyLines() puts each system against the reference, then transparent against bridge mode", () => {
  const lines = latencyLines([
    { who: "agent", value: { add: [30, 40], del: [60, 70] } },
    { who: "fallback", value: { add: [100, 120], del: [110, 130] } },
    { who: "transparent", value: { add: [20, 25], del: [30, 35] } },
  ], {
    reference: { add: [10, 20], del: [20, 30] },
    versus: [{ who: "transparent", base: "agent" }],
  });
  assert.deepEqual(lines.slice(0, 8), [
    "ADD p50 (agent): 30.0 ms vs 10.0 ms = 3.00x",
    "ADD p50 (fallback): 100.0 ms vs 10.0 ms = 10.00x",
    "ADD p50 (transparent): 20.0 ms vs 10.0 ms = 2.00x",
    "ADD p50 (transparent vs agent): 20.0 ms vs 30.0 ms = 0.67x",
    "DEL p50 (agent): 60.0 ms vs 20.0 ms = 3.00x",
    "DEL p50 (fallback): 110.0 ms vs 20.0 ms = 5.50x",
    "DEL p50 (transparent): 30.0 ms vs 20.0 ms = 1.50x",
    "DEL p50 (transparent vs agent): 30.0 ms vs 60.0 ms = 0.50x",
  ]);
  assert.equal(lines.length, 16);
  assert.equal(
    lines[12],
    "DEL p95 (agent): 70.0 ms vs 30.0 ms = 2.33x",
  );
  assert.equal(
    lines[15],
    "DEL p95 (transparent vs agent): 35.0 ms vs 70.0 ms = 0.50x",
  );
});

Deno.test("latencyLines() without versus pairs keeps the three-system lines", () => {
  const lines = latencyLines([
    { who: "agent", value: { add: [31], del: [20] } },
    { who: "fallback", value: { add: [50], del: [40] } },
  ], { reference: { add: [14.8], del: [20] } });
  assert.deepEqual(lines.slice(0, 2), [
    "ADD p50 (agent): 31.0 ms vs 14.8 ms = 2.09x",
    "ADD p50 (fallback): 50.0 ms vs 14.8 ms = 3.38x",
  ]);
  assert.equal(lines.length, 8);
});

Deno.test("burstLines() lists every system that ran, transparent against the agent", async (t) => {
  const reference = burstOf(200, { rssMax: 5000 });
  const versus = [{ who: "transparent", base: "agent" }];
  await t.step("with transparent mode", () => {
    assert.deepEqual(
      burstLines([
        { who: "agent", value: burstOf(800) },
        { who: "fallback", value: burstOf(2400, { ok: 29, rssMax: 55000 }) },
        { who: "transparent", value: burstOf(400, { dups: 1 }) },
      ], { reference, versus }),
      [
        "burst 30 wall (agent): 800.0 ms vs 200.0 ms = 4.00x",
        "burst 30 wall (fallback): 2400.0 ms vs 200.0 ms = 12.00x",
        "burst 30 wall (transparent): 400.0 ms vs 200.0 ms = 2.00x",
        "burst 30 wall (transparent vs agent): 400.0 ms vs 800.0 ms = 0.50x",
        "burst 30 successes: agent 30/30, fallback 29/30, transparent 30/30 vs 30/30; duplicate IPs: agent 0, fallback 0, transparent 1 vs 0",
        "burst 30 plugin peak RSS max (agent): 34000 KB vs 5000 KB = 6.80x",
        "burst 30 plugin peak RSS max (fallback): 55000 KB vs 5000 KB = 11.00x",
        "burst 30 plugin peak RSS max (transparent): 34000 KB vs 5000 KB = 6.80x",
      ],
    );
  });
  await t.step(
    "a size transparent mode skipped has no transparent line",
    () => {
      const lines = burstLines([
        { who: "agent", value: burstOf(800) },
        { who: "fallback", value: burstOf(2400) },
      ], { reference, versus });
      assert.equal(lines.length, 5);
      assert.ok(lines.every((l) => !l.includes("transparent")), lines.join());
      assert.equal(
        lines[2],
        "burst 30 successes: agent 30/30, fallback 30/30 vs 30/30; duplicate IPs: agent 0, fallback 0 vs 0",
      );
    },
  );
});

Deno.test("ratioTargetRow() meets ≤ and < bounds as stated, never on NaN", async (t) => {
  type Values = Parameters<typeof ratioTargetRow>[1];
  const cases: [string, Values, "yes" | "**no**"][] = [
    ["atMost includes the bound", {
      target: "",
      ours: 20,
      theirs: 10,
      atMost: 2,
    }, "yes"],
    [
      "atMost: above it",
      { target: "", ours: 21, theirs: 10, atMost: 2 },
      "**no**",
    ],
    ["below: under it", { target: "", ours: 9.9, theirs: 10, below: 1 }, "yes"],
    ["below excludes the bound: transparent must beat bridge mode", {
      target: "",
      ours: 10,
      theirs: 10,
      below: 1,
    }, "**no**"],
    ["nothing measured (ours)", {
      target: "",
      ours: NaN,
      theirs: 10,
      atMost: 2,
    }, "**no**"],
    ["nothing measured (theirs)", {
      target: "",
      ours: 5,
      theirs: NaN,
      below: 1,
    }, "**no**"],
  ];
  for (const [name, values, met] of cases) {
    await t.step(name, () => {
      assert.equal(ratioTargetRow("m", values).split(" | ").at(-1), `${met} |`);
    });
  }
  await t.step("a failed extra condition fails the row", () => {
    assert.equal(
      ratioTargetRow("250-burst", {
        target: "< 1×, 250/250",
        ours: 5000,
        theirs: 9000,
        below: 1,
        extra: { text: ", 249/250", met: false },
      }),
      "| 250-burst | < 1×, 250/250 | 5000.0 ms vs 9000.0 ms = 0.56x, 249/250 | **no** |",
    );
  });
});

Deno.test("latencyRow() and burstRow() print the table cells", () => {
  assert.equal(
    latencyRow("azure-vnet transparent + agent", {
      add: [3, 1, 2],
      del: [10, 30, 20],
    }),
    "| azure-vnet transparent + agent | 2.0 | 3.0 | 20.0 | 30.0 |",
  );
  assert.equal(
    burstRow("transparent", burstOf(123.45, { failures: ["x", "y"] })),
    "| 30 | transparent | 123.5 | 30/30 | 0 | 33000 | 34000 | x; y |",
  );
});

Deno.test("latencySeries() gives every system an ADD and a DEL row in one colour", () => {
  const rows = latencySeries([
    { label: "agent", latency: { add: [1], del: [2] }, color: "#1" },
    { label: "transparent", latency: { add: [3], del: [4] }, color: "#2" },
  ]);
  assert.deepEqual(
    rows.map((r) => [r.label, r.samples, r.color]),
    [
      ["ADD agent", [1], "#1"],
      ["ADD transparent", [3], "#2"],
      ["DEL agent", [2], "#1"],
      ["DEL transparent", [4], "#2"],
    ],
  );
});
