/**
 * The sandbox fabric alone, with plain namespaces and static addresses: it
 * answers ARP with Azure's gateway MAC, delivers by destination IP, and drops
 * spoofed source MACs and IPs. Its rules follow the view they are made from.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { ipJson, run } from "../_support/netns.ts";
import {
  applyFabricRules,
  createFabric,
  createNode,
  listSandboxNetns,
  SandboxNames,
  subnetLayout,
} from "../../tools/sandbox/fabric.ts";
import type { FabricView } from "../../tools/sandbox/fabric_rules.ts";

const MAC0 = "00:0d:3a:00:00:01";
const MAC1 = "00:0d:3a:00:00:02";

async function ping(ns: string, target: string, from?: string) {
  const args = ["netns", "exec", ns, "ping", "-c1", "-W1", "-q"];
  if (from !== undefined) args.push("-I", from);
  const out = await new Deno.Command("ip", {
    args: [...args, target],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

Deno.test("fabric answers ARP, delivers by IP and drops spoofed frames", async (t) => {
  requireRoot();
  const names = new SandboxNames(`vsb-${crypto.randomUUID().slice(0, 5)}`);
  const subnet = subnetLayout("10.240.0.0/16");
  try {
    await createFabric(names, subnet);
    await createNode(names, 0, {
      nic: { mac: MAC0, primaryIp: "10.240.0.4" },
      subnet,
    });
    await createNode(names, 1, {
      nic: { mac: MAC1, primaryIp: "10.240.0.5" },
      subnet,
    });
    const view: FabricView = {
      subnet: subnet.cidr,
      ports: [
        { port: names.port(0), mac: MAC0, ips: ["10.240.0.4"] },
        { port: names.port(1), mac: MAC1, ips: ["10.240.0.5"] },
      ],
    };
    await applyFabricRules(names, view);
    const n0 = names.node(0);
    const n1 = names.node(1);

    await t.step(
      "node reaches node, gateway and metadata addresses",
      async () => {
        assert.ok(await ping(n0, "10.240.0.5"));
        assert.ok(await ping(n1, "10.240.0.4"));
        assert.ok(await ping(n0, "10.240.0.1"));
        assert.ok(await ping(n0, "168.63.129.16"));
        assert.ok(await ping(n0, "169.254.169.254"));
      },
    );

    await t.step(
      "ARP for a subnet address is answered with 12:34:56:78:9a:bc",
      async () => {
        const neigh = await ipJson<{ dst: string; lladdr?: string }[]>(
          ["neigh", "show", "dev", "eth0"],
          n0,
        );
        const peer = neigh.find((n) => n.dst === "10.240.0.5");
        assert.equal(peer?.lladdr, "12:34:56:78:9a:bc");
      },
    );

    await t.step(
      "delivery rewrote the destination MAC to the NIC's (dnat counted)",
      async () => {
        const nat = await run("ip", [
          "netns",
          "exec",
          names.fabric,
          "ebtables",
          "-t",
          "nat",
          "-L",
          "--Lc",
        ]);
        const line = nat.split("\n").find((l) =>
          l.includes(`--ip-dst 10.240.0.5 -j dnat --to-dst ${MAC1}`)
        );
        assert.ok(line !== undefined, nat);
        assert.doesNotMatch(line, /pcnt = 0 /);
      },
    );

    await t.step(
      "a source IP that is no ipconfig of the NIC is dropped",
      async () => {
        await run("ip", [
          "-n",
          n0,
          "addr",
          "add",
          "10.240.0.9/16",
          "dev",
          "eth0",
        ]);
        assert.ok(!await ping(n0, "10.240.0.5", "10.240.0.9"));
      },
    );

    await t.step(
      "a regenerated view makes the new ipconfig usable",
      async () => {
        await applyFabricRules(names, {
          subnet: view.subnet,
          ports: [
            {
              port: names.port(0),
              mac: MAC0,
              ips: ["10.240.0.4", "10.240.0.9"],
            },
            view.ports[1] ?? assert.fail("port 1"),
          ],
        });
        assert.ok(await ping(n0, "10.240.0.5", "10.240.0.9"));
        assert.ok(await ping(n1, "10.240.0.9"));
      },
    );

    await t.step("a source MAC that is not the NIC's is dropped", async () => {
      await run("ip", [
        "-n",
        n0,
        "link",
        "set",
        "eth0",
        "address",
        "00:0d:3a:00:00:99",
      ]);
      await run("ip", ["-n", n0, "neigh", "flush", "all"]);
      assert.ok(!await ping(n0, "10.240.0.5"));
      assert.ok(!await ping(n0, "10.240.0.1"));
      await run("ip", ["-n", n0, "link", "set", "eth0", "address", MAC0]);
      assert.ok(await ping(n0, "10.240.0.5"));
    });
  } finally {
    for (const ns of await listSandboxNetns(names.prefix)) {
      await run("ip", ["netns", "del", ns]);
    }
  }
  assert.deepEqual(await listSandboxNetns(names.prefix), []);
});
