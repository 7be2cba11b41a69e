/**
 * `tools/build` end to end: the launcher fallback built from the fixture
 * entry, run the way a runtime runs a plugin, with its permission scope
 * checked from inside the plugin process.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const FIXTURE = "tools/build/testdata/fixture_plugin.ts";

async function buildCli(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}tools/build/main.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

interface Probe {
  read: string[];
  write: string[];
  run: string[];
  env: string[];
}

async function probe(
  launcher: string,
  env: Record<string, string>,
): Promise<Probe> {
  const out = await new Deno.Command(launcher, {
    clearEnv: true,
    env: { CNI_COMMAND: "PROBE", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("build produces scoped, pre-warmed launchers when denort is unavailable", async (t) => {
  requireRoot();
  const tmp = await Deno.makeTempDir({ prefix: "cnitest-build-" });
  try {
    const dist = `${tmp}/dist`;
    const denoDir = `${tmp}/deno`;
    const entries = [
      "--entry",
      `azure-vnet=${FIXTURE}`,
      "--entry",
      `azure-vnet-ipam=${FIXTURE}`,
    ];

    await t.step(
      "build falls back to bundle + launcher and pre-warms DENO_DIR",
      async () => {
        const r = await buildCli([
          "--out",
          dist,
          "--deno-dir",
          denoDir,
          ...entries,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /azure-vnet: launcher \(no local denort/);
        assert.match(r.stdout, /azure-vnet-ipam: launcher/);
        const sh = await Deno.readTextFile(`${dist}/azure-vnet`);
        assert.match(sh, /^#!\/bin\/sh\n/);
        assert.ok(
          sh.includes(
            `exec '${Deno.execPath()}' run --no-config --cached-only`,
          ),
        );
        assert.match(sh, /DENO_DIR='[^']*\/deno'/);
        assert.match(
          sh,
          /--allow-net="?168\.63\.129\.16,169\.254\.169\.254,127\.0\.0\.1/,
        );
        const ipam = await Deno.readTextFile(`${dist}/azure-vnet-ipam`);
        assert.doesNotMatch(ipam, /--allow-run|--allow-ffi/);
        const cache = await Deno.stat(`${denoDir}/v8_code_cache_v2`);
        assert.ok(cache.isFile);
      },
    );

    await t.step(
      "launcher answers VERSION with an empty environment",
      async () => {
        const out = await new Deno.Command(`${dist}/azure-vnet`, {
          clearEnv: true,
          env: { CNI_COMMAND: "VERSION" },
          stdout: "piped",
        }).output();
        assert.ok(out.success);
        const doc = JSON.parse(new TextDecoder().decode(out.stdout));
        assert.deepEqual(doc.supportedVersions, [
          "0.3.0",
          "0.3.1",
          "0.4.0",
          "1.0.0",
          "1.1.0",
        ]);
      },
    );

    await t.step(
      "read/write follow AZURE_VNET_STATE_DIR and LOG_DIR, nothing else",
      async () => {
        const state = `${tmp}/state`;
        const logs = `${tmp}/logs`;
        const other = `${tmp}/other`;
        for (const d of [state, logs, other]) await Deno.mkdir(d);
        const p = await probe(`${dist}/azure-vnet`, {
          AZURE_VNET_STATE_DIR: state,
          AZURE_VNET_LOG_DIR: logs,
          FIXTURE_READ: `${state}:${logs}:${other}:/etc`,
          FIXTURE_WRITE:
            `${state}/s.json:${logs}/l.log:${other}/x:/etc/cnitest-x`,
        });
        assert.deepEqual(p.read, ["ok", "ok", "NotCapable", "NotCapable"]);
        assert.deepEqual(p.write, ["ok", "ok", "NotCapable", "NotCapable"]);
      },
    );

    await t.step(
      "azure-vnet may run ebtables and CNI_PATH executables only",
      async () => {
        const cni = `${tmp}/cni bin`;
        await Deno.mkdir(cni);
        await Deno.writeTextFile(`${cni}/fake-ipam`, "#!/bin/sh\nexit 0\n", {
          mode: 0o755,
        });
        const p = await probe(`${dist}/azure-vnet`, {
          CNI_PATH: `/nonexistent:${cni}`,
          FIXTURE_READ: cni,
          FIXTURE_RUN: `${cni}/fake-ipam:/usr/bin/id:ebtables`,
        });
        assert.deepEqual(p.read, ["ok"]);
        assert.deepEqual(p.run, ["ok", "NotCapable", p.run[2]]);
        assert.notEqual(p.run[2], "NotCapable");
        const ipam = await probe(`${dist}/azure-vnet-ipam`, {
          CNI_PATH: cni,
          FIXTURE_RUN: `${cni}/fake-ipam`,
        });
        assert.deepEqual(ipam.run, ["NotCapable"]);
      },
    );

    await t.step(
      "azure-vnet may read a CNI_PATH entry only as written, not what a wildcard in it matches",
      async () => {
        const etc = `${tmp}/wild-etc`;
        await Deno.mkdir(etc);
        await Deno.writeTextFile(`${etc}/shadow`, "secret\n");
        const p = await probe(`${dist}/azure-vnet`, {
          CNI_PATH: `${etc}/*:${tmp}/wild-e?c`,
          FIXTURE_READ: `${etc}/shadow:${etc}`,
        });
        assert.deepEqual(p.read, ["NotCapable", "NotCapable"]);
      },
    );

    await t.step(
      "with containerd's env and a hostile PATH, azure-vnet starts without LD_* and may run only the system ebtables",
      async () => {
        // containerd 1.6 (opt plugin) passes LD_LIBRARY_PATH and puts
        // /opt/containerd/bin first on PATH; here a directory of fakes is
        // first. A grant by name would be resolved through that PATH.
        const evil = `${tmp}/evil-bin`;
        await Deno.mkdir(evil);
        for (const name of ["ebtables", "ebtables-restore"]) {
          await Deno.writeTextFile(`${evil}/${name}`, "#!/bin/sh\nexit 0\n", {
            mode: 0o755,
          });
        }
        const p = await probe(`${dist}/azure-vnet`, {
          PATH: `${evil}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin`,
          LD_LIBRARY_PATH: "/opt/containerd/lib:",
          LD_PRELOAD: `${tmp}/missing/libcnitest.so`,
          FIXTURE_RUN:
            `${evil}/ebtables:${evil}/ebtables-restore:ebtables:/usr/sbin/ebtables:/usr/sbin/ebtables-restore`,
        });
        assert.deepEqual(p.env.filter((v) => v.startsWith("LD_")), []);
        // The fakes are denied, by path or by a name PATH resolves to them;
        // the system's ebtables runs (the fixture inherits its env, which
        // LD_* would make Deno refuse).
        assert.deepEqual(p.run, [
          "NotCapable",
          "NotCapable",
          "NotCapable",
          "ok",
          "ok",
        ]);
      },
    );

    await t.step(
      "Deno denies /proc and /sys to scoped flags; --allow-all grants them",
      async () => {
        // Deno 2.9.6 requires --allow-all for Deno.* file APIs on /proc/* and
        // /sys/* whatever --allow-read says: plugins must use libc via FFI.
        const paths = "/proc/sys/net:/sys/class/net";
        const scoped = await probe(`${dist}/azure-vnet`, {
          FIXTURE_READ: paths,
        });
        assert.deepEqual(scoped.read, ["NotCapable", "NotCapable"]);
        const all = `${tmp}/dist-all`;
        const r = await buildCli([
          "--out",
          all,
          "--deno-dir",
          denoDir,
          "--allow-all",
          "--only",
          "azure-vnet",
          "--entry",
          `azure-vnet=${FIXTURE}`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          await Deno.readTextFile(`${all}/azure-vnet`),
          /--allow-all/,
        );
        const open = await probe(`${all}/azure-vnet`, { FIXTURE_READ: paths });
        assert.deepEqual(open.read, ["ok", "ok"]);
      },
    );

    await t.step("a missing entry fails clearly", async () => {
      const r = await buildCli([
        "--out",
        `${tmp}/dist2`,
        "--entry",
        "azure-vnet=cni/plugins/nope/main.ts",
      ]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /Cannot build "azure-vnet": entry "cni\/plugins\/nope\/main\.ts" not found/,
      );
    });

    await t.step(
      "--compile-only fails when denort cannot be fetched",
      async () => {
        const r = await buildCli([
          "--out",
          `${tmp}/dist3`,
          "--compile-only",
          "--only",
          "azure-vnet",
          "--entry",
          `azure-vnet=${FIXTURE}`,
        ]);
        assert.equal(r.code, 1);
        assert.match(
          r.stderr,
          /Cannot compile "azure-vnet": deno compile failed/,
        );
      },
    );

    await t.step("an unknown option prints usage and exits 2", async () => {
      const r = await buildCli(["--bogus"]);
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /Unknown option '--bogus'[\s\S]*usage: deno task build/,
      );
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
