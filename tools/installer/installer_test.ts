import assert from "node:assert/strict";
import {
  AGENT_UNIT_NAME,
  install,
  type InstallOptions,
  type InstallReport,
  MANIFEST_NAME,
  renderAgentUnit,
  renderConflist,
  uninstall,
} from "./installer.ts";

const ROOT = new URL("../../", import.meta.url);

/** A shell launcher that answers VERSION and `--version` like ours. */
const FAKE = `#!/bin/sh
if [ "\${1:-}" = --version ]; then echo "\${0##*/} 9.9.9"; exit 0; fi
cat >/dev/null
echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'
`;

async function fakeDist(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const name of ["azure-vnet", "azure-vnet-ipam", "azure-vnet-agent"]) {
    await Deno.writeTextFile(`${dir}/${name}`, FAKE, { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/${name}.js`, "// bundle\n");
    await Deno.writeTextFile(`${dir}/${name}.in_process-T3ST.js`, "// chunk\n");
  }
}

/** Runs `fn` with a temp dir holding a fake `dist/`, removed afterwards. */
async function withFakeDist(fn: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "vnet-inst-" });
  try {
    await fakeDist(`${tmp}/dist`);
    await fn(tmp);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("renderAgentUnit() is deploy/azure-vnet-agent.service for /opt/cni/bin", () => {
  const shipped = Deno.readTextFileSync(
    new URL("deploy/azure-vnet-agent.service", ROOT),
  );
  assert.equal(
    renderAgentUnit({ agentPath: "/opt/cni/bin/azure-vnet-agent" }),
    shipped,
  );
  for (
    const line of [
      "ExecStart=/opt/cni/bin/azure-vnet-agent serve",
      "User=root",
      "Restart=on-failure",
      "Environment=AZURE_VNET_STATE_DIR=/var/run",
      "Environment=AZURE_VNET_LOG_DIR=/var/log",
      "Environment=CNI_PATH=/opt/cni/bin",
      // SIGTERM to the agent only: its drain lets the requests' children
      // (ebtables-restore, delegate IPAM) finish.
      "KillMode=mixed",
      "KillSignal=SIGTERM",
      "TimeoutStopSec=45",
      "WantedBy=multi-user.target",
    ]
  ) {
    assert.ok(shipped.split("\n").includes(line), line);
  }
  // The agent must see pod namespaces mounted after it started.
  assert.doesNotMatch(shipped, /PrivateMounts|ProtectSystem|PrivateNetwork/);
});

Deno.test("renderAgentUnit() refuses a path systemd would split or expand", async (t) => {
  for (
    const bad of ["azure-vnet-agent", "/opt/my bin/a", "/opt/%h/a", "/a;b"]
  ) {
    await t.step(bad, () => {
      assert.throws(() => renderAgentUnit({ agentPath: bad }), {
        name: "SyntaxError",
        message: /Cannot write a unit for agent path/,
      });
    });
  }
});

Deno.test("install() puts the agent in agentDir and the unit in systemdDir; uninstall() removes them", async () => {
  await withFakeDist(async (tmp) => {
    const report = await install({
      distDir: `${tmp}/dist`,
      binDir: `${tmp}/bin`,
      agentDir: `${tmp}/libexec`,
      confDir: `${tmp}/net.d`,
      systemdDir: `${tmp}/systemd`,
    });
    assert.deepEqual(report.agent, {
      path: `${tmp}/libexec/azure-vnet-agent`,
      kind: "launcher",
      version: "azure-vnet-agent 9.9.9",
    });
    assert.equal(report.unit, `${tmp}/systemd/${AGENT_UNIT_NAME}`);
    assert.deepEqual(names(`${tmp}/libexec`), [
      "azure-vnet-agent",
      "azure-vnet-agent.in_process-T3ST.js",
      "azure-vnet-agent.js",
    ]);
    assert.deepEqual(names(`${tmp}/bin`), [
      MANIFEST_NAME,
      "azure-vnet",
      "azure-vnet-ipam",
      "azure-vnet-ipam.in_process-T3ST.js",
      "azure-vnet-ipam.js",
      "azure-vnet.in_process-T3ST.js",
      "azure-vnet.js",
    ]);
    assert.equal(
      ((await Deno.stat(`${tmp}/bin/azure-vnet.in_process-T3ST.js`)).mode ??
        0) & 0o777,
      0o644,
    );
    const unit = await Deno.readTextFile(report.unit);
    assert.match(
      unit,
      new RegExp(`^ExecStart=${tmp}/libexec/azure-vnet-agent serve$`, "m"),
    );
    assert.equal(((await Deno.stat(report.unit)).mode ?? 0) & 0o777, 0o644);
    assert.equal(
      ((await Deno.stat(`${tmp}/libexec/azure-vnet-agent`)).mode ?? 0) & 0o777,
      0o755,
    );
    const removed = await uninstall({ binDir: `${tmp}/bin` });
    assert.ok(removed.removed.includes(report.unit));
    assert.deepEqual(names(`${tmp}/libexec`), []);
    assert.deepEqual(names(`${tmp}/systemd`), []);
    assert.deepEqual(names(`${tmp}/bin`), []);
  });
});

Deno.test("install() without agentDir or systemdDir puts the agent next to the plugins and writes no unit", async () => {
  await withFakeDist(async (tmp) => {
    const report = await install({
      distDir: `${tmp}/dist`,
      binDir: `${tmp}/bin`,
      confDir: `${tmp}/net.d`,
    });
    assert.equal(report.unit, undefined);
    assert.equal(report.agent.path, `${tmp}/bin/azure-vnet-agent`);
    assert.ok(names(`${tmp}/bin`).includes("azure-vnet-agent.js"));
  });
});

Deno.test("install() replaces its own earlier conflist without force, a foreign one only with force", async () => {
  await withFakeDist(async (tmp) => {
    const conflistPath = `${tmp}/net.d/10-azure.conflist`;
    const base = {
      distDir: `${tmp}/dist`,
      binDir: `${tmp}/bin`,
      confDir: `${tmp}/net.d`,
    };
    const first = await install({ ...base, master: "eth0" });
    assert.equal(first.conflist, "written");
    // New options (the DaemonSet's AZURE_VNET_MASTER, its CNI version):
    // the file is the one the manifest records, so it is replaced.
    const second = await install({
      ...base,
      master: "eth1",
      cniVersion: "0.4.0",
    });
    assert.equal(second.conflist, "replaced");
    const doc = JSON.parse(await Deno.readTextFile(conflistPath));
    assert.equal(doc.plugins[0].master, "eth1");
    assert.equal(doc.cniVersion, "0.4.0");
    // Someone else's conflist under our name: refused, left as it is.
    const foreign = `${JSON.stringify({ ...doc, name: "theirs" })}\n`;
    await Deno.writeTextFile(conflistPath, foreign);
    await assert.rejects(install(base), {
      name: "AlreadyExists",
      message: /a different conflist exists; use --force/,
    });
    assert.equal(await Deno.readTextFile(conflistPath), foreign);
    const forced = await install({ ...base, force: true });
    assert.equal(forced.conflist, "replaced");
    assert.equal(
      JSON.parse(await Deno.readTextFile(conflistPath)).name,
      "azure",
    );
    // The forced file is ours now: a later change needs no force.
    assert.equal(
      (await install({ ...base, master: "eth0" })).conflist,
      "replaced",
    );
  });
});

/**
 * In a temp dir with a fake dist: installs (master eth0), lets `interrupt`
 * stop a second install (master eth1, agent in `<tmp>/libexec`) part way,
 * then checks that the next install (master eth2, without force, as the
 * DaemonSet's) replaces the conflist that one left, and that uninstall then
 * removes all that any of them wrote. Returns the next install's report.
 */
async function installAfterInterrupted(
  interrupt: (second: InstallOptions, tmp: string) => Promise<void>,
): Promise<{ report: InstallReport; libexec: string }> {
  let out: { report: InstallReport; libexec: string } | undefined;
  await withFakeDist(async (tmp) => {
    const conflistPath = `${tmp}/net.d/10-azure.conflist`;
    const master = async () =>
      JSON.parse(await Deno.readTextFile(conflistPath)).plugins[0].master;
    const base = {
      distDir: `${tmp}/dist`,
      binDir: `${tmp}/bin`,
      confDir: `${tmp}/net.d`,
    };
    const libexec = `${tmp}/libexec`;
    await install({ ...base, master: "eth0" });
    await interrupt({ ...base, agentDir: libexec, master: "eth1" }, tmp);
    assert.equal(await master(), "eth1");
    const report = await install({ ...base, master: "eth2" });
    assert.equal(report.conflist, "replaced");
    assert.equal(await master(), "eth2");
    out = { report, libexec };
    await uninstall(base);
    assert.deepEqual(names(`${tmp}/bin`), []);
    assert.deepEqual(names(libexec), []);
    assert.deepEqual(names(`${tmp}/net.d`), []);
  });
  assert.ok(out !== undefined);
  return out;
}

Deno.test("install() after a failed install recognises the conflist and the files that install wrote", async () => {
  const { report, libexec } = await installAfterInterrupted(
    async (second, tmp) => {
      // The first install's agent cannot be removed (a directory with
      // something in it where it was): the second install, to another
      // agent dir, fails in its removals after it wrote the new conflist.
      const agent = `${tmp}/bin/azure-vnet-agent`;
      await Deno.remove(agent);
      await Deno.mkdir(agent);
      await Deno.writeTextFile(`${agent}/x`, "");
      await assert.rejects(install(second), /Directory not empty/);
      await Deno.remove(agent, { recursive: true });
    },
  );
  // The agent the failed install wrote elsewhere is removed.
  assert.ok(
    report.removed.includes(`${libexec}/azure-vnet-agent`),
    report.removed.join(" "),
  );
});

Deno.test("install() after an install killed while it wrote its files recognises the conflist and the files it left", async () => {
  const { report, libexec } = await installAfterInterrupted(
    async (second) => {
      // The second install stops after it wrote the agent's chunk (a
      // directory with something in it where the bundle goes); the
      // conflist it would have written next is put there by hand, as a
      // kill between that write and its manifest's leaves it.
      const bundle = `${second.agentDir}/azure-vnet-agent.js`;
      await Deno.mkdir(bundle, { recursive: true });
      await Deno.writeTextFile(`${bundle}/x`, "");
      await assert.rejects(install(second));
      assert.deepEqual(names(`${second.agentDir}`), [
        "azure-vnet-agent.in_process-T3ST.js",
        "azure-vnet-agent.js",
      ]);
      await Deno.writeTextFile(
        `${second.confDir}/10-azure.conflist`,
        renderConflist(second),
      );
      await Deno.remove(bundle, { recursive: true });
    },
  );
  // The chunk the killed install left is recorded: kept for one more
  // install (then uninstall removed it).
  assert.ok(
    report.superseded.includes(
      `${libexec}/azure-vnet-agent.in_process-T3ST.js`,
    ),
    report.superseded.join(" "),
  );
});

Deno.test("install() keeps the unit an earlier install wrote; noSystemd removes it", async (t) => {
  await withFakeDist(async (tmp) => {
    const base = {
      distDir: `${tmp}/dist`,
      binDir: `${tmp}/bin`,
      confDir: `${tmp}/net.d`,
    };
    const unit = `${tmp}/systemd/${AGENT_UNIT_NAME}`;
    const manifestFiles = async () =>
      JSON.parse(await Deno.readTextFile(`${tmp}/bin/${MANIFEST_NAME}`))
        .files as string[];
    await install({ ...base, systemdDir: `${tmp}/systemd` });
    await t.step("a repeat install without systemdDir keeps it", async () => {
      const r = await install(base);
      assert.equal(r.unit, unit);
      assert.ok(r.unitKept);
      assert.deepEqual(r.removed, []);
      assert.match(
        await Deno.readTextFile(unit),
        new RegExp(`^ExecStart=${tmp}/bin/azure-vnet-agent serve$`, "m"),
      );
      assert.ok((await manifestFiles()).includes(unit));
    });
    await t.step("for another agent dir it names the new path", async () => {
      const r = await install({ ...base, agentDir: `${tmp}/libexec` });
      assert.equal(r.unit, unit);
      assert.match(
        await Deno.readTextFile(unit),
        new RegExp(`^ExecStart=${tmp}/libexec/azure-vnet-agent serve$`, "m"),
      );
    });
    await t.step("systemdDir and noSystemd exclude each other", async () => {
      await assert.rejects(
        install({ ...base, systemdDir: `${tmp}/systemd`, noSystemd: true }),
        { name: "TypeError", message: /exclude each other/ },
      );
      assert.ok((await Deno.stat(unit)).isFile);
    });
    await t.step(
      "a unit the operator removed by hand is not brought back",
      async () => {
        // The operator disabled it and removed the file (the DaemonSet's
        // agent runs now): a second agent must not come back.
        await Deno.remove(unit);
        const r = await install({ ...base, agentDir: `${tmp}/libexec` });
        assert.equal(r.unit, undefined);
        assert.ok(!r.unitKept);
        assert.deepEqual(names(`${tmp}/systemd`), []);
        assert.ok(!(await manifestFiles()).includes(unit));
        assert.equal((await install(base)).unit, undefined);
        // Asked for again, it is written again.
        const again = await install({ ...base, systemdDir: `${tmp}/systemd` });
        assert.equal(again.unit, unit);
      },
    );
    await t.step("noSystemd removes it", async () => {
      const r = await install({ ...base, noSystemd: true });
      assert.equal(r.unit, undefined);
      assert.ok(r.removed.includes(unit), r.removed.join(" "));
      assert.deepEqual(names(`${tmp}/systemd`), []);
      assert.ok(!(await manifestFiles()).includes(unit));
      // And it stays away.
      assert.equal((await install(base)).unit, undefined);
    });
  });
});

Deno.test("install() keeps the previous version's chunks for one more install and writes chunks before bundle before launcher", async (t) => {
  await withFakeDist(async (tmp) => {
    const dist = `${tmp}/dist`;
    const bin = `${tmp}/bin`;
    const base = { distDir: dist, binDir: bin, confDir: `${tmp}/net.d` };
    const names2 = ["azure-vnet", "azure-vnet-ipam", "azure-vnet-agent"];
    /** The next version: other chunk hashes, as a rebuild gives. */
    async function rebuild(from: string, to: string): Promise<void> {
      for (const name of names2) {
        await Deno.rename(
          `${dist}/${name}.in_process-${from}.js`,
          `${dist}/${name}.in_process-${to}.js`,
        );
        await Deno.writeTextFile(
          `${dist}/${name}.js`,
          `import("./${name}.in_process-${to}.js");\n`,
        );
      }
    }
    const chunks = (hash: string) =>
      names2.map((n) => `${bin}/${n}.in_process-${hash}.js`);
    const v1 = await install(base);
    await t.step("chunks, then the bundle, then the launcher", () => {
      for (const name of names2) {
        const at = (f: string) => v1.files.indexOf(`${bin}/${f}`);
        assert.ok(at(`${name}.in_process-T3ST.js`) >= 0);
        assert.ok(at(`${name}.in_process-T3ST.js`) < at(`${name}.js`), name);
        assert.ok(at(`${name}.js`) < at(name), name);
      }
    });
    await t.step("an upgrade keeps the old chunks", async () => {
      await rebuild("T3ST", "N3W1");
      const r = await install(base);
      assert.deepEqual(r.superseded, chunks("T3ST"));
      assert.deepEqual(r.removed, []);
      for (const f of [...chunks("T3ST"), ...chunks("N3W1")]) {
        assert.ok((await Deno.stat(f)).isFile, f);
      }
      const manifest = JSON.parse(
        await Deno.readTextFile(`${bin}/${MANIFEST_NAME}`),
      );
      assert.deepEqual(manifest.superseded, chunks("T3ST"));
    });
    await t.step("the next install removes them", async () => {
      await rebuild("N3W1", "N3W2");
      const r = await install(base);
      assert.deepEqual(r.removed, chunks("T3ST"));
      assert.deepEqual(r.superseded, chunks("N3W1"));
      assert.ok(!names(bin).some((f) => f.includes("T3ST")), names(bin).join());
    });
    await t.step("uninstall removes the kept ones too", async () => {
      const r = await uninstall({ binDir: bin });
      for (const f of chunks("N3W1")) assert.ok(r.removed.includes(f), f);
      assert.deepEqual(names(bin), []);
    });
  });
});

Deno.test("install() reports the conf files that sort before its conflist, which a runtime uses instead", async () => {
  await withFakeDist(async (tmp) => {
    const conf = `${tmp}/net.d`;
    const base = {
      distDir: `${tmp}/dist`,
      binDir: `${tmp}/bin`,
      confDir: conf,
    };
    assert.deepEqual((await install(base)).shadowedBy, []);
    // Another CNI's conflist, the Go plugin's .conf; not a conf file, a
    // directory, and a later file do not count.
    for (
      const f of ["05-x.conflist", "10-azure.conf", "00-notes.txt", "99-z.json"]
    ) {
      await Deno.writeTextFile(`${conf}/${f}`, "{}\n");
    }
    await Deno.mkdir(`${conf}/01-dir.conf`);
    const r = await install(base);
    assert.deepEqual(r.shadowedBy, [
      `${conf}/05-x.conflist`,
      `${conf}/10-azure.conf`,
    ]);
    assert.equal(r.conflist, "unchanged");
  });
});

Deno.test("install() writes the conflist only once the plugins passed verification", async (t) => {
  await withFakeDist(async (tmp) => {
    const dist = `${tmp}/dist`;
    const conflistPath = `${tmp}/net.d/10-azure.conflist`;
    const base = {
      distDir: dist,
      binDir: `${tmp}/bin`,
      confDir: `${tmp}/net.d`,
    };
    const good = await Deno.readTextFile(`${dist}/azure-vnet-ipam`);
    /** The IPAM plugin of the next build fails its VERSION check. */
    const breakIpam = () =>
      Deno.writeTextFile(
        `${dist}/azure-vnet-ipam`,
        "#!/bin/sh\necho 'cannot load libnl' >&2\nexit 1\n",
      );
    await t.step("a first install leaves no conflist", async () => {
      await breakIpam();
      await assert.rejects(install({ ...base, master: "eth0" }), {
        name: "Error",
        message: /Cannot verify .*azure-vnet-ipam.*cannot load libnl/,
      });
      assert.deepEqual(names(`${tmp}/net.d`), []);
      // What it wrote is recorded: uninstall removes it all.
      await uninstall(base);
      assert.deepEqual(names(`${tmp}/bin`), []);
    });
    await t.step("an upgrade leaves the earlier conflist", async () => {
      await Deno.writeTextFile(`${dist}/azure-vnet-ipam`, good);
      assert.equal(
        (await install({ ...base, master: "eth0" })).conflist,
        "written",
      );
      const earlier = await Deno.readTextFile(conflistPath);
      await breakIpam();
      await assert.rejects(install({ ...base, master: "eth1" }), {
        name: "Error",
        message: /Cannot verify/,
      });
      assert.equal(await Deno.readTextFile(conflistPath), earlier);
      // The next install that passes writes its own, no force needed.
      await Deno.writeTextFile(`${dist}/azure-vnet-ipam`, good);
      const r = await install({ ...base, master: "eth2" });
      assert.equal(r.conflist, "replaced");
      assert.equal(
        JSON.parse(await Deno.readTextFile(conflistPath)).plugins[0].master,
        "eth2",
      );
    });
  });
});

/** The install options of the temp dir of {@link withFakeDist}. */
function dirs(tmp: string): InstallOptions {
  return {
    distDir: `${tmp}/dist`,
    binDir: `${tmp}/bin`,
    confDir: `${tmp}/net.d`,
  };
}

/** The Go plugin's binary, as a foreign file in the bin dir. */
const GO_PLUGIN = "#!/bin/sh\n# the Go azure-vnet v1.4\n";

Deno.test("install() keeps foreign plugin files aside and uninstall() puts them back", async (t) => {
  await withFakeDist(async (tmp) => {
    const bin = `${tmp}/bin`;
    const base = dirs(tmp);
    await Deno.mkdir(bin);
    await Deno.writeTextFile(`${bin}/azure-vnet`, GO_PLUGIN, { mode: 0o755 });
    // A symlink stays one (some packages link their plugins).
    await Deno.symlink(
      "/usr/lib/cni/azure-vnet-ipam",
      `${bin}/azure-vnet-ipam`,
    );
    await Deno.writeTextFile(`${bin}/portmap`, "#!/bin/sh\n");
    await t.step(
      "the first install keeps them as *.pre-azure-vnet",
      async () => {
        const r = await install(base);
        assert.deepEqual(r.backedUp.sort(), [
          `${bin}/azure-vnet`,
          `${bin}/azure-vnet-ipam`,
        ]);
        assert.equal(
          await Deno.readTextFile(`${bin}/azure-vnet.pre-azure-vnet`),
          GO_PLUGIN,
        );
        assert.equal(
          await Deno.readLink(`${bin}/azure-vnet-ipam.pre-azure-vnet`),
          "/usr/lib/cni/azure-vnet-ipam",
        );
        assert.match(await Deno.readTextFile(`${bin}/azure-vnet`), /9\.9\.9/);
        assert.ok((await Deno.lstat(`${bin}/azure-vnet-ipam`)).isFile);
      },
    );
    await t.step("a repeat install keeps the backups, not ours", async () => {
      const r = await install(base);
      assert.deepEqual(r.backedUp, []);
      assert.equal(
        await Deno.readTextFile(`${bin}/azure-vnet.pre-azure-vnet`),
        GO_PLUGIN,
      );
    });
    await t.step("uninstall gives them back and removes the rest", async () => {
      const r = await uninstall(base);
      assert.deepEqual(r.restored.sort(), [
        `${bin}/azure-vnet`,
        `${bin}/azure-vnet-ipam`,
      ]);
      assert.deepEqual(names(bin), [
        "azure-vnet",
        "azure-vnet-ipam",
        "portmap",
      ]);
      assert.equal(await Deno.readTextFile(`${bin}/azure-vnet`), GO_PLUGIN);
      assert.equal(
        ((await Deno.stat(`${bin}/azure-vnet`)).mode ?? 0) & 0o777,
        0o755,
      );
      assert.equal(
        await Deno.readLink(`${bin}/azure-vnet-ipam`),
        "/usr/lib/cni/azure-vnet-ipam",
      );
    });
  });
});

Deno.test("install() replaces a foreign conflist (AKS's 10-azure.conflist) only with force, keeping it for uninstall()", async (t) => {
  await withFakeDist(async (tmp) => {
    const conf = `${tmp}/net.d`;
    const path = `${conf}/10-azure.conflist`;
    const backup = `${path}.pre-azure-vnet`;
    const base = dirs(tmp);
    const aks = '{"cniVersion":"0.3.0","name":"azure","plugins":[]}\n';
    await Deno.mkdir(conf);
    await Deno.writeTextFile(path, aks);
    await t.step("without force: refused, nothing written", async () => {
      await assert.rejects(install(base), {
        name: "AlreadyExists",
        message: /use --force to replace it .*kept as ".*\.pre-azure-vnet"/,
      });
      assert.deepEqual(names(conf), ["10-azure.conflist"]);
      assert.equal(await Deno.readTextFile(path), aks);
    });
    await t.step("with force: kept aside, then replaced", async () => {
      const r = await install({ ...base, force: true });
      assert.deepEqual(r.backedUp, [path]);
      assert.equal(r.conflist, "replaced");
      assert.equal(await Deno.readTextFile(backup), aks);
      assert.equal(
        JSON.parse(await Deno.readTextFile(path)).cniVersion,
        "1.0.0",
      );
      // The runtime loads only .conf, .conflist and .json files.
      assert.deepEqual(r.shadowedBy, []);
      // Ours now: a later install needs no force, and keeps the backup.
      const again = await install({ ...base, master: "eth1" });
      assert.deepEqual(again.backedUp, []);
      assert.equal(await Deno.readTextFile(backup), aks);
    });
    await t.step(
      "rewritten by its owner since: that one is kept instead",
      async () => {
        const aks2 = aks.replace("0.3.0", "0.4.0");
        await Deno.writeTextFile(path, aks2);
        const r = await install({ ...base, force: true });
        assert.deepEqual(r.backedUp, [path]);
        assert.equal(await Deno.readTextFile(backup), aks2);
      },
    );
    await t.step("uninstall gives it back", async () => {
      const r = await uninstall(base);
      assert.deepEqual(r.restored, [path]);
      assert.deepEqual(r.kept, []);
      assert.deepEqual(names(conf), ["10-azure.conflist"]);
      assert.match(await Deno.readTextFile(path), /"0\.4\.0"/);
    });
    await t.step("changed since install: uninstall keeps both", async () => {
      await install({ ...base, force: true });
      const edited = '{"cniVersion":"1.0.0","name":"edited","plugins":[]}\n';
      await Deno.writeTextFile(path, edited);
      const r = await uninstall(base);
      assert.deepEqual(r.kept, [path, backup]);
      assert.equal(await Deno.readTextFile(path), edited);
      assert.match(await Deno.readTextFile(backup), /"0\.4\.0"/);
    });
  });
});

Deno.test("install() never overwrites a backup path that no install recorded", async () => {
  await withFakeDist(async (tmp) => {
    const bin = `${tmp}/bin`;
    await Deno.mkdir(bin);
    await Deno.writeTextFile(`${bin}/azure-vnet`, GO_PLUGIN);
    await Deno.writeTextFile(`${bin}/azure-vnet.pre-azure-vnet`, "older\n");
    await assert.rejects(
      install(dirs(tmp)),
      { name: "AlreadyExists", message: /is there already.*move one of them/ },
    );
    assert.deepEqual(names(bin), ["azure-vnet", "azure-vnet.pre-azure-vnet"]);
    assert.equal(await Deno.readTextFile(`${bin}/azure-vnet`), GO_PLUGIN);
  });
});

Deno.test("install() gives a foreign file back when it no longer writes its path", async () => {
  await withFakeDist(async (tmp) => {
    const bin = `${tmp}/bin`;
    const base = dirs(tmp);
    await Deno.mkdir(bin);
    await Deno.writeTextFile(`${bin}/azure-vnet-agent`, "theirs\n");
    assert.deepEqual((await install(base)).backedUp, [
      `${bin}/azure-vnet-agent`,
    ]);
    const r = await install({ ...base, agentDir: `${tmp}/libexec` });
    assert.deepEqual(r.restored, [`${bin}/azure-vnet-agent`]);
    assert.equal(
      await Deno.readTextFile(`${bin}/azure-vnet-agent`),
      "theirs\n",
    );
    assert.ok(!names(bin).includes("azure-vnet-agent.pre-azure-vnet"));
    // Gone from the manifest: uninstall leaves it alone.
    await uninstall(base);
    assert.deepEqual(names(bin), ["azure-vnet-agent"]);
  });
});

Deno.test("install() and uninstall() stopped part way leave foreign files recoverable", async (t) => {
  await withFakeDist(async (tmp) => {
    const bin = `${tmp}/bin`;
    const base = dirs(tmp);
    const manifestPath = `${bin}/${MANIFEST_NAME}`;
    await Deno.mkdir(bin);
    await Deno.writeTextFile(`${bin}/azure-vnet`, GO_PLUGIN);
    await t.step(
      "an install killed after its manifest, before its backup",
      async () => {
        // What such an install leaves: a manifest naming the backup to
        // make, the foreign file still in place, no backup yet.
        const first = await install(base);
        const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
        assert.deepEqual(first.backedUp, [`${bin}/azure-vnet`]);
        await Deno.remove(`${bin}/azure-vnet.pre-azure-vnet`);
        await Deno.writeTextFile(`${bin}/azure-vnet`, GO_PLUGIN);
        await Deno.writeTextFile(manifestPath, JSON.stringify(manifest));
        const r = await install(base);
        assert.deepEqual(r.backedUp, [`${bin}/azure-vnet`]);
        assert.equal(
          await Deno.readTextFile(`${bin}/azure-vnet.pre-azure-vnet`),
          GO_PLUGIN,
        );
      },
    );
    await t.step(
      "an uninstall killed after it gave the file back",
      async () => {
        // It renamed the backup over ours, then stopped: run again, it must
        // not remove what it gave back.
        await Deno.rename(
          `${bin}/azure-vnet.pre-azure-vnet`,
          `${bin}/azure-vnet`,
        );
        const r = await uninstall(base);
        assert.ok(
          !r.removed.includes(`${bin}/azure-vnet`),
          r.removed.join(" "),
        );
        assert.deepEqual(names(bin), ["azure-vnet"]);
        assert.equal(await Deno.readTextFile(`${bin}/azure-vnet`), GO_PLUGIN);
      },
    );
  });
});

Deno.test("install() with hostRoot checks the node first and writes nothing when it lacks libnl or ebtables", async () => {
  await withFakeDist(async (tmp) => {
    const node = `${tmp}/node`;
    await Deno.mkdir(`${node}/usr/lib`, { recursive: true });
    await Deno.writeTextFile(`${node}/usr/lib/libnl-3.so.200`, "");
    await assert.rejects(install({ ...dirs(tmp), hostRoot: node }), {
      name: "NotFound",
      message:
        /^Cannot install: the node lacks libnl-route-3\.so\.200, .*ebtables-restore.*apt-get install libnl-route-3-200 .*--skip-host-check/,
    });
    assert.deepEqual(names(tmp), ["dist", "node"]);
  });
});
