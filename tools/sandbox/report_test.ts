import assert from "node:assert/strict";
import { planChecks, renderTable, runChecks, summaryLine } from "./report.ts";
import type { NodeRecord, PodRecord } from "./record.ts";

function node(index: number): NodeRecord {
  return {
    index,
    netns: `vsb-node${index}`,
    port: `vsb-p${index}`,
    nicName: `nic${index}`,
    mac: "",
    primaryIp: `10.240.0.${4 + index}`,
    stateDir: "",
    logDir: "",
  };
}

function pod(n: number, j: number): PodRecord {
  return {
    name: `vsb-n${n}-pod${j}`,
    node: n,
    containerId: `c${n}${j}`,
    ifName: "eth0",
    ip: `10.240.1.${n * 10 + j}`,
    mac: `aa:00:00:00:0${n}:0${j}`,
  };
}

const PODS = [pod(0, 0), pod(0, 1), pod(1, 0), pod(1, 1)];
const NODES = [node(0), node(1)];

Deno.test("planChecks() gives each pod a same-node, cross-node, node and gateway target", () => {
  const checks = planChecks(PODS, { nodes: NODES, gateway: "10.240.0.1" });
  assert.equal(checks.length, 16);
  const of = (name: string) =>
    checks.filter((c) => c.pod.name === name).map((c) => [c.kind, c.target]);
  assert.deepEqual(of("vsb-n0-pod1"), [
    ["same-node", "10.240.1.0"],
    ["cross-node", "10.240.1.11"],
    ["node", "10.240.0.4"],
    ["gateway", "10.240.0.1"],
  ]);
});

Deno.test("runChecks() and renderTable() report every failure in the summary", async () => {
  const checks = planChecks(PODS, { nodes: NODES, gateway: "10.240.0.1" });
  const results = await runChecks(checks, {
    ping: (_ns, target) => Promise.resolve(!target.startsWith("10.240.1.1")),
    parallel: 3,
  });
  assert.equal(results.length, 16);
  const lines = renderTable(PODS, results);
  assert.equal(lines.length, 1 + 4 + 1);
  assert.match(lines[0] ?? "", /^POD\s+NODE\s+IP\s+MAC/);
  assert.match(lines[1] ?? "", /^vsb-n0-pod0\s+node0\s+10\.240\.1\.0\s+aa:00/);
  assert.equal(lines.at(-1), "FAIL: 6 of 16 checks failed");
  const all = results.map((r) => ({ ...r, ok: true }));
  assert.equal(summaryLine(all), "PASS: 16/16 checks");
});

const ANSWERED = true;

function answered(): Promise<boolean> {
  return Promise.resolve(ANSWERED);
}

Deno.test("planChecks() with servedBy adds a served check per pod; runChecks() compares who ran the ADD", async () => {
  const checks = planChecks(PODS, {
    nodes: NODES,
    gateway: "10.240.0.1",
    servedBy: "agent",
  });
  assert.equal(checks.length, 20);
  const results = await runChecks(checks, {
    ping: answered,
    servedBy: (p) =>
      Promise.resolve(p.name === "vsb-n1-pod1" ? "in-process" : "agent"),
  });
  const lines = renderTable(PODS, results);
  assert.match(lines[0] ?? "", /GATEWAY\s+SERVED$/);
  assert.match(lines[1] ?? "", /ok agent$/);
  assert.match(lines[4] ?? "", /FAIL agent$/);
  assert.equal(lines.at(-1), "FAIL: 1 of 20 checks failed");
  const unplanned = await runChecks(checks.slice(4, 5), {
    ping: answered,
  });
  assert.ok(unplanned[0]?.ok === false, "no servedBy: a served check fails");
});

Deno.test("planChecks() with armNic adds a nic check per pod; runChecks() asks whether the NIC in ARM has the pod's address", async () => {
  const checks = planChecks(PODS, {
    nodes: NODES,
    gateway: "10.240.0.1",
    armNic: true,
  });
  assert.equal(checks.filter((c) => c.kind === "nic").length, PODS.length);
  const results = await runChecks(checks, {
    ping: answered,
    onNic: (p, nic) =>
      Promise.resolve(p.name !== "vsb-n1-pod1" && nic === `nic${p.node}`),
  });
  const lines = renderTable(PODS, results);
  assert.match(lines[0] ?? "", /GATEWAY\s+ARM NIC$/);
  assert.match(lines[1] ?? "", /ok nic0$/);
  assert.match(lines[4] ?? "", /FAIL nic1$/);
  assert.equal(lines.at(-1), `FAIL: 1 of ${checks.length} checks failed`);
});
