import assert from "node:assert/strict";
import { EBTABLES_DIRS as PLUGIN_EBTABLES_DIRS } from "@vnet/azure-vnet";
import { compileFlags, LOADER_VARIABLES, renderLauncher } from "./launcher.ts";
import {
  CNI_PLUGIN_DIRS,
  EBTABLES_DIRS,
  EBTABLES_RUN,
  type TargetPermissions,
  TARGETS,
} from "./targets.ts";

const AZURE_VNET = TARGETS.find((t) => t.name === "azure-vnet");

/** A stand-in deno in `dir` that prints its arguments (`ARG a`) and env. */
async function writeFakeDeno(dir: string): Promise<string> {
  const path = `${dir}/deno`;
  await Deno.writeTextFile(
    path,
    '#!/bin/sh\nfor a in "$@"; do echo "ARG $a"; done\n/usr/bin/env\n',
    { mode: 0o755 },
  );
  return path;
}

/** azure-vnet's launcher in `dir`, over the stand-in deno. */
async function writeAzureVnetLauncher(dir: string): Promise<string> {
  const fakeDeno = await writeFakeDeno(dir);
  const permissions = AZURE_VNET?.permissions;
  assert.ok(permissions !== undefined);
  const launcher = `${dir}/azure-vnet`;
  await Deno.writeTextFile(
    launcher,
    renderLauncher({
      bundleName: "azure-vnet.js",
      denoPath: fakeDeno,
      denoDir: `${dir}/deno-dir`,
      permissions,
    }),
    { mode: 0o755 },
  );
  return launcher;
}

Deno.test("TARGETS grant azure-vnet exactly the ebtables paths the plugin runs", () => {
  assert.deepEqual(EBTABLES_DIRS, PLUGIN_EBTABLES_DIRS);
  assert.deepEqual(AZURE_VNET?.permissions.run, EBTABLES_RUN);
  assert.deepEqual(EBTABLES_RUN, [
    "/usr/sbin/ebtables",
    "/usr/sbin/ebtables-restore",
    "/sbin/ebtables",
    "/sbin/ebtables-restore",
    "/usr/bin/ebtables",
    "/usr/bin/ebtables-restore",
    "/bin/ebtables",
    "/bin/ebtables-restore",
  ]);
  for (const t of TARGETS) {
    assert.deepEqual(t.permissions.run.filter((p) => !p.startsWith("/")), []);
  }
});

Deno.test("renderLauncher() and compileFlags() refuse a program given by name", () => {
  const permissions: TargetPermissions = {
    ffi: false,
    net: false,
    read: [],
    write: [],
    sys: [],
    run: ["/usr/sbin/ebtables", "ebtables"],
    delegates: false,
  };
  const matcher = {
    name: "TypeError",
    message: /Cannot grant --allow-run on \["ebtables"\]: .*absolute paths/,
  };
  assert.throws(
    () =>
      renderLauncher({
        bundleName: "x.js",
        denoPath: "/usr/bin/deno",
        denoDir: "/var/lib/x",
        permissions,
      }),
    matcher,
  );
  assert.throws(() => compileFlags(permissions), matcher);
  assert.ok(
    compileFlags({ ...permissions, run: ["/usr/sbin/ebtables"] }).includes(
      "--allow-run=/usr/sbin/ebtables",
    ),
  );
});

Deno.test("the azure-vnet launcher unsets LD_* and grants ebtables by absolute path whatever PATH says", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cnitest-launcher-" });
  try {
    const launcher = await writeAzureVnetLauncher(tmp);
    for (const dir of ["evil", "cni"]) await Deno.mkdir(`${tmp}/${dir}`);
    for (const f of ["evil/ebtables", "evil/ebtables-restore", "cni/ipam"]) {
      await Deno.writeTextFile(`${tmp}/${f}`, "#!/bin/sh\n", { mode: 0o755 });
    }
    const out = await new Deno.Command("/bin/sh", {
      args: [launcher],
      clearEnv: true,
      env: {
        PATH: `${tmp}/evil:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin`,
        LD_LIBRARY_PATH: "/opt/containerd/lib:",
        LD_PRELOAD: `${tmp}/missing/libcnitest.so`,
        LD_BIND_NOW: "1",
        CNI_PATH: `${tmp}/cni`,
        CNI_COMMAND: "VERSION",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const lines = new TextDecoder().decode(out.stdout).split("\n");
    const args = lines.filter((l) => l.startsWith("ARG ")).map((l) =>
      l.slice(4)
    );
    const env = lines.filter((l) => !l.startsWith("ARG ") && l !== "");
    assert.deepEqual(env.filter((l) => l.startsWith("LD_")), []);
    assert.ok(env.includes("CNI_COMMAND=VERSION"), env.join("\n"));
    assert.ok(env.includes(`CNI_PATH=${tmp}/cni`), env.join("\n"));
    const run = args.find((a) => a.startsWith("--allow-run="));
    assert.equal(
      run,
      `--allow-run=${[...EBTABLES_RUN, `${tmp}/cni/ipam`].join(",")}`,
    );
    for (const name of LOADER_VARIABLES) {
      assert.match(name, /^LD_[A-Z0-9_]+$/);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("the agent's launcher passes its V8 flags to deno run before the bundle; the plugins' pass none", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cnitest-launcher-" });
  try {
    const fakeDeno = await writeFakeDeno(tmp);
    for (const t of TARGETS) {
      const launcher = `${tmp}/${t.name}`;
      await Deno.writeTextFile(
        launcher,
        renderLauncher({
          bundleName: `${t.name}.js`,
          denoPath: fakeDeno,
          denoDir: `${tmp}/deno-dir`,
          permissions: t.permissions,
          ...(t.v8Flags === undefined ? {} : { v8Flags: t.v8Flags }),
        }),
        { mode: 0o755 },
      );
      const out = await new Deno.Command("/bin/sh", {
        args: [launcher, "serve"],
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin" },
        stdout: "piped",
      }).output();
      const args = new TextDecoder().decode(out.stdout).split("\n")
        .filter((l) => l.startsWith("ARG ")).map((l) => l.slice(4));
      const v8 = args.filter((a) => a.startsWith("--v8-flags"));
      assert.deepEqual(
        v8,
        t.name === "azure-vnet-agent"
          ? ["--v8-flags=--max-semi-space-size=1,--optimize-for-size"]
          : [],
        t.name,
      );
      assert.equal(args.at(-2), `${tmp}/${t.name}.js`, t.name);
      assert.equal(args.at(-1), "serve", t.name);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("the azure-vnet launcher grants read on every CNI_PATH entry, a missing one too, and run on the executables found", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cnitest-launcher-" });
  try {
    const launcher = await writeAzureVnetLauncher(tmp);
    await Deno.mkdir(`${tmp}/cni`);
    await Deno.writeTextFile(`${tmp}/cni/ipam`, "#!/bin/sh\n", { mode: 0o755 });
    const out = await new Deno.Command("/bin/sh", {
      args: [launcher],
      clearEnv: true,
      env: {
        CNI_PATH: `${tmp}/missing::${tmp}/cni:${tmp}/a,b`,
        CNI_COMMAND: "VERSION",
      },
      stdout: "piped",
    }).output();
    const args = new TextDecoder().decode(out.stdout).split("\n")
      .filter((l) => l.startsWith("ARG ")).map((l) => l.slice(4));
    const read = args.find((a) => a.startsWith("--allow-read="));
    assert.ok(
      read?.endsWith(`,${tmp}/missing,${tmp}/cni`),
      `${read} ends with the CNI_PATH entries, without the empty one or the one with a comma`,
    );
    assert.ok(
      args.includes(
        `--allow-run=${[...EBTABLES_RUN, `${tmp}/cni/ipam`].join(",")}`,
      ),
      args.join("\n"),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("the azure-vnet launcher grants a CNI_PATH entry only literally, as an absolute path: no wildcard expansion, no relative entry", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cnitest-launcher-" });
  try {
    const launcher = await writeAzureVnetLauncher(tmp);
    // A wildcard would match these: a plain file and a directory of
    // executables.
    await Deno.mkdir(`${tmp}/etc/sub`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/etc/shadow`, "secret\n");
    await Deno.writeTextFile(`${tmp}/etc/sub/tool`, "#!/bin/sh\n", {
      mode: 0o755,
    });
    // Relative entries would resolve against the runtime's working dir.
    const cwd = `${tmp}/cwd`;
    await Deno.mkdir(`${cwd}/bin`, { recursive: true });
    await Deno.writeTextFile(`${cwd}/bin/tool`, "#!/bin/sh\n", { mode: 0o755 });
    const out = await new Deno.Command("/bin/sh", {
      args: [launcher],
      cwd,
      clearEnv: true,
      env: {
        CNI_PATH: `${tmp}/etc/*:.:bin:missing:${tmp}/e?c:${tmp}/missing`,
        CNI_COMMAND: "VERSION",
      },
      stdout: "piped",
    }).output();
    const args = new TextDecoder().decode(out.stdout).split("\n")
      .filter((l) => l.startsWith("ARG ")).map((l) => l.slice(4));
    const read = args.find((a) => a.startsWith("--allow-read=")) ?? "";
    assert.ok(
      read.endsWith(`,${tmp}/etc/*,${tmp}/e?c,${tmp}/missing`),
      `${read} ends with the absolute entries, literally`,
    );
    assert.ok(!read.includes("shadow"), read);
    assert.ok(!read.split(",").includes("bin"), read);
    assert.ok(
      args.includes(`--allow-run=${EBTABLES_RUN.join(",")}`),
      args.join("\n"),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("compileFlags() lets a compiled azure-vnet and agent read the standard CNI plugin dirs, where delegate IPAM plugins are", async (t) => {
  const fixture = new URL("testdata/fixture_plugin.ts", import.meta.url)
    .pathname;
  for (const target of TARGETS) {
    await t.step(target.name, async () => {
      const flags = compileFlags(target.permissions);
      // The process a compiled binary would be, probing read access.
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", ...flags, fixture],
        clearEnv: true,
        env: {
          CNI_COMMAND: "PROBE",
          FIXTURE_READ: [...CNI_PLUGIN_DIRS, "/etc"].join(":"),
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const read: string[] = JSON.parse(new TextDecoder().decode(out.stdout))
        .read;
      assert.equal(read.at(-1), "NotCapable", "/etc stays refused");
      const dirs = read.slice(0, -1);
      if (target.permissions.delegates) {
        // Present ("ok") or not ("NotFound"), never refused.
        assert.deepEqual(
          dirs.filter((r) => r !== "ok" && r !== "NotFound"),
          [],
          `${CNI_PLUGIN_DIRS.join(" ")}: ${dirs.join(" ")}`,
        );
      } else {
        assert.deepEqual(dirs, CNI_PLUGIN_DIRS.map(() => "NotCapable"));
      }
    });
  }
});
