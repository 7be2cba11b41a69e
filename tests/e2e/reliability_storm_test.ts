/**
 * Reliability: a storm of 200 ADDs and DELs of the dist launcher in random
 * order with bounded parallelism; no IP is handed out twice, and the state
 * matches the kernel at the end.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import { AzureNode, type CniRun, resultIp } from "../../tools/testbed/mod.ts";

const PARALLEL = 24;

Deno.test("azure-vnet storm: 200 ADDs and DELs in random order never share an IP; state == kernel", async () => {
  requireRoot();
  await using n = await AzureNode.create("10.91.0.0/16");
  const conf = n.conf(200);
  const pods = await n.pods(120);
  // 120 ADDs and 80 DELs (of the first 80 containers), shuffled.
  const ops = [
    ...pods.map((_, i) => ({ cmd: "ADD", i })),
    ...pods.slice(0, 80).map((_, i) => ({ cmd: "DEL", i })),
  ];
  for (let k = ops.length - 1; k > 0; k--) {
    const j = Math.floor(Math.random() * (k + 1));
    [ops[k], ops[j]] = [ops[j] as typeof ops[0], ops[k] as typeof ops[0]];
  }
  interface Done {
    cmd: string;
    i: number;
    start: number;
    end: number;
    run: CniRun;
  }
  const done: Done[] = [];
  let next = 0;
  const busy = new Map<number, Promise<void>>();
  async function worker(): Promise<void> {
    while (next < ops.length) {
      const op = ops[next++];
      if (op === undefined) return;
      // The CNI spec forbids parallel operations on the same container:
      // an op waits for the previous op of its container, like a runtime.
      const prev = busy.get(op.i) ?? Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      busy.set(op.i, promise);
      await prev;
      const start = performance.now();
      const run = await n.run(op.cmd, conf, n.env(`storm${op.i}`, pods[op.i]));
      done.push({ ...op, start, end: performance.now(), run });
      resolve();
    }
  }
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  const failed = done.filter((d) => d.run.code !== 0);
  assert.deepEqual(
    failed.map((d) => `${d.cmd} ${d.i}: ${d.run.stdout}`),
    [],
    "every ADD and DEL succeeds",
  );
  // An IP given to two ADDs must have been released in between: the first
  // holder's DEL started before the second ADD ended.
  const adds = done.filter((d) => d.cmd === "ADD");
  const dels = new Map(
    done.filter((d) => d.cmd === "DEL").map((d) => [d.i, d]),
  );
  const byIp = new Map<string, Done[]>();
  for (const a of adds) {
    const addr = resultIp(a.run);
    assert.ok(addr !== undefined, `ADD ${a.i} has an IP`);
    byIp.set(addr, [...(byIp.get(addr) ?? []), a]);
  }
  for (const [addr, holders] of byIp) {
    if (holders.length < 2) continue;
    const reused = holders.every((h) =>
      holders.some((o) => {
        if (o === h) return true;
        const del = dels.get(o.i);
        const hDel = dels.get(h.i);
        return (del !== undefined && del.start < h.end) ||
          (hDel !== undefined && hDel.start < o.end);
      })
    );
    assert.ok(reused, `${addr} handed to ${holders.map((h) => h.i)} at once`);
  }
  const live = await assertStateMatchesKernel(n);
  // Containers 80..119 were never deleted: they must all be attached.
  for (let i = 80; i < 120; i++) {
    assert.ok(live.has(`storm${i}/eth0`), `storm${i} attached`);
  }
  // Clean: DEL everything left, then the kernel and state are empty.
  for (const key of live.keys()) {
    const i = Number(key.slice(5, key.indexOf("/")));
    const r = await n.run("DEL", conf, n.env(`storm${i}`, pods[i]));
    assert.equal(r.code, 0, r.stdout);
  }
  assert.equal((await assertStateMatchesKernel(n)).size, 0);
});
