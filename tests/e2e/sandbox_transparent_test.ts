/**
 * The sandbox in transparent mode (#15) through the real plugins: `up
 * --mode transparent` passes every check with the node's `eth0` keeping its
 * addresses (no bridge), the fabric drops a source that is no ipconfig of
 * the NIC on the routed path, the negative proof (forwarding off on one
 * node) fails every cross-node check touching it and restoring it passes
 * again, and `down` leaves nothing. Small sizes keep it within the e2e
 * time budget; it uses the built `dist/` (`deno task build`).
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { ipJson, run } from "../_support/netns.ts";
import { withSandbox } from "../_support/sandbox.ts";
import { podConfig, sandboxNegative } from "../../tools/sandbox/sandbox.ts";
import { pingFrom } from "../../tools/sandbox/_run.ts";
import { SandboxNames } from "../../tools/sandbox/fabric.ts";
import { portChain } from "../../tools/sandbox/fabric_rules.ts";

interface IpLink {
  ifname: string;
  master?: string;
  linkinfo?: { "info_kind"?: string };
}

/** Frames the fabric dropped at a port's last (catch-all) rule. */
async function portDrops(fabric: string, port: string): Promise<number> {
  const out = await run("ip", [
    "netns",
    "exec",
    fabric,
    "ebtables",
    "-L",
    portChain(port),
    "--Lc",
  ]);
  const line = out.split("\n").find((l) => l.startsWith("-j DROP"));
  const n = /pcnt = (\d+)/.exec(line ?? "")?.[1];
  assert.ok(n !== undefined, out);
  return Number(n);
}

async function sysctl(ns: string, key: string): Promise<string> {
  return (await run("ip", ["netns", "exec", ns, "sysctl", "-n", key])).trim();
}

/** Adds (or deletes) an extra `/32` or `/128` address on a node's eth0. */
async function eth0Addr(ns: string, op: "add" | "del", ip: string) {
  const len = ip.includes(":") ? 128 : 32;
  await run("ip", ["-n", ns, "addr", op, `${ip}/${len}`, "dev", "eth0"]);
}

Deno.test("sandbox up --mode transparent routes pods through the node under Azure's rules", async (t) => {
  requireRoot();
  const options = { skipBuild: true, mode: "transparent" } as const;
  await withSandbox(
    { ...options, nodes: 2, pods: 2, ipCount: 6 },
    async (up) => {
      const r = up.record;

      await t.step("every check passes", () => {
        assert.equal(up.results.length, 20, up.lines.join("\n"));
        assert.equal(
          up.lines.at(-1),
          "PASS: 20/20 checks",
          up.lines.join("\n"),
        );
      });

      await t.step(
        "the conflist and record say transparent; eth0 keeps its address, no bridge",
        async () => {
          assert.equal(r.mode, "transparent");
          const conf = await podConfig(r);
          assert.equal(conf.mode, "transparent");
          assert.equal(conf.bridge, undefined);
          for (const node of r.nodes) {
            const links = await ipJson<IpLink[]>(
              ["-d", "link", "show"],
              node.netns,
            );
            assert.ok(
              links.every((l) =>
                l.linkinfo?.info_kind !== "bridge" && l.master === undefined
              ),
              JSON.stringify(links),
            );
            const addrs = await ipJson<
              { addr_info: { family: string; local: string }[] }[]
            >(["-4", "addr", "show", "dev", "eth0"], node.netns);
            assert.deepEqual(
              addrs.flatMap((a) => a.addr_info.map((i) => i.local)),
              [node.primaryIp],
            );
            assert.equal(await sysctl(node.netns, "net.ipv4.ip_forward"), "1");
          }
        },
      );

      await t.step(
        "the fabric drops a routed source that is no ipconfig of the NIC",
        async () => {
          const [n0, n1] = r.nodes;
          assert.ok(n0 !== undefined && n1 !== undefined);
          // An address of the subnet that ARM never gave node0's NIC.
          const spoof = "10.240.255.250";
          await eth0Addr(n0.netns, "add", spoof);
          const fabric = new SandboxNames(r.prefix).fabric;
          try {
            const before = await portDrops(fabric, n0.port);
            assert.ok(
              await pingFrom(n0.netns, n1.primaryIp, { from: n0.primaryIp }),
            );
            assert.equal(await portDrops(fabric, n0.port), before);
            assert.ok(!await pingFrom(n0.netns, n1.primaryIp, { from: spoof }));
            assert.ok(await portDrops(fabric, n0.port) > before);
          } finally {
            await eth0Addr(n0.netns, "del", spoof);
          }
        },
      );

      await t.step(
        "negative proof: with node0's forwarding off cross-node traffic fails, restored it passes",
        async () => {
          const neg = await sandboxNegative(r.dir, { node: 0 });
          assert.ok(neg.proven, neg.lines.join("\n"));
          assert.equal(neg.lines[0], "set on node0: net.ipv4.ip_forward=0");
          assert.ok(
            neg.lines.includes(
              "NEGATIVE PROOF: all 4 cross-node checks touching node0 fail with forwarding off (net.ipv4.ip_forward)",
            ),
            neg.lines.join("\n"),
          );
          assert.equal(
            neg.lines.at(-1),
            "restored on node0: net.ipv4.ip_forward=1; PASS: 20/20 checks",
          );
          const n0 = r.nodes[0]?.netns ?? "";
          assert.equal(await sysctl(n0, "net.ipv4.ip_forward"), "1");
        },
      );
    },
  );
});
