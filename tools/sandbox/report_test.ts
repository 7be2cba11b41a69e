import assert from "node:assert/strict";
import {
  type Check,
  planChecks,
  renderTable,
  runChecks,
  summaryLine,
} from "./report.ts";
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

/** The kinds and targets of one pod's checks. */
function targetsOf(checks: readonly Check[], name: string): string[][] {
  return checks.filter((c) => c.pod.name === name).map((c) => [
    c.kind,
    c.target,
  ]);
}

/** The IPv4 checks of vsb-n0-pod1. */
const POD1_V4 = [
  ["same-node", "10.240.1.0"],
  ["cross-node", "10.240.1.11"],
  ["node", "10.240.0.4"],
  ["gateway", "10.240.0.1"],
];

Deno.test("planChecks() gives each pod a same-node, cross-node, node and gateway target", () => {
  const checks = planChecks(PODS, { nodes: NODES, gateway: "10.240.0.1" });
  assert.equal(checks.length, 16);
  assert.deepEqual(targetsOf(checks, "vsb-n0-pod1"), POD1_V4);
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

Deno.test("planChecks() with gateway6 adds the four checks in IPv6 for dual-stack pods; renderTable() shows IPV6 and their columns", async () => {
  const v6 = (p: PodRecord): PodRecord => ({
    ...p,
    ipv6: `fd00::1:${p.node * 10 + Number(p.name.at(-1))}`,
  });
  const pods = PODS.map(v6);
  const nodes = NODES.map((n) => ({
    ...n,
    primaryIpv6: `fd00::${4 + n.index}`,
  }));
  const checks = planChecks(pods, {
    nodes,
    gateway: "10.240.0.1",
    gateway6: "fd00::1",
  });
  assert.equal(checks.length, 32);
  assert.deepEqual(targetsOf(checks, "vsb-n0-pod1"), [
    ...POD1_V4,
    ["same-node6", "fd00::1:0"],
    ["cross-node6", "fd00::1:11"],
    ["node6", "fd00::4"],
    ["gateway6", "fd00::1"],
  ]);
  // IPv4-only pods (or no gateway6) get no IPv6 checks.
  const v4 = planChecks(PODS, { nodes, gateway: "10.240.0.1", gateway6: "x" });
  assert.equal(v4.length, 16);
  assert.equal(
    planChecks(pods, { nodes, gateway: "10.240.0.1" }).length,
    16,
  );
  const results = await runChecks(checks, {
    ping: (_ns, target) => Promise.resolve(target !== "fd00::1:11"),
  });
  const lines = renderTable(pods, results);
  assert.match(
    lines[0] ?? "",
    /^POD\s+NODE\s+IP\s+IPV6\s+MAC\s+POD\(SAME\)\s+POD\(CROSS\)\s+NODE\s+GATEWAY\s+POD6\(SAME\)\s+POD6\(CROSS\)\s+NODE6\s+GATEWAY6$/,
  );
  assert.match(
    lines[2] ?? "",
    /^vsb-n0-pod1\s+node0\s+10\.240\.1\.1\s+fd00::1:1\s/,
  );
  assert.match(lines[2] ?? "", /FAIL fd00::1:11\s+ok fd00::4\s+ok fd00::1$/);
  // fd00::1:11 is node1 pod1: pod0 on node1 and pod1 on node0 ping it.
  assert.equal(lines.at(-1), "FAIL: 2 of 32 checks failed");
});
