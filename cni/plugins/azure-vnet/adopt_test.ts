import assert from "node:assert/strict";
import { acnStatePresent, adoptAcnState, adoptIfPresent } from "./adopt.ts";
import { readState } from "./state.ts";
import { AZURE_VNET_IPAM_SRC } from "../../../tools/testbed/cni.ts";
import { acnNode } from "./_acn_node.ts";
import { cmdCheck } from "./cmd_check.ts";
import { cmdDel } from "./cmd_del.ts";
import { cmdGc } from "./cmd_gc.ts";

/** The Go azure-vnet v0.91's node (tests/testdata/acn-v0.91-node). */
const FIXTURE = new URL(
  "../../../tests/testdata/acn-v0.91-node/",
  import.meta.url,
);
const FILES = ["azure-vnet.json", "azure-vnet-ipam.json"];

async function goNode(): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const f of FILES) {
    await Deno.copyFile(new URL(f, FIXTURE), `${dir}/${f}`);
  }
  return dir;
}

Deno.test("adoptAcnState() converts both files, keeps the Go ones, and is done once", async () => {
  const dir = await goNode();
  try {
    assert.ok(await acnStatePresent(dir));
    // An older, different backup is kept beside the new one.
    await Deno.writeTextFile(`${dir}/azure-vnet.json.acn-backup`, "older");
    const out = await adoptAcnState(dir);
    assert.ok(out !== undefined && !out.dryRun);
    assert.deepEqual(out.backups, [
      `${dir}/azure-vnet.json.acn-backup.1`,
      `${dir}/azure-vnet-ipam.json.acn-backup`,
    ]);
    for (const [f, b] of FILES.map((f, i) => [f, out.backups[i]])) {
      assert.deepEqual(
        await Deno.readFile(b ?? ""),
        await Deno.readFile(new URL(f ?? "", FIXTURE)),
      );
    }
    assert.equal(
      await Deno.readTextFile(`${dir}/azure-vnet.json.acn-backup`),
      "older",
    );
    const state = await readState(dir);
    assert.equal(Object.keys(state.endpoints).length, 3);
    assert.ok(!(await acnStatePresent(dir)));
    assert.equal(await adoptAcnState(dir), undefined);
    await adoptIfPresent(dir);
    assert.deepEqual(await readState(dir), state);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A process named `name` (its `comm`, as the kernel names a process after
 * its executable) that sleeps: a copy of `sleep` under that name in `dir`.
 */
async function namedProcess(
  dir: string,
  name: string,
): Promise<Deno.ChildProcess> {
  const exe = `${dir}/${name}`;
  await Deno.copyFile("/bin/sleep", exe);
  await Deno.chmod(exe, 0o755);
  return new Deno.Command(exe, { args: ["60"], stdout: "null", stderr: "null" })
    .spawn();
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  await child.status;
}

Deno.test("adoptAcnState() waits for a live Go call's lock file, converts once it is gone, and fails with 11 while it stays", async (t) => {
  const cases: {
    name: string;
    /** The holder's name (its comm); default `azure-vnet`. */
    comm?: string;
    /** Whose lock file names it; default `azure-vnet.json`. */
    file?: string;
    /** After this many ms, the holder ends ("delete": its lock file too). */
    end?: { afterMs: number; lock: "delete" | "keep" };
    /** The holder is dead before adoption starts. */
    dead?: boolean;
    /** The lock file was written an hour before the holder started. */
    older?: boolean;
    waitMs: number;
    converts: boolean;
    /** Bounds of the time adoption took, in ms. */
    took: [number, number];
  }[] = [
    {
      name: "a live Go call that finishes within the wait",
      end: { afterMs: 300, lock: "delete" },
      waitMs: 5000,
      converts: true,
      took: [250, 4000],
    },
    {
      name: "a live Go call that dies within the wait, leaving its lock file",
      end: { afterMs: 300, lock: "keep" },
      waitMs: 5000,
      converts: true,
      took: [250, 4000],
    },
    {
      name: "a live Go call that outlasts the wait",
      waitMs: 400,
      converts: false,
      took: [350, 4000],
    },
    {
      name: "a live Go IPAM call that outlasts the wait",
      comm: "azure-vnet-ipam",
      file: "azure-vnet-ipam.json",
      waitMs: 400,
      converts: false,
      took: [350, 4000],
    },
    {
      name: "a dead Go call (its lock file left behind)",
      dead: true,
      waitMs: 5000,
      converts: true,
      took: [0, 2000],
    },
    {
      name: "its PID reused by another program",
      comm: "sleep",
      waitMs: 5000,
      converts: true,
      took: [0, 2000],
    },
    {
      name: "its PID reused by an azure-vnet started after the lock file",
      older: true,
      waitMs: 5000,
      converts: true,
      took: [0, 2000],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const dir = await goNode();
      const bin = await Deno.makeTempDir({ prefix: "acn-go-" });
      const comm = c.comm ?? "azure-vnet";
      const holder = await namedProcess(bin, comm);
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        if (c.dead) await stop(holder);
        const lock = `${dir}/${c.file ?? "azure-vnet.json"}.lock`;
        await Deno.writeTextFile(lock, String(holder.pid));
        if (c.older) {
          const hourAgo = new Date(Date.now() - 3_600_000);
          await Deno.utime(lock, hourAgo, hourAgo);
        }
        const end = c.end;
        if (end !== undefined) {
          timer = setTimeout(() => {
            holder.kill("SIGKILL");
            if (end.lock === "delete") Deno.removeSync(lock);
          }, end.afterMs);
        }
        const start = Date.now();
        const run = adoptAcnState(dir, { goLockWaitMs: c.waitMs });
        if (c.converts) {
          const out = await run;
          assert.equal(out?.report.endpoints.length, 3);
          assert.ok(!(await acnStatePresent(dir)));
        } else {
          await assert.rejects(run, {
            name: "CniError",
            code: 11,
            message: new RegExp(`PID ${holder.pid} .*${comm}`),
          });
          // Nothing converted, nothing kept aside, the Go lock untouched.
          for (const f of FILES) {
            assert.deepEqual(
              await Deno.readFile(`${dir}/${f}`),
              await Deno.readFile(new URL(f, FIXTURE)),
            );
          }
          assert.deepEqual(
            (await Array.fromAsync(Deno.readDir(dir))).filter((e) =>
              e.name.includes(".acn-backup")
            ),
            [],
          );
          assert.equal(await Deno.readTextFile(lock), String(holder.pid));
        }
        const took = Date.now() - start;
        assert.ok(took >= c.took[0] && took <= c.took[1], `${took} ms`);
      } finally {
        clearTimeout(timer);
        await stop(holder);
        await Deno.remove(bin, { recursive: true });
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
});

/** The Go ADD result of fixture pod `index` as a 1.1.0 prevResult. */
function goPrevResult(index: number): Record<string, unknown> {
  const r = JSON.parse(
    Deno.readTextFileSync(new URL(`add-acn-pod-${index}.json`, FIXTURE)),
  ) as Record<string, unknown>;
  const ips = (r.ips as Record<string, unknown>[]).map((
    { version: _v, ...rest },
  ) => rest);
  return { ...r, cniVersion: "1.1.0", ips };
}

/**
 * A `CNI_PATH` dir holding `azure-vnet-ipam`: a wrapper running the
 * member's `main.ts` with this deno, as an exec'd IPAM.
 */
async function ipamBinDir(): Promise<string> {
  const bin = await Deno.makeTempDir({ prefix: "acn-bin-" });
  const argv = AZURE_VNET_IPAM_SRC.map((a) => `"${a}"`).join(" ");
  await Deno.writeTextFile(
    `${bin}/azure-vnet-ipam`,
    `#!/bin/sh\nexec ${argv} "$@"\n`,
    { mode: 0o755 },
  );
  return bin;
}

/** What the exec'd deno needs of this process's environment (its cache). */
function denoEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["HOME", "DENO_DIR", "PATH"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return env;
}

Deno.test("DEL, CHECK and GC of adopted pods free and check their addresses on both IPAM routes", async (t) => {
  const bin = await ipamBinDir();
  try {
    for (const ipamExec of [false, true]) {
      await t.step(`ipamExec ${ipamExec}`, async (t) => {
        await using n = await acnNode({
          raw: { ipamExec },
          path: [bin],
          env: denoEnv(),
        });
        const [p1, p2, p3] = n.pods;
        assert.ok(p1 && p2 && p3);
        const del = n.args("DEL", p1.containerId, { netns: p1.netns });
        await t.step("DEL of pod 1 (the first call adopts)", async () => {
          await cmdDel(n.ctx, del);
          assert.ok(!n.links().includes(p1.hostVeth));
          assert.deepEqual(n.rulesOf("10.99.0.12"), []);
          assert.equal((await n.held())["10.99.0.12"], undefined);
          assert.deepEqual(await n.endpoints(), [
            "acn:acnpod2d-eth0/eth0",
            "acn:acnpod3c-eth0/eth0",
          ]);
        });
        await t.step("the runtime's retry of that DEL", async () => {
          await cmdDel(n.ctx, del);
          assert.equal((await n.held())["10.99.0.12"], undefined);
        });
        await t.step("CHECK of pod 2 against its Go result", async () => {
          await cmdCheck(
            n.ctx,
            n.args("CHECK", p2.containerId, {
              netns: p2.netns,
              config: { prevResult: goPrevResult(2) },
            }),
          );
        });
        await t.step(
          "GC listing pod 2 removes pod 3 as its DEL would",
          async () => {
            await cmdGc(
              n.ctx,
              n.args("GC", "", {
                config: {
                  "cni.dev/valid-attachments": [{
                    containerID: p2.containerId,
                    ifname: "eth0",
                  }],
                },
              }),
            );
            assert.ok(!n.links().includes(p3.hostVeth));
            assert.ok(n.links().includes(p2.hostVeth));
            assert.deepEqual(n.rulesOf("10.99.0.10"), []);
            assert.equal(n.rulesOf("10.99.0.8").length, 2);
            assert.deepEqual(await n.held(), {
              "10.99.0.8": "acn:acnpod2d-eth0",
            });
            assert.deepEqual(await n.endpoints(), ["acn:acnpod2d-eth0/eth0"]);
          },
        );
      });
    }
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("DEL and CHECK of a container sharing an adopted pod's first 8 characters leave that pod alone", async (t) => {
  await using n = await acnNode();
  const p1 = n.pods[0] ?? assert.fail("no pod 1");
  const twin = `acnpod14${"0".repeat(56)}`;
  n.kernel.addNetns("/run/netns/twin");
  const ip = p1.ip.split("/")[0] ?? "";
  async function untouched(): Promise<void> {
    assert.ok(n.links().includes(p1.hostVeth));
    assert.equal(n.rulesOf(ip).length, 2);
    assert.equal((await n.held())[ip], "acn:acnpod14-eth0");
    assert.ok((await n.endpoints()).includes("acn:acnpod14-eth0/eth0"));
  }
  const prev = (mac: string) => ({
    cniVersion: "1.1.0",
    interfaces: [{ name: "eth0", mac, sandbox: "/run/netns/twin" }],
    ips: [{ address: p1.ip, gateway: "10.99.0.1", interface: 0 }],
  });
  const cases = [
    { name: "no netns (after a failed ADD)", netns: "", config: {} },
    { name: "its own netns", netns: "/run/netns/twin", config: {} },
    {
      name: "its own netns, pod 1's address with another MAC",
      netns: "/run/netns/twin",
      config: { prevResult: prev("02:00:00:00:00:99") },
    },
    {
      name: "its own netns, pod 1's Go result (no MAC)",
      netns: "/run/netns/twin",
      config: { prevResult: goPrevResult(1) },
    },
    { name: "repeated, no netns", netns: "", config: {} },
  ];
  await t.step("CHECK: no endpoint of its own", async () => {
    await assert.rejects(
      cmdCheck(
        n.ctx,
        n.args("CHECK", twin, {
          netns: "/run/netns/twin",
          config: { prevResult: goPrevResult(1) },
        }),
      ),
      { name: "CniError", code: 106, message: /no endpoint recorded/ },
    );
    await untouched();
  });
  for (const c of cases) {
    await t.step(`DEL: ${c.name}`, async () => {
      await cmdDel(
        n.ctx,
        n.args("DEL", twin, { netns: c.netns, config: c.config }),
      );
      await untouched();
    });
  }
  await t.step(
    "DEL of pod 1 with its MAC and address in prevResult",
    async () => {
      await cmdDel(
        n.ctx,
        n.args("DEL", p1.containerId, {
          config: { prevResult: prev(p1.podMac) },
        }),
      );
      assert.ok(!n.links().includes(p1.hostVeth));
      assert.deepEqual(n.rulesOf(ip), []);
      assert.equal((await n.held())[ip], undefined);
      assert.ok(!(await n.endpoints()).includes("acn:acnpod14-eth0/eth0"));
    },
  );
});

Deno.test("DEL of an adopted pod whose netns and veth are gone removes what is left", async () => {
  await using n = await acnNode();
  const p1 = n.pods[0] ?? assert.fail("no pod 1");
  const ip = p1.ip.split("/")[0] ?? "";
  {
    // The netns went (a reboot, a removed sandbox), and the veth with it.
    using host = n.kernel.host();
    host.delLinkSync(p1.hostVeth);
  }
  await cmdDel(n.ctx, n.args("DEL", p1.containerId, { netns: "" }));
  assert.deepEqual(n.rulesOf(ip), []);
  assert.equal((await n.held())[ip], undefined);
  assert.ok(!(await n.endpoints()).includes("acn:acnpod14-eth0/eth0"));
});
