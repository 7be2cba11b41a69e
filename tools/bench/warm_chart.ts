/**
 * The benchmark's warm pool phase (#16): a one-node sandbox
 * (`tools/sandbox/`: the ARM/IMDS emulator in a fabric netns, the installed
 * plugins, the agent with a warm pool config), a burst of concurrent ADDs
 * and then their DELs, while a sampler inside the node netns reads the
 * agent's `GET /v1/pool` (`127.0.0.1:10091`) every few ms. `bench.ts`
 * charts the readings with `poolSvg`.
 *
 * Everything runs in the namespaces the sandbox creates (inside the
 * benchmark's private network namespace) and is removed again.
 *
 * @module
 */
import {
  addPod,
  deletePod,
  sandboxDown,
  sandboxUp,
} from "../sandbox/sandbox.ts";
import { SandboxNames } from "../sandbox/fabric.ts";
import type { PoolMark, PoolSample } from "./svg.ts";

/** The bounds of the phase. */
export interface WarmChartPlan {
  /** Concurrent ADDs in the burst. */
  pods: number;
  /** The warm pool's free addresses, low and high water. */
  warm: { min: number; max: number };
  /** The NIC's ipconfigs at the start, primary included. */
  ipCount: number;
  /** Sampling interval, ms. */
  intervalMs: number;
}

/** What the phase measured. */
export interface WarmChart {
  samples: PoolSample[];
  marks: PoolMark[];
  /** ADDs that succeeded (an ADD answering 11 is retried, like a runtime). */
  ok: number;
  /** Wall time of the burst of ADDs, ms. */
  addWallMs: number;
}

/**
 * The sampler, run by `deno eval` in the node netns: one JSON line per
 * reading (`t` epoch ms, `total` addresses the IPAM holds, `free`) until
 * its stdin closes. No reading while the agent has no IPAM state (before
 * the first ADD).
 */
function samplerScript(intervalMs: number): string {
  return `
let done = false;
(async () => { for await (const _ of Deno.stdin.readable) {} done = true; })();
const enc = new TextEncoder();
while (!done) {
  const t = Date.now();
  try {
    const r = await fetch("http://127.0.0.1:10091/v1/pool");
    const doc = await r.json();
    if (doc.pools.length === 0) throw new Error("no IPAM state yet");
    let total = 0, free = 0;
    for (const p of doc.pools) {
      total += p.counts.in_use + p.counts.free + p.counts.stale;
      free += p.counts.free;
    }
    await Deno.stdout.write(enc.encode(JSON.stringify({ t, total, free }) + "\\n"));
  } catch { /* the agent is busy or not up yet: skip the reading */ }
  await new Promise((r) => setTimeout(r, Math.max(0, ${intervalMs} - (Date.now() - t))));
}`;
}

/**
 * Runs the phase in a sandbox of its own under `dir` (removed afterwards).
 *
 * @param plan Its bounds.
 * @param options The sandbox directory and where progress lines go.
 * @returns The readings (ms since the agent started) and the marks.
 * @throws {Error} When the sandbox cannot be built or a DEL fails.
 */
export async function warmChart(
  plan: WarmChartPlan,
  options: { dir: string; print: (line: string) => void },
): Promise<WarmChart> {
  const names = new SandboxNames(`cbw${Deno.pid % 100000}`);
  try {
    const { record: rec } = await sandboxUp({
      prefix: names.prefix,
      dir: options.dir,
      nodes: 1,
      pods: 0,
      ipCount: plan.ipCount,
      skipBuild: true,
      warm: plan.warm,
      print: options.print,
    });
    const node = rec.nodes[0];
    if (node === undefined) throw new Error("Cannot find the sandbox's node");
    const sampler = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        node.netns,
        Deno.execPath(),
        "eval",
        samplerScript(plan.intervalMs),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const t0 = Date.now();
    const marks: PoolMark[] = [];
    const mark = (label: string) => marks.push({ ms: Date.now() - t0, label });
    let ok = 0;
    let addWallMs = NaN;
    try {
      // Let the pool reach its low water first.
      await new Promise((r) => setTimeout(r, 3000));
      mark(`${plan.pods} ADDs`);
      const a0 = performance.now();
      const pods = await Promise.allSettled(
        Array.from({ length: plan.pods }, (_, i) =>
          addPod(rec, {
            node: 0,
            name: names.pod(0, i),
            retryTryAgainMs: 60_000,
          })),
      );
      addWallMs = performance.now() - a0;
      ok = pods.filter((p) => p.status === "fulfilled").length;
      mark("ADDs done");
      await new Promise((r) => setTimeout(r, 3000));
      mark(`${ok} DELs`);
      await Promise.all(
        rec.pods.map((p) => p.name).map((name) => deletePod(rec, name)),
      );
      mark("DELs done");
      // The pool gives back what exceeds its high water.
      await new Promise((r) => setTimeout(r, 6000));
    } finally {
      await sampler.stdin.close();
    }
    const text = new TextDecoder().decode((await sampler.output()).stdout);
    const samples = text.split("\n").filter((l) => l !== "").map((l) => {
      const s = JSON.parse(l) as { t: number; total: number; free: number };
      return { ms: s.t - t0, total: s.total, free: s.free };
    }).filter((s) => s.ms >= 0);
    return { samples, marks, ok, addWallMs };
  } finally {
    for (const l of await sandboxDown(options.dir)) options.print(l);
  }
}
