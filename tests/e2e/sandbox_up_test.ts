/**
 * The whole sandbox through the real plugins: `up` (fabric, emulator,
 * provisioning through tools/nic, build + install, an azure-vnet-agent per
 * node (#14), pods through azure-vnet), then the negative proof, scale-up while pods run, pod churn with a leak
 * check, a node "reboot", and `down` leaving nothing behind. One sandbox is
 * shared by the steps to stay within the e2e time budget.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { ipJson, run } from "../_support/netns.ts";
import { withSandbox } from "../_support/sandbox.ts";
import {
  addPod,
  checkSandbox,
  deletePod,
  gcNode,
  provisionNode,
  rebootNode,
  removeSnatRule,
} from "../../tools/sandbox/sandbox.ts";
import { processAlive, readArmNics } from "../../tools/sandbox/_emulator.ts";
import { readServed } from "../../tools/testbed/mod.ts";

async function ebtablesNat(netns: string): Promise<string[]> {
  const out = await run("ip", [
    "netns",
    "exec",
    netns,
    "ebtables",
    "-t",
    "nat",
    "-L",
  ]);
  return out.split("\n").filter((l) => l.startsWith("-"));
}

async function hostLinks(netns: string): Promise<string[]> {
  const links = await ipJson<{ ifname: string }[]>(["link", "show"], netns);
  return links.map((l) => l.ifname).sort();
}

async function permanentNeigh(netns: string): Promise<string[]> {
  const n = await ipJson<{ dst: string; state?: string[] }[]>(
    ["neigh", "show"],
    netns,
  );
  return n.filter((e) => e.state?.includes("PERMANENT")).map((e) => e.dst)
    .sort();
}

async function ipamInUse(stateDir: string): Promise<string[]> {
  const text = await Deno.readTextFile(`${stateDir}/azure-vnet-ipam.json`);
  const state = JSON.parse(text) as {
    pools: Record<
      string,
      { addresses: Record<string, { containerId?: string }> }
    >;
  };
  return Object.values(state.pools).flatMap((pool) =>
    Object.entries(pool.addresses)
      .filter(([, a]) => a.containerId !== undefined)
      .map(([ip]) => ip)
  ).sort();
}

async function cniEndpoints(stateDir: string): Promise<string[]> {
  const text = await Deno.readTextFile(`${stateDir}/azure-vnet.json`);
  const state = JSON.parse(text) as { endpoints: Record<string, unknown> };
  return Object.keys(state.endpoints).sort();
}

Deno.test("sandbox up runs the plugins end to end under Azure's rules", async (t) => {
  requireRoot();
  await withSandbox({ nodes: 2, pods: 2, ipCount: 8 }, async (up) => {
    const r = up.record;
    const prefix = r.prefix;

    await t.step("multi-node connectivity: every check passes", () => {
      assert.equal(up.results.length, 20, up.lines.join("\n"));
      assert.equal(up.lines.at(-1), "PASS: 20/20 checks", up.lines.join("\n"));
    });

    await t.step("each node's agent served its pods' ADDs", async () => {
      assert.equal(r.agents?.length, 2);
      for (const a of r.agents ?? []) assert.ok(processAlive(a.pid));
      const served = up.results.filter((c) => c.kind === "served");
      assert.equal(served.length, 4);
      assert.ok(served.every((c) => c.ok && c.target === "agent"));
      for (const node of r.nodes) {
        const st = await Deno.lstat(`${node.stateDir}/azure-vnet-agent.sock`);
        assert.ok(st.isSocket);
        assert.equal((st.mode ?? 0) & 0o777, 0o600);
        const adds = (await readServed(node.logDir)).filter((l) =>
          l.startsWith("azure-vnet ADD ")
        );
        assert.equal(adds.length, 2, adds.join("\n"));
      }
    });

    await t.step(
      "negative proof: without the egress SNAT rule cross-node traffic fails",
      async () => {
        const removed = await removeSnatRule(r, 0);
        assert.match(removed, /-j snat/);
        const { results } = await checkSandbox(r);
        const cross0 = results.filter((c) =>
          c.kind === "cross-node" && c.pod.node === 0
        );
        assert.ok(
          cross0.length > 0 && cross0.every((c) => !c.ok),
          JSON.stringify(cross0),
        );
        assert.ok(
          results.filter((c) => c.kind === "same-node").every((c) => c.ok),
        );
        // Put the rule back the way the plugin wrote it.
        const [mac] = [r.nodes[0]?.mac ?? ""];
        await run("ip", [
          "netns",
          "exec",
          r.nodes[0]?.netns ?? "",
          "ebtables",
          "-t",
          "nat",
          "-A",
          "POSTROUTING",
          "-s",
          "unicast",
          "-o",
          "eth0",
          "-j",
          "snat",
          "--to-src",
          mac,
          "--snat-arp",
          "--snat-target",
          "ACCEPT",
        ]);
        const again = await checkSandbox(r);
        assert.ok(again.results.every((c) => c.ok), again.lines.join("\n"));
      },
    );

    await t.step("scale-up of ipconfigs while pods run", async () => {
      const node = r.nodes[1];
      assert.ok(node !== undefined);
      async function nicIps(): Promise<readonly string[]> {
        const nics = await readArmNics(r.emulator?.stateFile ?? "");
        return nics.find((n) => n.name === node?.nicName)?.ips ?? [];
      }
      const before = await nicIps();
      await provisionNode(r, { node: 1, count: before.length + 4 });
      const added = (await nicIps()).filter((ip) => !before.includes(ip));
      assert.equal(added.length, 4);
      const { results, lines } = await checkSandbox(r);
      assert.ok(results.every((c) => c.ok), lines.join("\n"));
      // The IPAM reads the wireserver again once its queryInterval (10 s,
      // the default) has passed since its last refresh, as the original does.
      const ipam = JSON.parse(
        await Deno.readTextFile(`${node.stateDir}/azure-vnet-ipam.json`),
      ) as { lastRefresh: number };
      const wait = ipam.lastRefresh + 10_000 - Date.now();
      assert.ok(wait <= 10_000, `lastRefresh ${ipam.lastRefresh}`);
      if (wait > 0) await new Promise((ok) => setTimeout(ok, wait + 100));
      // Fill node1 one past its old capacity: a new address is handed out.
      const running = r.pods.filter((p) => p.node === 1).length;
      const fill = before.length - 1 - running + 1;
      const extra = [];
      for (let j = 0; j < fill; j++) {
        extra.push(await addPod(r, { node: 1, name: `${prefix}-n1-x${j}` }));
      }
      assert.ok(
        extra.some((p) => added.includes(p.ip)),
        JSON.stringify({ added, extra: extra.map((p) => p.ip) }),
      );
      const { results: res2, lines: l2 } = await checkSandbox(r);
      assert.ok(res2.every((c) => c.ok), l2.join("\n"));
      for (const p of extra) await deletePod(r, p.name);
    });

    await t.step(
      "pod churn: 100 pods created and deleted, nothing leaks",
      async () => {
        const node = r.nodes[0];
        assert.ok(node !== undefined);
        const links = await hostLinks(node.netns);
        const rules = await ebtablesNat(node.netns);
        const neigh = await permanentNeigh(node.netns);
        const inUse = await ipamInUse(node.stateDir);
        const endpoints = await cniEndpoints(node.stateDir);
        // Four runtime sandboxes (netns), each holding 25 pods in turn: a
        // netns costs the kernel far more than a pod, and a reused one
        // shows that DEL took the pod's interface out of it.
        const slots = [0, 1, 2, 3].map((k) => `${prefix}-slot${k}`);
        for (const ns of slots) {
          await run("ip", ["netns", "add", ns]);
          r.netns.push(ns);
        }
        const start = Date.now();
        for (let round = 0; round < 25; round++) {
          const batch = await Promise.all(
            slots.map((ns, k) =>
              addPod(r, {
                node: 0,
                name: `${prefix}-c${round}-${k}`,
                netns: ns,
              })
            ),
          );
          assert.equal(new Set(batch.map((p) => p.ip)).size, 4);
          await Promise.all(batch.map((p) => deletePod(r, p.name)));
        }
        const ms = Date.now() - start;
        for (const ns of slots) assert.deepEqual(await hostLinks(ns), ["lo"]);
        assert.deepEqual(await hostLinks(node.netns), links);
        assert.deepEqual(await ebtablesNat(node.netns), rules);
        assert.deepEqual(await permanentNeigh(node.netns), neigh);
        assert.deepEqual(await ipamInUse(node.stateDir), inUse);
        assert.deepEqual(await cniEndpoints(node.stateDir), endpoints);
        assert.ok(ms < 90_000, `churn took ${ms} ms`);
      },
    );

    await t.step(
      "node reboot: state and kernel disagree; DEL, ADD and GC recover",
      async () => {
        const node = r.nodes[1];
        assert.ok(node !== undefined);
        const agentBefore = r.agents?.find((a) => a.node === 1)?.pid;
        const dead = await rebootNode(r, 1);
        // The VM's agent went with it and a new one runs in the new node.
        const agentAfter = r.agents?.find((a) => a.node === 1)?.pid;
        assert.ok(agentBefore !== undefined && !processAlive(agentBefore));
        assert.ok(agentAfter !== undefined && processAlive(agentAfter));
        assert.equal(dead.length, 2);
        const [first, second] = dead;
        assert.ok(first !== undefined && second !== undefined);
        // The runtime DELs the first pod: its netns is gone.
        await deletePod(r, first);
        // A new pod comes up: the network is rebuilt on the fresh node.
        const fresh = await addPod(r, { node: 1, name: `${prefix}-n1-reborn` });
        // The runtime forgot the second pod: GC drops it.
        const stale = r.pods.find((p) => p.name === second);
        await gcNode(r, { node: 1, forget: [second] });
        assert.deepEqual(await ipamInUse(node.stateDir), [fresh.ip]);
        const endpoints = await cniEndpoints(node.stateDir);
        assert.equal(endpoints.length, 1, JSON.stringify(endpoints));
        const nat = (await ebtablesNat(node.netns)).join("\n");
        assert.ok(stale !== undefined && !nat.includes(stale.ip), nat);
        assert.match(nat, new RegExp(`${fresh.ip.replaceAll(".", "\\.")} `));
        const { results, lines } = await checkSandbox(r);
        assert.ok(results.every((c) => c.ok), lines.join("\n"));
      },
    );
  });
});

Deno.test("sandbox up with agent: false runs the plugins in process (the fallback)", async () => {
  requireRoot();
  const options = { skipBuild: true, agent: false } as const;
  await withSandbox(
    { ...options, nodes: 1, pods: 2, ipCount: 4 },
    async (up) => {
      assert.equal(up.lines.at(-1), "PASS: 8/8 checks", up.lines.join("\n"));
      const served = up.results.filter((c) => c.kind === "served");
      assert.ok(served.length === 2 && served.every((c) => c.ok));
      assert.ok(served.every((c) => c.target === "in-process"));
      assert.deepEqual(up.record.agents, []);
      const node = up.record.nodes[0];
      assert.ok(node !== undefined);
      await assert.rejects(
        Deno.lstat(`${node.stateDir}/azure-vnet-agent.sock`),
        { name: "NotFound" },
      );
      assert.deepEqual(await readServed(node.logDir), []);
    },
  );
});
