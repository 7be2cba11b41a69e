/**
 * `dist/azure-vnet-agent` (#14) for an {@link AzureNode}: the built
 * `dist/azure-vnet` forwards ADD, CHECK and DEL to the agent (its log shows
 * every request it served), the results have the fallback's shape, an
 * oversize request is refused with a CNI error, the socket is 0600; after
 * SIGTERM the agent is gone and the plugin runs in process again.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import {
  agentSocket,
  AZURE_VNET_AGENT_DIST,
  AZURE_VNET_DIST,
  AzureNode,
  type CniRun,
  resultIp,
  run,
  servedLines,
  spawnProcess,
  startNodeAgent,
} from "../../tools/testbed/mod.ts";

function ok(run: CniRun, what: string): void {
  assert.equal(run.code, 0, `${what}: ${run.stdout} ${run.stderr}`);
}

/** The result's shape: its keys and each interface's and IP's keys. */
function shape(run: CniRun): unknown {
  const j = run.json ?? {};
  const keys = (v: unknown) =>
    (Array.isArray(v) ? v : []).map((x) => Object.keys(x).sort());
  return {
    keys: Object.keys(j).sort(),
    interfaces: keys(j.interfaces),
    ips: keys(j.ips),
    routes: j.routes,
    cniVersion: j.cniVersion,
  };
}

Deno.test("dist/azure-vnet forwards ADD, CHECK and DEL to dist/azure-vnet-agent and falls back once it stops", async (t) => {
  requireRoot();
  await using n = await AzureNode.create("10.97.0.0/16");
  n.argv = [AZURE_VNET_DIST];
  const [p0, p1] = await n.pods(2);
  const conf = n.conf(8);
  await using agent = await startNodeAgent(n);
  let viaAgent: CniRun | undefined;

  await t.step("the socket is mode 0600", async () => {
    const st = await Deno.lstat(agentSocket(n.dir));
    assert.ok(st.isSocket);
    assert.equal((st.mode ?? 0) & 0o777, 0o600);
  });

  await t.step("ADD, CHECK, DEL go through the agent", async () => {
    const env = n.env("agent0", p0);
    viaAgent = await n.run("ADD", conf, env);
    ok(viaAgent, "ADD");
    const ip = resultIp(viaAgent)?.split("/")[0];
    assert.equal(ip, n.addr(256));
    assert.ok(await p0?.ping(n.addr(1)), "pod -> gateway");
    assert.equal((await assertStateMatchesKernel(n)).size, 1);
    ok(await n.run("CHECK", conf, env), "CHECK");
    ok(await n.run("DEL", conf, env), "DEL");
    assert.equal((await assertStateMatchesKernel(n)).size, 0);
    const served = await servedLines(n.dir, { atLeast: 3 });
    for (const command of ["ADD", "CHECK", "DEL"]) {
      assert.ok(
        served.some((l) => l === `azure-vnet ${command} agent0 eth0 0`),
        `the agent served ${command}:\n${served.join("\n")}`,
      );
    }
  });

  await t.step(
    "rules another process added after the agent listed the table are seen: the stale rules of the next pod's address go, whatever their form (#14)",
    async () => {
      const nat = (...args: string[]) =>
        run("ip", [
          "netns",
          "exec",
          n.node.name,
          "ebtables",
          "-t",
          "nat",
          ...args,
        ]);
      const e0 = n.env("agent-view0", p0);
      ok(await n.run("ADD", conf, e0), "ADD (the agent lists the table)");
      const next = n.addr(257);
      // Ours in form, and one in a form of someone else's (its target).
      for (
        const [mac, target] of [["02:00:00:00:00:99", "DROP"], [
          "02:00:00:00:00:98",
          "ACCEPT",
        ]]
      ) {
        await nat(
          "-A",
          "PREROUTING",
          ...`-p ARP --arp-op Request --arp-ip-dst ${next} -j arpreply --arpreply-mac ${mac} --arpreply-target ${target}`
            .split(" "),
        );
      }
      const e1 = n.env("agent-view1", p1);
      const add = await n.run("ADD", conf, e1);
      ok(add, "ADD of the next address");
      assert.equal(resultIp(add)?.split("/")[0], next);
      const listed = await nat("-L", "PREROUTING");
      assert.doesNotMatch(listed, /0?2:0?0:0?0:0?0:0?0:9[89]/, listed);
      assert.match(
        listed,
        new RegExp(`--arp-ip-dst ${next.replaceAll(".", "\\.")} `),
      );
      ok(await n.run("DEL", conf, e1), "DEL");
      ok(await n.run("DEL", conf, e0), "DEL");
      assert.equal((await assertStateMatchesKernel(n)).size, 0);
    },
  );

  await t.step("probes answer and leave no served line (#14)", async () => {
    const before = await servedLines(n.dir);
    for (let i = 0; i < 3; i++) {
      const probe = await spawnProcess([AZURE_VNET_AGENT_DIST, "probe"], {
        netns: n.node.name,
        env: { AZURE_VNET_STATE_DIR: n.dir },
      }).done;
      assert.equal(probe.code, 0, probe.stderr);
    }
    ok(await n.run("VERSION", conf, n.env("agent-v", p1)), "VERSION");
    // The agent logs after its reply: a DEL of nothing, logged at info,
    // marks the point by which a VERSION line would have been written.
    ok(await n.run("DEL", conf, n.env("agent-v", p1)), "DEL");
    const after = await servedLines(n.dir, { atLeast: before.length + 1 });
    assert.deepEqual(after.slice(0, before.length), before);
    assert.equal(after.length, before.length + 1, after.join("\n"));
    assert.equal(after.at(-1), "azure-vnet DEL agent-v eth0 0");
  });

  await t.step("an oversize request is refused with a CNI error", async () => {
    const big = { ...conf, pad: "x".repeat(1024 * 1024) };
    const run = await n.run("ADD", big, n.env("agent-big", p1));
    assert.equal(run.code, 1, run.stdout);
    assert.equal(run.json?.code, 5);
    assert.match(String(run.json?.msg), /Request too large/);
    assert.equal((await assertStateMatchesKernel(n)).size, 0);
  });

  await t.step(
    "a delegate IPAM the agent may not run, and azure-vnet-ipam run as a plugin, are handed back: the plugin runs them in its own process",
    async () => {
      // Installed after the agent started, in a directory it was not given.
      const late = `${n.dir}/late-cni`;
      await Deno.mkdir(late);
      await Deno.copyFile("/usr/lib/cni/host-local", `${late}/host-local`);
      await Deno.chmod(`${late}/host-local`, 0o755);
      const hostLocal = {
        ...conf,
        ipam: {
          type: "host-local",
          dataDir: `${n.dir}/host-local`,
          ranges: [[{
            subnet: n.subnet,
            rangeStart: n.addr(300),
            rangeEnd: n.addr(310),
            gateway: n.addr(1),
          }]],
        },
      };
      const env = { ...n.env("agent-late", p1), CNI_PATH: late };
      const add = await n.run("ADD", hostLocal, env);
      ok(add, "ADD");
      assert.equal(resultIp(add)?.split("/")[0], n.addr(300));
      assert.ok(await p1?.ping(n.addr(1)), "pod -> gateway");
      ok(await n.run("DEL", hostLocal, env), "DEL");
      const dist = AZURE_VNET_DIST.slice(0, AZURE_VNET_DIST.lastIndexOf("/"));
      const exec = { ...conf, ipamExec: true };
      const envExec = { ...n.env("agent-exec", p1), CNI_PATH: dist };
      ok(await n.run("ADD", exec, envExec), "ADD (ipamExec)");
      ok(await n.run("DEL", exec, envExec), "DEL (ipamExec)");
      assert.equal((await assertStateMatchesKernel(n)).size, 0);
      const served = await servedLines(n.dir, { atLeast: 2 });
      assert.ok(
        !served.some((l) => / agent-late /.test(l)),
        `host-local ran in the plugin's process:\n${served.join("\n")}`,
      );
      // The exec'd azure-vnet-ipam forwards to the agent in turn.
      for (const command of ["ADD", "DEL"]) {
        assert.ok(
          served.includes(`azure-vnet-ipam ${command} agent-exec eth0 0`),
          served.join("\n"),
        );
        assert.ok(
          !served.includes(`azure-vnet ${command} agent-exec eth0 0`),
          served.join("\n"),
        );
      }
    },
  );

  await t.step(
    "after SIGTERM the agent exits 0 and the socket is gone",
    async () => {
      const out = await agent.stop();
      assert.equal(out.code, 0, out.stderr);
      await assert.rejects(Deno.lstat(agentSocket(n.dir)), {
        name: "NotFound",
      });
    },
  );

  await t.step(
    "the fallback runs in process with the same result shape",
    async () => {
      const before = (await servedLines(n.dir)).length;
      const env = n.env("fallback0", p1);
      const add = await n.run("ADD", conf, env);
      ok(add, "ADD");
      assert.ok(viaAgent !== undefined);
      assert.deepEqual(shape(add), shape(viaAgent));
      assert.ok(await p1?.ping(n.addr(1)), "pod -> gateway");
      ok(await n.run("CHECK", conf, env), "CHECK");
      ok(await n.run("DEL", conf, env), "DEL");
      assert.equal((await assertStateMatchesKernel(n)).size, 0);
      assert.equal((await servedLines(n.dir)).length, before, "nothing served");
    },
  );
});
