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
import {
  podConfig,
  sandboxNegative,
  sandboxUp,
  type UpResult,
} from "../../tools/sandbox/sandbox.ts";
import { pingFrom } from "../../tools/sandbox/_run.ts";
import { listSandboxNetns, SandboxNames } from "../../tools/sandbox/fabric.ts";
import { portChain } from "../../tools/sandbox/fabric_rules.ts";
import type { SandboxRecord } from "../../tools/sandbox/record.ts";

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

/**
 * From node0, `from` (an ipconfig) reaches `target` on node1 and the
 * fabric drops nothing of it; `spoof` (an address put on node0's eth0 for
 * this, no ipconfig of its NIC) does not, and node0's fabric port drops it.
 */
async function assertFabricDrops(
  r: SandboxRecord,
  options: { spoof: string; target: string; from: string },
): Promise<void> {
  const n0 = r.nodes[0];
  assert.ok(n0 !== undefined);
  const fabric = new SandboxNames(r.prefix).fabric;
  const { spoof, target, from } = options;
  await eth0Addr(n0.netns, "add", spoof);
  try {
    const before = await portDrops(fabric, n0.port);
    assert.ok(await pingFrom(n0.netns, target, { from }));
    assert.equal(await portDrops(fabric, n0.port), before);
    assert.ok(!await pingFrom(n0.netns, target, { from: spoof }));
    assert.ok(await portDrops(fabric, n0.port) > before);
  } finally {
    await eth0Addr(n0.netns, "del", spoof);
  }
}

/**
 * `negative` on node0 turns `keys` off: the lines say so, that all `cross`
 * cross-node checks touching node0 fail, and that the sandbox passes its
 * `checks` again once they are back on; node0 forwards again.
 */
async function assertNegativeProof(
  r: SandboxRecord,
  want: { keys: string[]; cross: number; checks: number },
): Promise<void> {
  const neg = await sandboxNegative(r.dir, { node: 0 });
  const text = neg.lines.join("\n");
  const set = (v: number) => want.keys.map((k) => `${k}=${v}`).join(" ");
  assert.ok(neg.proven, text);
  assert.equal(neg.lines[0], `set on node0: ${set(0)}`);
  assert.ok(
    neg.lines.includes(
      `NEGATIVE PROOF: all ${want.cross} cross-node checks touching node0 fail with forwarding off (${
        want.keys.join(", ")
      })`,
    ),
    text,
  );
  assert.equal(
    neg.lines.at(-1),
    `restored on node0: ${set(1)}; PASS: ${want.checks}/${want.checks} checks`,
  );
  for (const k of want.keys) {
    assert.equal(await sysctl(r.nodes[0]?.netns ?? "", k), "1");
  }
}

/** `up` ran `n` checks and every one passed. */
function assertPass(up: UpResult, n: number): void {
  assert.equal(up.results.length, n, up.lines.join("\n"));
  assert.equal(up.lines.at(-1), `PASS: ${n}/${n} checks`, up.lines.join("\n"));
}

async function sysctl(ns: string, key: string): Promise<string> {
  return (await run("ip", ["netns", "exec", ns, "sysctl", "-n", key])).trim();
}

/**
 * Adds (or deletes) an extra `/32` or `/128` address on a node's eth0 (no
 * DAD: nothing would answer it, and it should be usable at once).
 */
async function eth0Addr(ns: string, op: "add" | "del", ip: string) {
  const v6 = ip.includes(":");
  const args = ["-n", ns, "addr", op, `${ip}/${v6 ? 128 : 32}`, "dev", "eth0"];
  await run("ip", v6 && op === "add" ? [...args, "nodad"] : args);
}

Deno.test("sandbox up --mode transparent routes pods through the node under Azure's rules", async (t) => {
  requireRoot();
  const options = { skipBuild: true, mode: "transparent" } as const;
  await withSandbox(
    { ...options, nodes: 2, pods: 2, ipCount: 6 },
    async (up) => {
      const r = up.record;

      await t.step("every check passes", () => {
        assertPass(up, 20);
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
          await assertFabricDrops(r, {
            spoof: "10.240.255.250",
            target: n1.primaryIp,
            from: n0.primaryIp,
          });
        },
      );

      await t.step(
        "negative proof: with node0's forwarding off cross-node traffic fails, restored it passes",
        async () => {
          const keys = ["net.ipv4.ip_forward"];
          await assertNegativeProof(r, { keys, cross: 4, checks: 20 });
        },
      );
    },
  );
});

Deno.test("sandbox up --mode transparent --dual-stack routes both families under Azure's rules", async (t) => {
  requireRoot();
  const options = {
    skipBuild: true,
    mode: "transparent",
    dualStack: true,
  } as const;
  await withSandbox(
    { ...options, nodes: 2, pods: 2, ipCount: 4 },
    async (up) => {
      const r = up.record;
      const [n0, n1] = r.nodes;
      assert.ok(n0?.primaryIpv6 !== undefined && n1?.primaryIpv6 !== undefined);

      await t.step("every check passes in both families", () => {
        assertPass(up, 36);
        assert.equal(
          up.results.filter((c) => c.kind.endsWith("6")).length,
          16,
        );
        assert.ok(r.pods.every((p) => p.ipv6?.startsWith("fd00:10:240::")));
        assert.match(up.lines[0] ?? "", /\sIPV6\s.*\sGATEWAY6/);
      });

      await t.step(
        "eth0 holds its IPv6 address past DAD, the default route is Azure's router, the fabric answered neighbour discovery",
        async () => {
          for (const node of r.nodes) {
            const addrs = await ipJson<
              { addr_info: { local: string; scope: string }[] }[]
            >(["-6", "addr", "show", "dev", "eth0"], node.netns);
            assert.deepEqual(
              addrs.flatMap((a) =>
                a.addr_info.filter((i) => i.scope === "global").map((i) =>
                  i.local
                )
              ),
              [node.primaryIpv6],
            );
            for (const state of ["tentative", "dadfailed"]) {
              const out = await run("ip", [
                "-n",
                node.netns,
                "-6",
                "addr",
                "show",
                state,
              ]);
              assert.equal(out.trim(), "", `${state}: ${out}`);
            }
            const routes = await run("ip", [
              "-n",
              node.netns,
              "-6",
              "route",
              "show",
              "default",
            ]);
            assert.match(routes, /^default via fe80::1234:5678:9abc dev eth0 /);
            assert.equal(
              await sysctl(node.netns, "net.ipv6.conf.all.forwarding"),
              "1",
            );
          }
          // node0 reached node1's pods through the fabric, which answered
          // for them with Azure's gateway MAC.
          const neigh = await ipJson<{ dst: string; lladdr?: string }[]>(
            ["-6", "neigh", "show", "dev", "eth0"],
            n0.netns,
          );
          const peers = r.pods.filter((p) => p.node === 1).map((p) => p.ipv6);
          const seen = neigh.filter((e) => peers.includes(e.dst));
          assert.ok(seen.length > 0, JSON.stringify(neigh));
          for (const e of seen) assert.equal(e.lladdr, "12:34:56:78:9a:bc");
        },
      );

      await t.step(
        "the fabric drops a routed IPv6 source that is no ipconfig of the NIC",
        async () => {
          await assertFabricDrops(r, {
            spoof: "fd00:10:240::fe99",
            target: n1.primaryIpv6 ?? "",
            from: n0.primaryIpv6 ?? "",
          });
        },
      );

      await t.step(
        "negative proof: with node0's IPv4 and IPv6 forwarding off cross-node traffic fails in both families, restored it passes",
        async () => {
          const keys = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"];
          await assertNegativeProof(r, { keys, cross: 8, checks: 36 });
        },
      );
    },
  );
});

Deno.test("sandbox up refuses --dual-stack in bridge mode before creating anything", async () => {
  requireRoot();
  const prefix = `vsb-${crypto.randomUUID().slice(0, 5)}`;
  const dir = await Deno.makeTempDir({ prefix: "vsb-e2e-" });
  await Deno.remove(dir);
  await assert.rejects(
    sandboxUp({ prefix, dir, dualStack: true, print: () => {} }),
    { name: "RangeError", message: /bridge mode is IPv4 only/ },
  );
  await assert.rejects(Deno.stat(dir), { name: "NotFound" });
  assert.deepEqual(await listSandboxNetns(prefix), []);
});
