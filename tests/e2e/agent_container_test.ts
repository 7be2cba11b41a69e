/**
 * `dist/azure-vnet-agent` in a container of its own, as the DaemonSet runs
 * it: a mount namespace with a file system of its own (here a tmpfs over
 * host-local's `dataDir`, which the node's plugins never see), flagged by
 * `AZURE_VNET_AGENT_IN_CONTAINER=true`. A network whose IPAM is a delegate
 * plugin (host-local) is handed back: the plugin runs it on the node, where
 * host-local's store is, so the fallback never hands out an address twice.
 * On the host (`false`) the agent runs the delegate itself, as before.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import {
  AZURE_VNET_AGENT_DIST,
  AZURE_VNET_DIST,
  AzureNode,
  type CniRun,
  resultIp,
  servedLines,
  spawnAgent,
  spawnProcess,
} from "../../tools/testbed/mod.ts";

const CNI_PATH = "/usr/lib/cni";

function ok(run: CniRun, what: string): void {
  assert.equal(run.code, 0, `${what}: ${run.stdout} ${run.stderr}`);
}

/**
 * A launcher for the agent with `env` added: with `hidden`, in a mount
 * namespace of its own with a tmpfs over `hidden` (the container's file
 * system there).
 */
async function wrapper(
  dir: string,
  options: { name: string; env: Record<string, string>; hidden?: string },
): Promise<string> {
  const path = `${dir}/agent-${options.name}.sh`;
  const vars = Object.entries(options.env).map(([k, v]) => `${k}=${v}`);
  const run = `${vars.join(" ")} exec ${AZURE_VNET_AGENT_DIST}`;
  const body = options.hidden === undefined ? `${run} "$@"` : [
    `exec unshare --mount --propagation private -- /bin/sh -c '`,
    `mount -t tmpfs cnitest-container "${options.hidden}" && ${run} "$0" "$@"`,
    `' "$@"`,
  ].join("");
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

/** The addresses host-local's store on the node holds for `network`. */
async function reserved(dataDir: string, network: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${dataDir}/${network}`)) {
      if (/^\d+\.\d+\.\d+\.\d+$/.test(e.name)) out.push(e.name);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

Deno.test("an agent in a container hands a host-local network's calls back: host-local's store stays on the node and the fallback never hands an address out twice", async (t) => {
  requireRoot();
  await using n = await AzureNode.create("10.77.0.0/16");
  n.argv = [AZURE_VNET_DIST];
  const [p0, p1, p2] = await n.pods(3);
  const dataDir = `${n.dir}/host-local`;
  await Deno.mkdir(dataDir);
  const conf = n.conf({
    type: "host-local",
    dataDir,
    ranges: [[{
      subnet: n.subnet,
      rangeStart: n.addr(10),
      rangeEnd: n.addr(20),
      gateway: n.addr(1),
    }]],
  });
  const network = String(conf.name);
  const place = {
    netns: n.node.name,
    cniPath: CNI_PATH,
    stateDir: n.dir,
    logDir: n.dir,
  };
  const env = (id: string, pod: typeof p0) => ({
    ...n.env(id, pod),
    CNI_PATH,
  });

  await t.step(
    "in a container, pod 1's ADD is handed back: its address is in the node's store",
    async () => {
      await using agent = await spawnAgent({
        ...place,
        agent: await wrapper(n.dir, {
          name: "in-container",
          env: { AZURE_VNET_AGENT_IN_CONTAINER: "true" },
          hidden: dataDir,
        }),
      });
      const add = await n.run("ADD", conf, env("ctr-pod1", p0));
      ok(add, "ADD");
      assert.equal(resultIp(add)?.split("/")[0], n.addr(10));
      assert.deepEqual(await reserved(dataDir, network), [n.addr(10)]);
      assert.ok(await p0?.ping(n.addr(1)), "pod -> gateway");
      // The agent took it (its log says why) and did not serve it.
      const out = await agent.stop();
      assert.equal(out.code, 0, out.stderr);
      const log = await Deno.readTextFile(`${n.dir}/azure-vnet-agent.log`);
      assert.match(
        log,
        /Runs in a container \("?AZURE_VNET_AGENT_IN_CONTAINER=true/,
      );
      const served = await servedLines(n.dir);
      assert.ok(
        !served.some((l) => / ctr-pod1 /.test(l)),
        `the plugin ran it on the node:\n${served.join("\n")}`,
      );
    },
  );

  await t.step(
    "with the agent gone, pod 2's ADD through the fallback gets another address",
    async () => {
      const add = await n.run("ADD", conf, env("ctr-pod2", p1));
      ok(add, "ADD");
      assert.equal(resultIp(add)?.split("/")[0], n.addr(11));
      assert.deepEqual(await reserved(dataDir, network), [
        n.addr(10),
        n.addr(11),
      ]);
    },
  );

  await t.step(
    "in a container, DEL is handed back too: the node's store lets the address go",
    async () => {
      await using agent = await spawnAgent({
        ...place,
        agent: await wrapper(n.dir, {
          name: "in-container",
          env: { AZURE_VNET_AGENT_IN_CONTAINER: "true" },
          hidden: dataDir,
        }),
      });
      ok(await n.run("DEL", conf, env("ctr-pod1", p0)), "DEL");
      assert.deepEqual(await reserved(dataDir, network), [n.addr(11)]);
      assert.equal((await agent.stop()).code, 0);
    },
  );

  await t.step(
    "on the host the agent runs host-local itself, on the node's store",
    async () => {
      await using agent = await spawnAgent({
        ...place,
        agent: await wrapper(n.dir, {
          name: "on-host",
          env: { AZURE_VNET_AGENT_IN_CONTAINER: "false" },
        }),
      });
      const add = await n.run("ADD", conf, env("host-pod3", p2));
      ok(add, "ADD");
      assert.equal(resultIp(add)?.split("/")[0], n.addr(12));
      ok(await n.run("DEL", conf, env("host-pod3", p2)), "DEL");
      ok(await n.run("DEL", conf, env("ctr-pod2", p1)), "DEL");
      assert.deepEqual(await reserved(dataDir, network), []);
      const served = await servedLines(n.dir, { atLeast: 3 });
      for (const line of ["ADD host-pod3", "DEL host-pod3", "DEL ctr-pod2"]) {
        assert.ok(
          served.includes(`azure-vnet ${line} eth0 0`),
          `the agent served ${line}:\n${served.join("\n")}`,
        );
      }
      assert.equal((await agent.stop()).code, 0);
      assert.equal((await assertStateMatchesKernel(n)).size, 0);
    },
  );
});

Deno.test("an agent whose ebtables is not the node's hands every bridge-mode call back, skips its reconcile, is not ready and says so", async () => {
  requireRoot();
  await using n = await AzureNode.create("10.78.0.0/16");
  n.argv = [AZURE_VNET_DIST];
  const [p0] = await n.pods(1);
  // The node as the agent sees it through AZURE_VNET_AGENT_HOST_ROOT: its
  // ebtables is the legacy one (this machine's, which the plugins run, is
  // nf_tables, as is the agent's).
  const root = `${n.dir}/node-root`;
  await Deno.mkdir(`${root}/usr/sbin`, { recursive: true });
  await Deno.mkdir(`${root}/etc/alternatives`, { recursive: true });
  await Deno.writeTextFile(`${root}/usr/sbin/ebtables-legacy`, "");
  await Deno.symlink(
    "/etc/alternatives/ebtables",
    `${root}/usr/sbin/ebtables`,
  );
  await Deno.symlink(
    "/usr/sbin/ebtables-legacy",
    `${root}/etc/alternatives/ebtables`,
  );
  const agent = await spawnAgent({
    netns: n.node.name,
    cniPath: CNI_PATH,
    stateDir: n.dir,
    logDir: n.dir,
    agent: await wrapper(n.dir, {
      name: "legacy-node",
      env: { AZURE_VNET_AGENT_HOST_ROOT: root },
    }),
  });
  const conf = n.conf(8);
  const env = { ...n.env("split0", p0), CNI_PATH };
  try {
    // Alive, not ready.
    const probe = async (...flags: string[]) =>
      await spawnProcess([AZURE_VNET_AGENT_DIST, "probe", ...flags], {
        netns: n.node.name,
        env: { AZURE_VNET_STATE_DIR: n.dir },
      }).done;
    assert.equal((await probe()).code, 0);
    const ready = await probe("--ready");
    assert.equal(ready.code, 1);
    assert.match(
      ready.stderr,
      /is not ready: ebtables: the node's ebtables is legacy .* but the agent's is nft/,
    );
    const add = await n.run("ADD", conf, env);
    ok(add, "ADD");
    assert.ok(await p0?.ping(n.addr(1)), "pod -> gateway");
    ok(await n.run("DEL", conf, env), "DEL");
    assert.equal((await assertStateMatchesKernel(n)).size, 0);
  } finally {
    const out = await agent.stop();
    assert.equal(out.code, 0, out.stderr);
    assert.match(
      out.stderr,
      /The node's ebtables is not the agent's: the node's ebtables is legacy \(\/usr\/sbin\/ebtables -> \/etc\/alternatives\/ebtables -> \/usr\/sbin\/ebtables-legacy in ".*node-root"\) but the agent's is nft/,
    );
  }
  const log = await Deno.readTextFile(`${n.dir}/azure-vnet-agent.log`);
  assert.match(log, /\[ERR\].*The node's ebtables is not the agent's/);
  assert.doesNotMatch(log, /Reconciled/);
  const served = await servedLines(n.dir);
  assert.ok(
    !served.some((l) => / split0 /.test(l)),
    `the plugin ran them:\n${served.join("\n")}`,
  );
});
