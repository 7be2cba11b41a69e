/**
 * The installer against real build output (launchers built from the
 * fixture entry while the plugin entries are being written), in temp dirs.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { build } from "../../tools/build/build.ts";
import { TARGETS } from "../../tools/build/targets.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const FIXTURE = "tools/build/testdata/fixture_plugin.ts";
/** Another CNI's conflist under our name, replaced only with --force. */
const FOREIGN_CONFLIST = '{"cniVersion":"1.0.0","name":"other","plugins":[]}\n';

async function installer(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}tools/installer/main.ts`, ...args],
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

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

function owner(path: string): number | null {
  return Deno.statSync(path).uid;
}

function mode(path: string): number {
  return (Deno.statSync(path).mode ?? 0) & 0o777;
}

Deno.test("installer installs, verifies, refuses a different conflist and uninstalls exactly", async (t) => {
  requireRoot();
  const tmp = await Deno.makeTempDir({ prefix: "cnitest-inst-" });
  try {
    const dist = `${tmp}/dist`;
    const bin = `${tmp}/bin`;
    const conf = `${tmp}/net.d`;
    await build({
      outDir: dist,
      denoDir: `${tmp}/deno`,
      noCompile: true,
      targets: TARGETS.map((x) => ({ ...x, entry: FIXTURE })),
    });
    await Deno.mkdir(bin);
    await Deno.writeTextFile(`${bin}/portmap`, "#!/bin/sh\n");
    const base = ["--dist", dist, "--bin-dir", bin, "--conf-dir", conf];

    await t.step(
      "install writes plugins 0755, bundles 0644, conflist",
      async () => {
        const r = await installer([...base, "--master", "eth0"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stdout,
          /verified azure-vnet \(launcher\): VERSION .*1\.0\.0/,
        );
        assert.match(r.stdout, /verified azure-vnet-ipam \(launcher\)/);
        assert.match(
          r.stdout,
          /verified .*\/bin\/azure-vnet-agent \(launcher\): fixture-plugin/,
        );
        assert.equal(mode(`${bin}/azure-vnet-agent`), 0o755);
        assert.equal(mode(`${bin}/azure-vnet-agent.js`), 0o644);
        assert.equal(owner(`${bin}/azure-vnet-agent`), 0);
        assert.equal(mode(`${bin}/azure-vnet`), 0o755);
        assert.equal(mode(`${bin}/azure-vnet-ipam`), 0o755);
        assert.equal(mode(`${bin}/azure-vnet.js`), 0o644);
        assert.equal(owner(`${bin}/azure-vnet`), 0);
        const doc = JSON.parse(
          await Deno.readTextFile(`${conf}/10-azure.conflist`),
        );
        assert.deepEqual(doc, {
          cniVersion: "1.0.0",
          name: "azure",
          plugins: [{
            type: "azure-vnet",
            mode: "bridge",
            bridge: "azure0",
            master: "eth0",
            ipam: { type: "azure-vnet-ipam" },
          }],
        });
      },
    );

    await t.step(
      "installed launcher answers VERSION with only CNI_* set",
      async () => {
        const out = await new Deno.Command(`${bin}/azure-vnet`, {
          clearEnv: true,
          env: { CNI_COMMAND: "VERSION" },
          stdout: "piped",
        }).output();
        assert.ok(out.success);
        const doc = JSON.parse(new TextDecoder().decode(out.stdout));
        assert.ok(doc.supportedVersions.includes("1.0.0"));
      },
    );

    await t.step(
      "identical conflist is a no-op, its own earlier one is replaced, a foreign one needs --force",
      async () => {
        let r = await installer([...base, "--master", "eth0"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /conflist unchanged/);
        // Changed options: the manifest records the file as ours.
        r = await installer(base);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /conflist replaced/);
        await Deno.writeTextFile(`${conf}/10-azure.conflist`, FOREIGN_CONFLIST);
        r = await installer([...base, "--master", "eth0"]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /a different conflist exists; use --force/);
        assert.equal(
          await Deno.readTextFile(`${conf}/10-azure.conflist`),
          FOREIGN_CONFLIST,
        );
        r = await installer([...base, "--force", "--cni-version", "0.4.0"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /conflist replaced/);
        // Kept aside for --uninstall, where no runtime loads it.
        assert.match(
          r.stdout,
          /^kept .*\/10-azure\.conflist as .*\/10-azure\.conflist\.pre-azure-vnet /m,
        );
        const doc = JSON.parse(
          await Deno.readTextFile(`${conf}/10-azure.conflist`),
        );
        assert.equal(doc.cniVersion, "0.4.0");
        assert.equal(doc.plugins[0].master, undefined);
      },
    );

    await t.step(
      "a conf file sorting first is named on stderr, exit 0",
      async () => {
        const other = `${conf}/05-other.conflist`;
        await Deno.writeTextFile(other, "{}\n");
        try {
          const r = await installer([...base, "--cni-version", "0.4.0"]);
          assert.equal(r.code, 0, r.stderr);
          assert.ok(
            r.stderr.includes(
              `warning: ${other} sorts before 10-azure.conflist: the container runtime uses the first conf file of the directory, so it will use ${other} instead`,
            ),
            r.stderr,
          );
          assert.doesNotMatch(r.stdout, /warning/);
        } finally {
          await Deno.remove(other);
        }
      },
    );

    await t.step(
      "bad options: usage exit 2, invalid values exit 1",
      async () => {
        let r = await installer([...base, "--nope"]);
        assert.equal(r.code, 2);
        assert.match(
          r.stderr,
          /Unknown option '--nope'[\s\S]*usage: deno task install/,
        );
        r = await installer([...base, "--force", "--cni-version", "9.9.9"]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /Cannot use cniVersion "9\.9\.9"/);
        r = await installer([
          ...base,
          "--force",
          "--master",
          "a-very-long-ifname0",
        ]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /longer than 15 bytes/);
      },
    );

    await t.step("a missing build output stops the install", async () => {
      const r = await installer([
        "--dist",
        `${tmp}/empty`,
        "--bin-dir",
        `${tmp}/bin2`,
        "--conf-dir",
        `${tmp}/conf2`,
      ]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /not found; run `deno task build` first/);
      await assert.rejects(Deno.stat(`${tmp}/bin2`), {
        name: "NotFound",
        message: /No such file/,
      });
    });

    await t.step(
      "--agent-dir and --systemd-dir: the agent and its unit elsewhere",
      async () => {
        const r = await installer([
          ...base,
          "--force",
          "--agent-dir",
          `${tmp}/libexec`,
          "--systemd-dir",
          `${tmp}/systemd`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /unit .*azure-vnet-agent\.service written/);
        assert.match(
          r.stdout,
          /removed .*\/bin\/azure-vnet-agent \(no longer installed\)/,
        );
        assert.ok(!names(bin).includes("azure-vnet-agent"));
        // Its chunk stays there for one install: an agent of the previous
        // install may still import it.
        assert.match(
          r.stdout,
          /kept .*\/bin\/azure-vnet-agent\.[^ ]+\.js \(previous version's chunk/,
        );
        // The launcher, its bundle and the bundle's chunk (the fixture's
        // dynamic import).
        const agentFiles = names(dist).filter((f) =>
          f === "azure-vnet-agent" || f.startsWith("azure-vnet-agent.")
        );
        assert.equal(agentFiles.length, 3, agentFiles.join(" "));
        assert.deepEqual(names(`${tmp}/libexec`), agentFiles);
        const unit = await Deno.readTextFile(
          `${tmp}/systemd/azure-vnet-agent.service`,
        );
        assert.ok(
          unit.includes(`\nExecStart=${tmp}/libexec/azure-vnet-agent serve\n`),
        );
        assert.equal(owner(`${tmp}/systemd/azure-vnet-agent.service`), 0);
      },
    );

    await t.step(
      "a repeat install keeps the unit; --no-systemd removes it and prints the systemctl steps",
      async () => {
        const unit = `${tmp}/systemd/azure-vnet-agent.service`;
        const agentDir = ["--agent-dir", `${tmp}/libexec`];
        let r = await installer([...base, ...agentDir]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /unit .*azure-vnet-agent\.service kept/);
        assert.doesNotMatch(r.stdout, /removed .*\.service/);
        // The agent's chunk left in the bin dir by the --agent-dir change
        // was kept for one install (superseded), and goes now.
        assert.match(
          r.stdout,
          /removed .*\/bin\/azure-vnet-agent\.[^ ]+\.js \(no longer installed\)/,
        );
        assert.ok(
          (await Deno.readTextFile(unit)).includes(
            `\nExecStart=${tmp}/libexec/azure-vnet-agent serve\n`,
          ),
        );
        r = await installer([
          ...base,
          ...agentDir,
          "--no-systemd",
          "--systemd-dir",
          `${tmp}/systemd`,
        ]);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /exclude each other/);
        r = await installer([...base, ...agentDir, "--no-systemd"]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(
          r.stdout.includes(`removed ${unit} (no longer installed)\n`),
          r.stdout,
        );
        assert.ok(
          r.stdout.includes(
            "run: systemctl disable --now azure-vnet-agent && systemctl daemon-reload\n",
          ),
          r.stdout,
        );
        assert.deepEqual(names(`${tmp}/systemd`), []);
        r = await installer([
          ...base,
          ...agentDir,
          "--systemd-dir",
          `${tmp}/systemd`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /unit .*azure-vnet-agent\.service written/);
      },
    );

    await t.step("--uninstall removes exactly what was installed", async () => {
      const r = await installer(["--bin-dir", bin, "--uninstall"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /run: systemctl disable --now azure-vnet-agent/);
      assert.deepEqual(names(bin), ["portmap"]);
      // The foreign conflist --force replaced is back.
      assert.match(r.stdout, /^restored .*\/10-azure\.conflist /m);
      assert.deepEqual(names(conf), ["10-azure.conflist"]);
      assert.equal(
        await Deno.readTextFile(`${conf}/10-azure.conflist`),
        FOREIGN_CONFLIST,
      );
      assert.deepEqual(names(`${tmp}/libexec`), []);
      assert.deepEqual(names(`${tmp}/systemd`), []);
      const again = await installer(["--bin-dir", bin, "--uninstall"]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /no manifest/);
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
