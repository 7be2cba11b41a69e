/**
 * Reliability of the state files: damaged files (corrupt, truncated, empty)
 * give code 102 naming the file and the recovery, or recover (empty), never
 * a silent loss; a full disk gives an error and keeps the previous state;
 * state and lock files are 0600 root, logs 0640.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { run } from "../_support/netns.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import { AzureNode } from "../../tools/testbed/mod.ts";

Deno.test("azure-vnet damaged state files: 102 naming file and recovery, never a silent loss", async (t) => {
  requireRoot();
  await using n = await AzureNode.create("10.93.0.0/16");
  const conf = n.conf(16);
  const pods = await n.pods(3);
  const a = await n.run("ADD", conf, n.env("st0", pods[0]));
  assert.equal(a.code, 0, a.stdout);
  const good = {
    vnet: await Deno.readTextFile(n.statePath),
    ipam: await Deno.readTextFile(n.ipamPath),
  };
  const cases = [
    { name: "corrupted", damage: (s: string) => s.replace(/[{}]/g, "#") },
    { name: "truncated", damage: (s: string) => s.slice(0, s.length >> 1) },
  ];
  for (const file of ["vnet", "ipam"] as const) {
    const path = file === "vnet" ? n.statePath : n.ipamPath;
    for (const c of cases) {
      await t.step(`${c.name} ${file} state: ADD fails with 102`, async () => {
        await Deno.writeTextFile(n.statePath, good.vnet);
        await Deno.writeTextFile(n.ipamPath, good.ipam);
        await Deno.writeTextFile(path, c.damage(good[file]));
        const damaged = await Deno.readTextFile(path);
        const r = await n.run("ADD", conf, n.env("st1", pods[1]));
        assert.equal(r.code, 1, r.stdout);
        assert.equal(r.json?.code, 102, r.stdout);
        const msg = String(r.json?.msg);
        assert.ok(msg.includes(path), `names the file: ${msg}`);
        assert.match(msg, /recover with|repair|delete it/);
        assert.equal(await Deno.readTextFile(path), damaged, "file kept");
      });
    }
    await t.step({
      name: `empty ${file} state: recovery, never a silent loss`,
      fn: async () => {
        await Deno.writeTextFile(n.statePath, good.vnet);
        await Deno.writeTextFile(n.ipamPath, good.ipam);
        await Deno.writeTextFile(path, "");
        const r = await n.run("ADD", conf, n.env("st1", pods[1]));
        if (r.code === 0) {
          // Recovery: empty means empty state. The held address of st0 must
          // not be handed out again when the IPAM file was the empty one:
          // the kernel still uses it, so a silent reuse is a loss.
          const ip = (r.json?.ips as { address: string }[])[0]?.address;
          const st0 = (a.json?.ips as { address: string }[])[0]?.address;
          assert.notEqual(ip, st0, "st0's address handed out again");
          const d = await n.run("DEL", conf, n.env("st1", pods[1]));
          assert.equal(d.code, 0, d.stdout);
        } else {
          assert.equal(r.json?.code, 102, r.stdout);
          assert.ok(String(r.json?.msg).includes(path));
        }
      },
    });
  }
  await Deno.writeTextFile(n.statePath, good.vnet);
  await Deno.writeTextFile(n.ipamPath, good.ipam);
  const d = await n.run("DEL", conf, n.env("st0", pods[0]));
  assert.equal(d.code, 0, d.stdout);
  assert.equal((await assertStateMatchesKernel(n)).size, 0);
});

Deno.test("azure-vnet on a full state disk: an error, previous state intact", async () => {
  requireRoot();
  await using n = await AzureNode.create("10.94.0.0/16");
  const conf = n.conf(16);
  const pods = await n.pods(2);
  const dir = `${n.dir}/small`;
  await Deno.mkdir(dir);
  await run("mount", ["-t", "tmpfs", "-o", "size=64k", "cnitest-full", dir]);
  try {
    const env = (i: number) => ({
      ...n.env(`full${i}`, pods[i]),
      AZURE_VNET_STATE_DIR: dir,
    });
    const a = await n.run("ADD", conf, env(0));
    assert.equal(a.code, 0, a.stdout);
    const before = {
      vnet: await Deno.readTextFile(`${dir}/azure-vnet.json`),
      ipam: await Deno.readTextFile(`${dir}/azure-vnet-ipam.json`),
    };
    // Fill the tmpfs to the last byte.
    await run("dd", [
      "if=/dev/zero",
      `of=${dir}/filler`,
      "bs=4k",
      "count=1000",
    ]).catch(() => {});
    const r = await n.run("ADD", conf, env(1));
    assert.notEqual(r.code, 0, r.stdout);
    assert.equal(typeof r.json?.code, "number", r.stdout);
    assert.equal(
      await Deno.readTextFile(`${dir}/azure-vnet.json`),
      before.vnet,
    );
    assert.equal(
      await Deno.readTextFile(`${dir}/azure-vnet-ipam.json`),
      before.ipam,
    );
    await Deno.remove(`${dir}/filler`);
    const d = await n.run("DEL", conf, env(0));
    assert.equal(d.code, 0, d.stdout);
  } finally {
    await run("umount", [dir]);
  }
  // The failed ADD rolled back its kernel objects too.
  assert.equal((await assertStateMatchesKernel(n)).size, 0);
});

Deno.test("azure-vnet files: state and lock 0600 root, logs 0640", async () => {
  requireRoot();
  await using n = await AzureNode.create("10.95.0.0/16");
  const pods = await n.pods(1);
  const a = await n.run("ADD", n.conf(4), n.env("sec0", pods[0]));
  assert.equal(a.code, 0, a.stdout);
  const want: Record<string, number> = {
    "azure-vnet.json": 0o600,
    "azure-vnet.json.lock": 0o600,
    "azure-vnet-ipam.json": 0o600,
    "azure-vnet-ipam.json.lock": 0o600,
    "azure-vnet.log": 0o640,
  };
  for (const [name, mode] of Object.entries(want)) {
    const st = await Deno.stat(`${n.dir}/${name}`);
    assert.equal(st.uid, 0, `${name} owned by root`);
    assert.equal(
      (st.mode ?? 0) & 0o777,
      mode,
      `${name} mode ${((st.mode ?? 0) & 0o777).toString(8)}`,
    );
  }
  const d = await n.run("DEL", n.conf(4), n.env("sec0", pods[0]));
  assert.equal(d.code, 0, d.stdout);
});

Deno.test("azure-vnet on hostile state files: a FIFO is code 5 at once; retries on corrupt state keep one copy (#12)", async (t) => {
  requireRoot();
  await using n = await AzureNode.create("10.96.0.0/16");
  const conf = n.conf(8);
  const pods = await n.pods(2);
  const a = await n.run("ADD", conf, n.env("h0", pods[0]));
  assert.equal(a.code, 0, a.stdout);
  const good = {
    vnet: await Deno.readTextFile(n.statePath),
    ipam: await Deno.readTextFile(n.ipamPath),
  };
  const fifo = async (path: string) => {
    await Deno.remove(path).catch(() => {});
    await run("mkfifo", [path]);
  };
  for (const path of [n.statePath, `${n.ipamPath}.lock`, n.ipamPath]) {
    await t.step(`${path.slice(n.dir.length + 1)} is a FIFO`, async () => {
      await fifo(path);
      try {
        for (const cmd of ["ADD", "DEL"] as const) {
          const start = performance.now();
          const r = await n.run(cmd, conf, n.env("h1", pods[1]));
          const ms = performance.now() - start;
          assert.equal(r.code, 1, r.stdout);
          assert.equal(r.json?.code, 5, r.stdout);
          assert.match(String(r.json?.msg), /is a FIFO, not a regular file/);
          assert.ok(ms < 10_000, `${cmd} answered in ${ms} ms`);
        }
      } finally {
        await Deno.remove(path);
      }
      await Deno.writeTextFile(n.statePath, good.vnet);
      await Deno.writeTextFile(n.ipamPath, good.ipam);
      // Nothing of h1 was made: h0 alone is in the kernel.
      const keys = await assertStateMatchesKernel(n);
      assert.deepEqual([...keys.keys()], ["h0/eth0"]);
    });
  }
  await t.step("kubelet retrying DEL on a corrupt state file", async () => {
    await Deno.writeTextFile(n.statePath, good.vnet.slice(0, 40));
    for (let i = 0; i < 6; i++) {
      const r = await n.run("DEL", conf, n.env("h0", pods[0]));
      assert.equal(r.json?.code, 102, r.stdout);
    }
    const copies: string[] = [];
    for await (const e of Deno.readDir(n.dir)) {
      if (e.name.startsWith("azure-vnet.json.corrupt-")) copies.push(e.name);
    }
    assert.equal(copies.length, 1, copies.join(", "));
    await Deno.writeTextFile(n.statePath, good.vnet);
  });
  const d = await n.run("DEL", conf, n.env("h0", pods[0]));
  assert.equal(d.code, 0, d.stdout);
  assert.equal((await assertStateMatchesKernel(n)).size, 0);
});
