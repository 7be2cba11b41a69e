/**
 * The built `dist/azure-vnet` run with the environments real runtimes pass
 * (issue #12): containerd 1.6's `opt` plugin (`LD_LIBRARY_PATH=
 * /opt/containerd/lib:` and `/opt/containerd/bin` first on `PATH`), a
 * hostile `PATH` whose first directory holds fake `ebtables` binaries, and
 * `LD_PRELOAD` with a huge environment. Every case drives ADD, CHECK and DEL
 * against an {@link AzureNode} (static IPAM) and checks the kernel and a
 * ping; the exec-IPAM route (`ipamExec` with `dist/azure-vnet-ipam`, and
 * host-local) runs under the same environments, because delegates are
 * spawned through the same Deno permission check as ebtables.
 *
 * `/opt/containerd/bin` is a directory of the test's own (`<tmp>/opt/...`);
 * `LD_LIBRARY_PATH` keeps containerd's literal value, which only makes the
 * dynamic linker look for libraries there.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import {
  AZURE_VNET_DIST,
  AzureNode,
  type CniRun,
  type Netns,
  resultIp,
} from "../../tools/testbed/mod.ts";

/** The directory of the built plugins (`CNI_PATH` of the exec route). */
const DIST_DIR = AZURE_VNET_DIST.slice(0, AZURE_VNET_DIST.lastIndexOf("/"));

/** The system part of containerd's `PATH` (systemd's default). */
const SYSTEM_PATH =
  "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** What containerd 1.6 with its `opt` plugin passes besides `CNI_*`. */
function containerdEnv(optRoot: string): Record<string, string> {
  return {
    LD_LIBRARY_PATH: "/opt/containerd/lib:",
    PATH: `${optRoot}/opt/containerd/bin:${SYSTEM_PATH}`,
  };
}

/**
 * Writes `ebtables` and `ebtables-restore` into `dir` that append their
 * name and arguments to `marker` and exit 0 (so a plugin that ran them
 * would believe its rules were installed).
 */
async function writeFakeEbtables(dir: string, marker: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const name of ["ebtables", "ebtables-restore"]) {
    await Deno.writeTextFile(
      `${dir}/${name}`,
      `#!/bin/sh\necho "$0 $*" >> '${marker}'\nexit 0\n`,
      { mode: 0o755 },
    );
  }
}

/** About `bytes` of environment in 1 KiB variables. */
function hugeEnv(bytes: number): Record<string, string> {
  const env: Record<string, string> = {};
  const value = "x".repeat(1000);
  for (let i = 0; i * 1024 < bytes; i++) {
    env[`CNITEST_PAD_${String(i).padStart(5, "0")}`] = value;
  }
  return env;
}

function ok(run: CniRun, what: string): void {
  assert.equal(run.code, 0, `${what}: ${run.stdout} ${run.stderr}`);
}

/**
 * ADD (pings the gateway and the node), CHECK, DEL of one attachment; the
 * kernel matches the state after ADD and after DEL. Returns the pod IP.
 */
async function addCheckDel(
  n: AzureNode,
  conf: Record<string, unknown>,
  spec: {
    id: string;
    pod: Netns | undefined;
    extraEnv?: Record<string, string>;
  },
): Promise<string> {
  const env = { ...n.env(spec.id, spec.pod), ...spec.extraEnv };
  const add = await n.run("ADD", conf, env);
  ok(add, "ADD");
  const ip = resultIp(add)?.split("/")[0];
  assert.ok(ip !== undefined, add.stdout);
  assert.ok(await spec.pod?.ping(n.addr(1)), "pod -> gateway");
  assert.ok(await spec.pod?.ping(n.addr(4)), "pod -> node");
  const rules = await n.ebtables();
  assert.equal(
    [...rules.matchAll(new RegExp(`-dst ${ip.replaceAll(".", "\\.")}\\b`, "g"))]
      .length,
    2,
    `the pod's two ebtables rules after ADD:\n${rules}`,
  );
  ok(await n.run("CHECK", conf, env), "CHECK");
  ok(await n.run("DEL", conf, env), "DEL");
  assert.doesNotMatch(
    await n.ebtables(),
    new RegExp(`-dst ${ip.replaceAll(".", "\\.")}\\b`),
    "the pod's rules are gone after DEL",
  );
  return ip;
}

Deno.test("dist/azure-vnet ADD, CHECK and DEL work with containerd's environment (LD_LIBRARY_PATH, /opt/containerd/bin first on PATH)", async (t) => {
  requireRoot();
  await using n = await AzureNode.create("10.61.0.0/16");
  const opt = `${n.dir}/fake-root`;
  await Deno.mkdir(`${opt}/opt/containerd/bin`, { recursive: true });
  n.baseEnv = { ...containerdEnv(opt), CNI_PATH: "/usr/lib/cni" };
  const [p0, p1, p2] = await n.pods(3);

  await t.step(
    "in-process IPAM: the pod gets its address and pings",
    async () => {
      const ip = await addCheckDel(n, n.conf(8), { id: "ctrd0", pod: p0 });
      assert.equal(ip, "10.61.1.0");
      assert.equal((await assertStateMatchesKernel(n)).size, 0);
    },
  );

  await t.step("exec route: dist/azure-vnet-ipam from CNI_PATH", async () => {
    await addCheckDel(n, n.conf(8, { ipamExec: true }), {
      id: "ctrd1",
      pod: p1,
      extraEnv: { CNI_PATH: `${DIST_DIR}:/usr/lib/cni` },
    });
    assert.equal((await assertStateMatchesKernel(n)).size, 0);
  });

  await t.step("exec route: host-local from /usr/lib/cni", async () => {
    const conf = {
      ...n.conf(0),
      ipam: {
        type: "host-local",
        dataDir: `${n.dir}/host-local`,
        ranges: [[{
          subnet: n.subnet,
          rangeStart: "10.61.2.10",
          rangeEnd: "10.61.2.20",
          gateway: n.addr(1),
        }]],
      },
    };
    const ip = await addCheckDel(n, conf, { id: "ctrd2", pod: p2 });
    assert.equal(ip, "10.61.2.10");
  });
});

Deno.test("dist/azure-vnet never runs an ebtables found through a hostile PATH", async () => {
  requireRoot();
  await using n = await AzureNode.create("10.62.0.0/16");
  const evil = `${n.dir}/evil-bin`;
  const marker = `${n.dir}/fake-ebtables-ran`;
  await writeFakeEbtables(evil, marker);
  // containerd's layout with the fakes in its bin directory, plus a
  // directory of fakes first on PATH.
  const opt = `${n.dir}/fake-root`;
  await writeFakeEbtables(`${opt}/opt/containerd/bin`, marker);
  n.baseEnv = {
    ...containerdEnv(opt),
    PATH: `${evil}:${containerdEnv(opt).PATH}`,
    CNI_PATH: `${DIST_DIR}:/usr/lib/cni`,
  };
  const [pod] = await n.pods(1);
  const env = n.env("evil0", pod);
  const conf = n.conf(8);

  const add = await n.run("ADD", conf, env);
  ok(add, "ADD");
  const ip = resultIp(add)?.split("/")[0] ?? "";
  const rules = await n.ebtables();
  assert.match(rules, /--snat-arp/, `host rules after ADD:\n${rules}`);
  assert.equal(
    [...rules.matchAll(new RegExp(`-dst ${ip.replaceAll(".", "\\.")}\\b`, "g"))]
      .length,
    2,
    `the pod's rules after ADD:\n${rules}`,
  );
  assert.ok(await pod?.ping(n.addr(1)), "pod -> gateway");
  assert.equal((await assertStateMatchesKernel(n)).size, 1);

  ok(await n.run("CHECK", conf, env), "CHECK");
  ok(await n.run("DEL", conf, env), "DEL");
  assert.doesNotMatch(
    await n.ebtables(),
    new RegExp(`-dst ${ip.replaceAll(".", "\\.")}\\b`),
    "the pod's rules are gone after DEL",
  );
  assert.equal((await assertStateMatchesKernel(n)).size, 0);

  // The exec route too (its launcher gets the same PATH).
  ok(
    await n.run("ADD", n.conf(8, { ipamExec: true }), n.env("evil1", pod)),
    "ADD (exec route)",
  );
  ok(
    await n.run("DEL", n.conf(8, { ipamExec: true }), n.env("evil1", pod)),
    "DEL (exec route)",
  );
  await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
  // The fakes are live: run directly, they leave the marker.
  await new Deno.Command(`${evil}/ebtables`, { args: ["-L"] }).output();
  assert.match(await Deno.readTextFile(marker), /evil-bin\/ebtables -L/);
});

Deno.test("dist/azure-vnet works with LD_PRELOAD of a missing library and a ~1.6 MB environment", async (t) => {
  requireRoot();
  await using n = await AzureNode.create("10.63.0.0/16");
  const opt = `${n.dir}/fake-root`;
  await Deno.mkdir(`${opt}/opt/containerd/bin`, { recursive: true });
  // ARG_MAX is 2 MiB here (an 8 MiB stack / 4) for argv and environment
  // together, and every exec on the way (ip netns exec, the launcher, deno,
  // a delegate) carries both: ~1.6 MB leaves room for the arguments.
  n.baseEnv = {
    ...hugeEnv(1_600_000),
    ...containerdEnv(opt),
    LD_PRELOAD: `${n.dir}/missing/libcnitest-preload.so`,
    CNI_PATH: `${DIST_DIR}:/usr/lib/cni`,
  };
  const [p0, p1] = await n.pods(2);

  await t.step("in-process IPAM", async () => {
    await addCheckDel(n, n.conf(8), { id: "huge0", pod: p0 });
  });

  await t.step(
    "exec route: dist/azure-vnet-ipam under the same environment",
    async () => {
      await addCheckDel(n, n.conf(8, { ipamExec: true }), {
        id: "huge1",
        pod: p1,
      });
    },
  );
  assert.equal((await assertStateMatchesKernel(n)).size, 0);
});
